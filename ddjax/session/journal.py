"""A session's folder on disk: nothing a person rated is ever lost.

- ``session.json``: the kit folder, seed and settings;
- ``ratings.jsonl``: append-only, fsync'ed before the next loop. One line per rating (the
  loop's JSON, the rating, the time, and the critic version that proposed it), per undo
  (``{"undo": ID}``: takes back the last rating, of loop ID) and per skip (``{"skip": ID,
  "loop": ...}``: a loop shown and passed over). Nothing is ever deleted from it; a
  damaged line (``records.entry_problem``) is moved, on open, to ``ratings.jsonl.damaged``
  with its line number;
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
from ddjax.core.loops import LoopConfig
from ddjax.errors import DdjaxError
from ddjax.io.critics import save_critic
from ddjax.io.files import atomic_write_bytes, write_audio
from ddjax.io.kit import Kit, load_kit
from ddjax.session.records import (  # noqa: F401 - session.json's readers, re-exported
    MAX_LOOP_ID,
    check_meta,
    check_sizes,
    entry_problem,
    humanize_meta,
    is_int,
    loop_problem,
    recorded_humanize,
    recorded_sizes,
    swing_meta,
)

LOG_NAME = "ratings.jsonl"
CHECKPOINT_NAME = "checkpoint.msgpack"
CRITIC_NAME = "latest.critic"
INITIAL_CRITIC_NAME = "initial.critic"
META_NAME = "session.json"
DAMAGED_SUFFIX = ".damaged"  # ratings.jsonl.damaged: the log's damaged lines, set aside
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


class Damaged(NamedTuple):
    """A log line that is no record (``records.entry_problem``): its 1-based ``number``,
    its bytes, why, and whether it is a torn last line (no newline: a write cut short)."""

    number: int
    text: bytes
    reason: str
    torn: bool = False


class Log(NamedTuple):
    """What ``read_log`` finds: ``ratings`` in force (undone ones taken out), in order;
    ``skipped``: the ids of skipped loops; ``undone``: of loops whose rating was taken
    back; ``last_id``: the largest loop id the log names (-1 for none), so a resumed
    session never hands out a logged loop again; ``damaged``: the lines skipped, for
    ``repair_log``."""

    ratings: list[Rating]
    skipped: list[int]
    undone: list[int]
    last_id: int
    damaged: tuple[Damaged, ...] = ()


def wav_path(directory: pathlib.Path, loop_id: int) -> pathlib.Path:
    """Where a rated loop's listening render is kept."""
    return directory / "wav" / f"loop_{loop_id:05d}.wav"


def read_meta(directory: pathlib.Path) -> dict | None:
    """``session.json``, checked field by field (``records.check_meta``), or None for a
    folder that is not a session (yet)."""
    path = directory / META_NAME
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as err:  # RecursionError: nested too deep
        raise DdjaxError(f"{path} is not a session file ({err}); restore it from a backup,"
                         " or start a new session in another folder") from None
    return check_meta(meta, path)


def create(directory: pathlib.Path, meta: dict) -> None:
    """Makes the folder and writes ``session.json`` unless it exists."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "wav").mkdir(exist_ok=True)
    if not (directory / META_NAME).exists():
        atomic_write_bytes(directory / META_NAME, (json.dumps(meta, indent=1) + "\n").encode())


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


def log_shape(directory: pathlib.Path) -> tuple[int, int]:
    """(tracks, steps) of the loops in the session in ``directory``: the tracks its
    ``session.json`` records (4 where it has none) and a bar of 16ths."""
    meta = read_meta(directory)
    return recorded_sizes(meta or {})[1], LoopConfig().n_steps


def read_log(directory: pathlib.Path, kit: Kit,
             shape: tuple[int, int] | None = None) -> Log:
    """The ratings in force, the skips, and the last loop id of the log, its every line
    checked (``records.entry_problem``) for loops of ``shape`` (tracks, steps; None:
    ``log_shape``). A damaged line (not JSON, a bad field, an undo of no last rating),
    anywhere, is skipped with a ``SessionWarning`` and listed in ``Log.damaged`` for
    ``repair_log``; a torn last line (a write cut short) is one such line.

    Raises:
      DdjaxError: the ratings name samples the kit does not have.
    """
    path = directory / LOG_NAME
    if not path.exists():
        return Log([], [], [], -1)
    shape = log_shape(directory) if shape is None else tuple(shape)
    data = path.read_bytes()
    lines = data.split(b"\n")
    ratings, skipped, undone, damaged, last_id, missing = [], [], [], [], -1, set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        torn, entry = number == len(lines), None  # torn: no newline, a write cut short
        try:
            entry = json.loads(line)
            problem = entry_problem(entry, shape)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, too deep or too long
            problem = "not JSON"
        if problem is None and "undo" in entry and (
                not ratings or ratings[-1].loop_id != entry["undo"]):
            problem = f"it undoes loop {entry['undo']}, which is not the last rating"
        if problem is not None:
            if isinstance(entry, dict):  # its loop's files may exist: never reuse its id
                last_id = max([last_id] + [entry[k] for k in ("id", "skip", "undo")
                                           if is_int(entry.get(k), 0, MAX_LOOP_ID)])
            damaged.append(Damaged(number, line, problem, torn))
            warnings.warn(SessionWarning(
                f"{path}: skipped a torn last line ({len(line)} bytes), the rating being"
                " written when the session stopped" if torn else
                f"{path}: skipped line {number}, which is damaged ({problem})"), stacklevel=3)
            continue
        if "undo" in entry:
            last_id = max(last_id, entry["undo"])
            undone.append(ratings.pop().loop_id)
            continue
        loop_id = entry["skip"] if "skip" in entry else entry["id"]
        last_id = max(last_id, loop_id)
        if "skip" in entry:
            skipped.append(loop_id)
            continue
        loop, names = entry["loop"], entry["loop"]["samples"]
        missing.update(n for n in names if n not in kit.names)
        if not missing:
            velocity = loop.get("velocity")
            ratings.append(Rating(
                loop_id, np.array(loop["grid"], dtype=bool),
                np.array([kit.names.index(n) for n in names], np.int32), entry["liked"],
                entry.get("critic_version", 0),
                None if velocity is None else np.array(velocity, np.int32),
                loop.get("score")))
    if missing:
        raise DdjaxError(f"the session's ratings use samples missing from the kit {kit.root}: "
                         + ", ".join(sorted(missing)) + "; pass the session's kit with --kit")
    return Log(ratings, skipped, undone, last_id, tuple(damaged))


def repair_log(directory: pathlib.Path, damaged: tuple[Damaged, ...] = ()) -> None:
    """Moves the ``damaged`` lines (``Log.damaged``) aside: each is appended to
    ``ratings.jsonl.damaged`` as ``{"line": N, "text": ..., "reason": ...}`` (fsync'ed;
    bytes that are not UTF-8 kept as surrogate escapes), then the log is rewritten
    without them (atomically), ending in a newline so appends start on a fresh line.
    Call it only once every check of the resume has passed."""
    path = directory / LOG_NAME
    if not path.exists():
        return
    data = path.read_bytes()
    lines = data.split(b"\n")
    # Only lines that still read as they did: the log is the session's, but be sure.
    moved = [d for d in damaged if d.number <= len(lines) and lines[d.number - 1] == d.text]
    if not moved and (not data or data.endswith(b"\n")):
        return
    aside = directory / (LOG_NAME + DAMAGED_SUFFIX)
    for d in moved:
        append_line(aside, {"line": d.number, "reason": d.reason,
                            "text": d.text.decode("utf-8", "surrogateescape")})
    numbers = {d.number for d in moved}
    kept = [line for number, line in enumerate(lines, 1)
            if line.strip() and number not in numbers]
    atomic_write_bytes(path, b"".join(line + b"\n" for line in kept))
    for d in moved:
        warnings.warn(SessionWarning(f"{path}: moved line {d.number} ({d.reason}) to"
                                     f" {aside}"), stacklevel=3)


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
    "velocity", "score", "critic_version"}``; None otherwise (an unreadable or damaged
    file too, ``records.loop_problem``: only that loop is lost, the session deals a new
    one)."""
    try:
        entry = json.loads((directory / DEALT_NAME).read_bytes())
        record = entry["loop"]
        loop_id = entry["id"]
        if (not is_int(loop_id, 0, MAX_LOOP_ID) or not is_int(entry["critic_version"], 0)
                or loop_problem(record, log_shape(directory)) is not None):
            return None
        samples = [kit.names.index(name) for name in record["samples"]]
        grid = np.asarray(record["grid"], bool)
        velocity = record.get("velocity")
        velocity = None if velocity is None else np.asarray(velocity, np.int32)
        score = float(record.get("score", float("nan")))
        version = int(entry["critic_version"])
    except (OSError, ValueError, RecursionError, KeyError, TypeError, DdjaxError):
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
                    undone: list[int] = (), damaged: tuple[Damaged, ...] = ()
                    ) -> tuple[object, int] | None:
    """The checkpoint's model (shaped like ``template``) and how many of the ratings in
    force (the ids ``logged``, in order) it has learned, or None when there is none, or
    when it learned a rating the log has since taken back (one of ``undone``: an undo
    logged just before a crash), or when the log had lines set aside (``damaged``,
    ``Log.damaged``) and the checkpoint learned other ratings than the log's first: the
    session then learns the log again, with a ``SessionWarning``.

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
    # Lines set aside as damaged (a torn last line aside: that is a crash, and a checkpoint
    # ahead of it means lost lines): the log as it now is decides.
    if any(not d.torn for d in damaged) and (learned is None
                                             or learned != list(logged[:len(learned)])):
        warnings.warn(SessionWarning(
            f"{path} learned ratings the log no longer holds in that order (damaged lines"
            f" were set aside); learning the log's {n_logged} ratings again"), stacklevel=3)
        return None
    if n_trained > n_logged:
        raise DdjaxError(f"{path} has learned {n_trained} ratings but {LOG_NAME} holds"
                         f" {n_logged}; nothing was changed. Restore the full log, or"
                         f" {retrain}")
    return model, n_trained
