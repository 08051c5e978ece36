"""A session's folder on disk: nothing a person rated is ever lost.

- ``session.json``: the kit folder, seed and settings;
- ``ratings.jsonl``: append-only, one line per rating, fsync'ed before the next loop:
  the loop's JSON, the rating, the time, and the critic version that proposed it;
- ``wav/loop_NNNNN.wav``: every rated loop's listening render;
- ``checkpoint.msgpack``: the learner's model (critic and, for the CNN, Adam's state)
  and the number of ratings it has learned, written atomically after each update;
  ``latest.critic`` beside it is the same critic as a plain critic file, and
  ``initial.critic`` the one before any rating.

This module is the impure edge of a session: reads and writes, no learning.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import warnings
from typing import NamedTuple

import numpy as np
from flax import serialization

from ddjax.critic import kind_of, save_critic
from ddjax.errors import DdjaxError
from ddjax.files import atomic_write_bytes, write_audio
from ddjax.kit import Kit

LOG_NAME = "ratings.jsonl"
CHECKPOINT_NAME = "checkpoint.msgpack"
CRITIC_NAME = "latest.critic"
INITIAL_CRITIC_NAME = "initial.critic"
META_NAME = "session.json"
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


def read_log(directory: pathlib.Path, kit: Kit) -> list[Rating]:
    """Every rating in the log; a torn last line (a write cut short) is skipped with a
    ``SessionWarning``."""
    path = directory / LOG_NAME
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    ratings, missing = [], set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
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
        if not missing:
            ratings.append(Rating(int(entry["id"]), grid,
                                  np.array([kit.names.index(n) for n in names], np.int32),
                                  liked, int(entry.get("critic_version", 0)), velocity))
    if missing:
        raise DdjaxError(f"the session's ratings use samples missing from the kit {kit.root}: "
                         + ", ".join(sorted(missing)) + "; pass the session's kit with --kit")
    return ratings


def repair_log(directory: pathlib.Path) -> None:
    """Rewrites the log without a torn last line, so appends start on a fresh line."""
    path = directory / LOG_NAME
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        atomic_write_bytes(path, data[: data.rfind(b"\n") + 1])


def append(directory: pathlib.Path, loop, liked: bool, sr: int) -> None:
    """Writes the loop's WAV, then appends its rating to the log and fsyncs it."""
    write_audio(wav_path(directory, loop.id), loop.audio, sr, "float32")  # exact samples
    entry = {"id": loop.id, "loop": loop.record(), "liked": bool(liked),
             "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
             "critic_version": loop.critic_version}
    with open(directory / LOG_NAME, "ab") as f:
        f.write((json.dumps(entry) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(directory: pathlib.Path, model, n_trained: int, critic: dict,
                    pipeline) -> None:
    """The learner's model and the critic it scores with, each written atomically."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
               "kind": kind_of(pipeline.critic), "n_trained": n_trained,
               "model": serialization.to_state_dict(model)}
    atomic_write_bytes(directory / CHECKPOINT_NAME, serialization.msgpack_serialize(payload))
    save_critic_file(directory / CRITIC_NAME, critic, pipeline)


def save_critic_file(path: pathlib.Path, critic: dict, pipeline) -> None:
    """A plain critic file, with the audio it hears."""
    save_critic(path, critic, pipeline.critic, sr=pipeline.render.sr,
                bar_samples=pipeline.render.bar_samples)


def load_checkpoint(directory: pathlib.Path, template, critic_config,
                    n_logged: int) -> tuple[object, int] | None:
    """The checkpoint's model (shaped like ``template``) and how many ratings it has
    learned, or None when there is none.

    Raises:
      DdjaxError: the checkpoint is unreadable, of another learner, or ahead of the log;
        the message says how to recover.
    """
    path = directory / CHECKPOINT_NAME
    if not path.exists():
        return None
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
    except Exception as err:  # msgpack/flax raise many types on a bad file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DdjaxError(f"{path} is not a usable session checkpoint ({reason}); {retrain}") \
            from None
    if n_trained > n_logged:
        raise DdjaxError(f"{path} has learned {n_trained} ratings but {LOG_NAME} holds"
                         f" {n_logged}; nothing was changed. Restore the full log, or"
                         f" {retrain}")
    return model, n_trained
