"""A session's folder on disk: nothing a person rated is ever lost.

- ``session.json``: the kit folder, seed and settings;
- ``ratings.jsonl``: append-only, fsync'ed before the next loop. One line per rating (the
  loop's JSON, the rating, the time, and the critic version that proposed it), per undo
  (``{"undo": ID}``: takes back the last rating, of loop ID) and per skip (``{"skip": ID,
  "loop": ...}``: a loop shown and passed over). Nothing is ever deleted from it;
- ``wav/loop_NNNNN.wav``: every rated loop's listening render;
- ``checkpoint.msgpack``: the learner's model (critic and, for the CNN, Adam's state)
  and the ids of the loops whose ratings it has learned, in order, written atomically
  after each update or undo;
  ``latest.critic`` beside it is the same critic as a plain critic file, and
  ``initial.critic`` the one before any rating.

This module is the impure edge of a session: reads and writes, no learning.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import time
import warnings
from typing import NamedTuple

import numpy as np
from flax import serialization

from ddjax.core.critic import kind_of
from ddjax.core.groove import SWING_SCALE, Humanize, of_record, recorded_swing
from ddjax.errors import DdjaxError
from ddjax.io.critics import save_critic
from ddjax.io.files import atomic_write_bytes, write_audio
from ddjax.io.kit import Kit, load_kit

LOG_NAME = "ratings.jsonl"
CHECKPOINT_NAME = "checkpoint.msgpack"
CRITIC_NAME = "latest.critic"
INITIAL_CRITIC_NAME = "initial.critic"
META_NAME = "session.json"
DEALT_NAME = "dealt.json"  # the loop being shown, until it is rated or skipped
CHECKPOINT_FORMAT = "ddjax-session-checkpoint"
CHECKPOINT_VERSION = 2  # 1: the CNN only, as "variables" and "opt_state"


class SessionWarning(UserWarning):
    """Something in a session directory was repaired or skipped; the message says what."""


class Rating(NamedTuple):
    loop_id: int
    grid: np.ndarray
    samples: np.ndarray
    liked: bool
    critic_version: int
    velocity: np.ndarray | None = None  # None: a loop from before velocities, every hit 127
    score: float | None = None  # the proposing critic's P(like), where the log has it


class Log(NamedTuple):
    """What ``read_log`` finds: ``ratings`` in force (undone ones taken out), in order;
    ``skipped``: the ids of skipped loops; ``undone``: of loops whose rating was taken
    back; ``last_id``: the largest loop id the log names (-1 for none), so a resumed
    session never hands out a logged loop again."""

    ratings: list[Rating]
    skipped: list[int]
    undone: list[int]
    last_id: int


def wav_path(directory: pathlib.Path, loop_id: int) -> pathlib.Path:
    """Where a rated loop's listening render is kept."""
    return directory / "wav" / f"loop_{loop_id:05d}.wav"


def read_meta(directory: pathlib.Path) -> dict | None:
    """``session.json``, or None for a folder that is not a session (yet)."""
    path = directory / META_NAME
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as err:
        raise DdjaxError(f"{path} is not a session file ({err}); restore it from a backup,"
                         " or start a new session in another folder") from None
    return meta


def create(directory: pathlib.Path, meta: dict) -> None:
    """Makes the folder and writes ``session.json`` unless it exists."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "wav").mkdir(exist_ok=True)
    if not (directory / META_NAME).exists():
        atomic_write_bytes(directory / META_NAME, (json.dumps(meta, indent=1) + "\n").encode())


def recorded_sizes(meta: dict) -> tuple[float, int, float]:
    """(bpm, tracks, swing) a session's ``session.json`` records; older sessions: 120, 4
    and straight. Swing is in percent on the MPC scale; a session from before that scale
    (no ``swing_scale``) is converted (``groove.recorded_swing``)."""
    return float(meta.get("bpm", 120.0)), int(meta.get("tracks", 4)), recorded_swing(
        meta, META_NAME)


def swing_meta(swing: float) -> dict:
    """What ``session.json`` keeps of ``swing`` (percent, MPC scale): the value and the
    scale's marker."""
    return {"swing": swing, "swing_scale": SWING_SCALE}


def recorded_humanize(meta: dict) -> Humanize:
    """The humanize a session's ``session.json`` records (none before sessions had it)."""
    return of_record(meta, "session.json")


def humanize_meta(humanize: Humanize) -> dict:
    """What ``session.json`` keeps of ``humanize``: nothing where there is no jitter."""
    return {"humanize": humanize.record()} if humanize else {}


def check_sizes(directory, meta: dict, pipeline) -> None:
    """A DdjaxError unless ``pipeline`` has the tempo, track count, swing and humanize the
    session in ``directory`` was made with."""
    bpm, tracks, swing = recorded_sizes(meta)
    here = (pipeline.render.bpm, pipeline.loops.n_tracks, pipeline.render.swing)
    if here != (bpm, tracks, swing):
        raise DdjaxError(f"the session in {directory} was made at {bpm:g} BPM with {tracks}"
                         f" tracks and {swing:g}% swing, not {here[0]:g} BPM with {here[1]}"
                         f" and {here[2]:g}%; drop --bpm, --tracks and --swing to resume it")
    humanize = recorded_humanize(meta)
    if pipeline.render.humanize != humanize:
        raise DdjaxError(f"the session in {directory} was made with humanize"
                         f" {humanize.describe()}, not {pipeline.render.humanize.describe()};"
                         " drop --humanize to resume it")


def session_kit(directory: str | os.PathLike, kit_dir: str | os.PathLike | None,
                pipeline) -> Kit:
    """The kit of the session in ``directory``: ``kit_dir``, or the one its ``session.json``
    records. The cheap checks of ``Session.open``, before any JAX work: a DdjaxError says
    that the folder is no session, that the kit is unusable, or that ``pipeline``'s sizes
    are not the session's."""
    directory = pathlib.Path(directory)
    meta = read_meta(directory)
    if kit_dir is None:
        if meta is None:
            raise DdjaxError(f"{directory} is not a ddjax session; pass the kit to start one")
        kit_dir = meta["kit"]
    if meta is not None:
        check_sizes(directory, meta, pipeline)
    return load_kit(kit_dir, pipeline.render.bar_samples, sr=pipeline.render.sr,
                    min_samples=pipeline.loops.n_tracks)


def read_log(directory: pathlib.Path, kit: Kit) -> Log:
    """The ratings in force, the skips, and the last loop id of the log; a torn last line
    (a write cut short) is skipped with a ``SessionWarning``."""
    path = directory / LOG_NAME
    if not path.exists():
        return Log([], [], [], -1)
    lines = path.read_bytes().split(b"\n")
    ratings, skipped, undone, last_id, missing = [], [], [], -1, set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if "undo" in entry or "skip" in entry:
                loop_id = int(entry.get("undo", entry.get("skip")))
                last_id = max(last_id, loop_id)
                if "skip" in entry:
                    skipped.append(loop_id)
                elif not ratings or ratings[-1].loop_id != loop_id:
                    raise DdjaxError(f"{path}: line {number} undoes loop {loop_id}, which is"
                                     " not the last rating; fix or delete that line to"
                                     " resume")
                else:
                    undone.append(ratings.pop().loop_id)
                continue
            loop = entry["loop"]
            grid = np.array(loop["grid"], dtype=bool)
            velocity = (None if loop.get("velocity") is None
                        else np.array(loop["velocity"], np.int32))
            names = loop["samples"]
            liked = bool(entry["liked"])
        except (ValueError, KeyError, TypeError):
            if number >= len(lines) - 1:  # the last line: a write cut short by a crash
                warnings.warn(SessionWarning(
                    f"{path}: skipped a torn last line ({len(line)} bytes), the rating being"
                    " written when the session stopped"), stacklevel=3)
                continue
            raise DdjaxError(f"{path}: line {number} is not a rating record; fix or delete that"
                             " line to resume") from None
        missing.update(n for n in names if n not in kit.names)
        last_id = max(last_id, int(entry["id"]))
        if not missing:
            ratings.append(Rating(int(entry["id"]), grid,
                                  np.array([kit.names.index(n) for n in names], np.int32),
                                  liked, int(entry.get("critic_version", 0)), velocity,
                                  loop.get("score")))
    if missing:
        raise DdjaxError(f"the session's ratings use samples missing from the kit {kit.root}: "
                         + ", ".join(sorted(missing)) + "; pass the session's kit with --kit")
    return Log(ratings, skipped, undone, last_id)


def repair_log(directory: pathlib.Path) -> None:
    """Rewrites the log without a torn last line, so appends start on a fresh line."""
    path = directory / LOG_NAME
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        atomic_write_bytes(path, data[: data.rfind(b"\n") + 1])


STALE_TEMP_SECONDS = 60.0  # a temp file this old is no write in progress


def remove_stale_temp_files(directory: pathlib.Path) -> list[pathlib.Path]:
    """Removes the temp files (``.NAME.HEX.tmp``, ``files.atomic_write_bytes``) that a
    process killed mid-write left in the session folder and its ``wav/``, once they are
    ``STALE_TEMP_SECONDS`` old (a live write takes milliseconds). Returns them."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    removed = []
    for folder in (directory, directory / "wav"):
        for path in folder.glob(".*.tmp") if folder.is_dir() else ():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:  # another process took it first
                continue
    return removed


def now() -> str:
    """The time, in UTC, as the logs write it."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def append_line(path: pathlib.Path, entry: dict) -> None:
    """Appends ``entry`` to the JSON-lines file ``path`` and fsyncs it."""
    with open(path, "ab") as f:
        f.write((json.dumps(entry) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


def append(directory: pathlib.Path, loop, liked: bool, sr: int) -> None:
    """Writes the loop's WAV, then appends its rating to the log and fsyncs it. A loop
    the person edited before rating it keeps the loop as proposed too (``"proposed"``)."""
    write_audio(wav_path(directory, loop.id), loop.audio, sr, "float32")  # exact samples
    entry = {"id": loop.id, "loop": loop.record(), "liked": bool(liked), "time": now(),
             "critic_version": loop.critic_version}
    if loop.proposed is not None:
        entry["proposed"] = loop.proposed.record()
    append_line(directory / LOG_NAME, entry)


def save_dealt(directory: pathlib.Path, loop) -> None:
    """Keeps the loop being shown (``DEALT_NAME``, atomic), so a session restarted after a
    kill shows it again and a rating the page kept for it still lands."""
    entry = {"id": loop.id, "loop": loop.record(), "critic_version": loop.critic_version}
    atomic_write_bytes(directory / DEALT_NAME, (json.dumps(entry) + "\n").encode())


def read_dealt(directory: pathlib.Path, kit: Kit, last_id: int) -> dict | None:
    """The loop shown when the session stopped, where the log does not name it (it was
    neither rated nor skipped) and it still fits the kit: ``{"id", "grid", "samples",
    "velocity", "score", "critic_version"}``; None otherwise (an unreadable file too:
    only that loop is lost, the session deals a new one)."""
    try:
        entry = json.loads((directory / DEALT_NAME).read_text())
        record = entry["loop"]
        loop_id = int(entry["id"])
        samples = [kit.names.index(name) for name in record["samples"]]
        grid = np.asarray(record["grid"], bool)
        velocity = record.get("velocity")
        velocity = None if velocity is None else np.asarray(velocity, np.int32)
        score = float(record.get("score", float("nan")))
        version = int(entry["critic_version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if loop_id <= last_id:
        return None
    return {"id": loop_id, "grid": grid, "samples": np.asarray(samples, np.int32),
            "velocity": velocity, "score": score, "critic_version": version}


def append_undo(directory: pathlib.Path, loop_id: int) -> None:
    """Logs that the last rating, of loop ``loop_id``, is taken back (fsync'ed)."""
    append_line(directory / LOG_NAME, {"undo": int(loop_id), "time": now()})


def append_skip(directory: pathlib.Path, loop) -> None:
    """Logs that ``loop`` was shown and skipped, unrated (fsync'ed)."""
    append_line(directory / LOG_NAME, {"skip": loop.id, "loop": loop.record(),
                                       "time": now()})


def save_checkpoint(directory: pathlib.Path, model, learned: list[int], critic: dict,
                    pipeline) -> None:
    """The learner's model, the ids of the loops it has learned and the critic it scores
    with, each written atomically."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
               "kind": kind_of(pipeline.critic), "n_trained": len(learned),
               "learned": [int(i) for i in learned],
               "model": serialization.to_state_dict(model)}
    atomic_write_bytes(directory / CHECKPOINT_NAME, serialization.msgpack_serialize(payload))
    save_critic_file(directory / CRITIC_NAME, critic, pipeline)


def save_critic_file(path: pathlib.Path, critic: dict, pipeline) -> None:
    """A plain critic file, with the audio it hears."""
    save_critic(path, critic, pipeline.critic, sr=pipeline.render.sr,
                bar_samples=pipeline.render.bar_samples)


def load_checkpoint(directory: pathlib.Path, template, critic_config, logged: list[int],
                    undone: list[int] = ()) -> tuple[object, int] | None:
    """The checkpoint's model (shaped like ``template``) and how many of the ratings in
    force (the ids ``logged``, in order) it has learned, or None when there is none, or
    when it learned a rating the log has since taken back (one of ``undone``: an undo
    logged just before a crash): the session then learns the log again, with a
    ``SessionWarning``.

    Raises:
      DdjaxError: the checkpoint is unreadable, of another learner, or ahead of the log;
        the message says how to recover.
    """
    path = directory / CHECKPOINT_NAME
    if not path.exists():
        return None
    n_logged = len(logged)
    retrain = f"move {CHECKPOINT_NAME} away to retrain from the log ({n_logged} ratings)"
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a session checkpoint")
        version, kind = payload.get("version"), payload.get("kind", "cnn")
        if version == 1:  # the CNN's TrainState, stored field by field
            state = {"variables": payload["variables"], "opt_state": payload["opt_state"]}
        elif version == CHECKPOINT_VERSION:
            state = payload["model"]
        else:
            raise ValueError(f"version {version}")
        if kind != kind_of(critic_config):
            raise ValueError(f"a {kind} learner's, not a {kind_of(critic_config)}'s")
        model = serialization.from_state_dict(template, state)
        n_trained = int(payload["n_trained"])
        learned = payload.get("learned")  # None in checkpoints from before undo
        learned = None if learned is None else [int(i) for i in learned]
    except Exception as err:  # msgpack/flax raise many types on a bad file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DdjaxError(f"{path} is not a usable session checkpoint ({reason}); {retrain}") \
            from None
    common = 0
    while learned and common < min(len(learned), n_logged) and \
            learned[common] == logged[common]:
        common += 1
    if learned and learned[common:] and set(learned[common:]) <= set(undone):
        warnings.warn(SessionWarning(
            f"{path} learned a rating the log has taken back; learning the log's"
            f" {n_logged} ratings again"), stacklevel=3)
        return None
    if n_trained > n_logged:
        raise DdjaxError(f"{path} has learned {n_trained} ratings but {LOG_NAME} holds"
                         f" {n_logged}; nothing was changed. Restore the full log, or"
                         f" {retrain}")
    return model, n_trained
