"""A study's steps before phase I, and the times a study takes, from its folders.

``Steps``: the consent, the headphone check (``ddjax.web.headphones``) and the practice
loop of one participant, each logged to ``steps.jsonl`` in their folder (append-only,
fsync'ed; nothing is ever deleted from it). Reading the log back gives the step the
participant is at, so a reload resumes there. One line per event::

    {"step": "consent", "agreed": true, "file": "consent.md", "digest": SHA256, "time"}
    {"step": "headphones", "attempt": 0, "trial": 2, "answer": 3, "correct": 1, "time"}
    {"step": "headphones_result", "attempt": 0, "answers": [...], "correct_answers": [...],
     "n_correct": 5, "passed": true, "time"}
    {"step": "practice", "liked": true, "loop": {...}, "time"}   # never a session rating
    {"step": "phase2_drawn", "seconds": 41.2, "time"}

``durations``: the median seconds per rating and per phase II draw of every participant
on disk, for the page's honest estimates.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import pathlib
import statistics
import threading

import jax
import numpy as np

from ddjax.core.groove import of_record, recorded_swing
from ddjax.core.loops import Loop as LoopArrays
from ddjax.core.loops import random_loop
from ddjax.io.files import atomic_write_bytes, write_audio
from ddjax.session.journal import LOG_NAME, append_line, now
from ddjax.session.session import Session, SessionLoop
from ddjax.web import headphones
from ddjax.web.desk import Refused

STEPS_NAME = "steps.jsonl"
PRACTICE_DIR = "practice"
PRACTICE_KEY = "practice"
PRACTICE_SEED = 2017  # every participant practises on the same loop
BREAK_S = 600.0  # a pause between two ratings longer than this is a break, not a rating


def read_lines(path: pathlib.Path) -> list[dict]:
    """The JSON lines of ``path`` (none where it does not exist); a last line cut short by
    a crash is dropped from the file."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        atomic_write_bytes(path, data)
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def recorded_loop(record: dict, session: Session, score: float) -> SessionLoop:
    """A loop's JSON ``record`` as a ``SessionLoop`` with no audio (it is served from
    its WAV file)."""
    velocity = record.get("velocity")
    arrays = LoopArrays(np.array(record["grid"], bool),
                        np.array([session.kit.names.index(n) for n in record["samples"]],
                                 np.int32),
                        None if velocity is None else np.array(velocity, np.int32))
    render = dataclasses.replace(session.pipeline.render, bpm=float(record["bpm"]),
                                 swing=recorded_swing(record, "a study's loop"),
                                 humanize=of_record(record, "a study's loop"))
    return SessionLoop.of(-1, arrays, np.zeros(0, np.float32), kit_names=session.kit.names,
                          score=score, critic_version=-1, render=render)


class Steps:
    """One participant's steps before phase I, over ``directory``/``STEPS_NAME``.

    Args:
      directory: the participant's folder.
      seed: the participant's seed (their headphone trials' order).
    """

    def __init__(self, directory: pathlib.Path, seed: int):
        self.path, self.directory, self.seed = directory / STEPS_NAME, directory, seed
        self._lock = threading.Lock()
        self.entries = read_lines(self.path)

    def _log(self, entry: dict) -> None:
        append_line(self.path, {**entry, "time": now()})
        self.entries.append({**entry})

    def _of(self, step: str) -> list[dict]:
        return [e for e in self.entries if e.get("step") == step]

    # -- where the participant is ------------------------------------------------------------

    def agreed(self, digest: str | None) -> bool:
        return digest is None or any(e["digest"] == digest for e in self._of("consent"))

    def headphones(self) -> dict:
        """The check so far: ``attempt`` (0-based), ``trial`` (the next one's index),
        ``trials``, ``attempts`` allowed, ``results`` of finished attempts, and ``done``
        (passed, or every attempt used: the researcher decides later)."""
        results = self._of("headphones_result")
        attempt = len(results)
        answered = [e for e in self._of("headphones") if e["attempt"] == attempt]
        done = any(r["passed"] for r in results) or attempt >= headphones.ATTEMPTS
        return {"attempt": attempt, "trial": len(answered), "trials": headphones.N_TRIALS,
                "attempts": headphones.ATTEMPTS, "pass_correct": headphones.PASS_CORRECT,
                "results": [{k: r[k] for k in ("attempt", "n_correct", "passed")}
                            for r in results], "done": done}

    def practiced(self) -> bool:
        return bool(self._of("practice"))

    def phase(self, consent: str | None) -> str | None:
        """``consent``, ``headphones`` or ``practice``; None once all are done."""
        if not self.agreed(consent):
            return "consent"
        if not self.headphones()["done"]:
            return "headphones"
        return None if self.practiced() else "practice"

    # -- what the participant does ------------------------------------------------------------

    def agree(self, name: str, digest: str) -> None:
        with self._lock:
            if not self.agreed(digest):
                self._log({"step": "consent", "agreed": True, "file": name, "digest": digest})

    def trial(self, index: int) -> headphones.Trial:
        """Trial ``index`` of the attempt under way (KeyError: not a trial of it)."""
        check = self.headphones()
        if check["done"] or not 0 <= index < headphones.N_TRIALS:
            raise KeyError(index)
        return headphones.trial(self.seed, check["attempt"], index)

    def answer(self, index: int, answer: int) -> dict:
        """Records ``answer`` (1, 2 or 3: the tone heard as quietest) to trial ``index``,
        which must be the next; the last trial of an attempt also logs its result.
        Returns ``headphones()``."""
        with self._lock:
            check = self.headphones()
            if check["done"]:
                raise Refused("the headphone check is done")
            if index != check["trial"]:
                raise Refused(f"trial {index + 1} is not the one to answer (trial"
                              f" {check['trial'] + 1} is)")
            attempt = check["attempt"]
            correct = headphones.trial(self.seed, attempt, index).answer
            self._log({"step": "headphones", "attempt": attempt, "trial": index,
                       "answer": answer, "correct": correct})
            if index == headphones.N_TRIALS - 1:
                done = [e for e in self._of("headphones") if e["attempt"] == attempt]
                n_correct = sum(e["answer"] == e["correct"] for e in done)
                self._log({"step": "headphones_result", "attempt": attempt,
                           "answers": [e["answer"] for e in done],
                           "correct_answers": [e["correct"] for e in done],
                           "n_correct": n_correct, "passed": headphones.passed(n_correct)})
            return self.headphones()

    def practice_loop(self, session: Session) -> SessionLoop:
        """The practice loop: drawn from the prior with a fixed key and rendered by the
        session's engine the first time (kept in ``PRACTICE_DIR``), read back after."""
        folder = self.directory / PRACTICE_DIR
        if not (folder / "loop.json").exists():
            engine = session.engine
            arrays = random_loop(jax.random.key(PRACTICE_SEED), engine.space.allowed,
                                 session.pipeline.loops, engine.space.kinds,
                                 engine.space.patterns)
            audio = engine.listen(jax.tree_util.tree_map(lambda x: x[None], arrays))[0]
            loop = SessionLoop.of(-1, LoopArrays(*(np.asarray(a) for a in arrays)), audio,
                                  kit_names=session.kit.names, score=float("nan"),
                                  critic_version=-1, render=session.pipeline.render)
            folder.mkdir(parents=True, exist_ok=True)
            write_audio(folder / "loop.wav", audio, session.kit.sr, "float32")
            atomic_write_bytes(folder / "loop.json", (json.dumps(loop.record()) + "\n").encode())
        record = json.loads((folder / "loop.json").read_text())
        return recorded_loop(record, session, float("nan"))

    def rate_practice(self, liked: bool) -> None:
        """Logs the practice rating here only: never a session rating, never learned."""
        with self._lock:
            if self.practiced():
                raise Refused("the practice loop is rated already")
            record = json.loads((self.directory / PRACTICE_DIR / "loop.json").read_text())
            self._log({"step": "practice", "liked": bool(liked), "loop": record})

    def drawn(self, seconds: float) -> None:
        self._log({"step": "phase2_drawn", "seconds": round(seconds, 3)})


# -- how long a study takes -------------------------------------------------------------------

def _gaps(lines: list[dict]) -> list[float]:
    """Seconds between consecutive ratings (``liked`` lines) of one log, breaks left out."""
    times = [datetime.datetime.fromisoformat(e["time"]) for e in lines
             if "liked" in e and "time" in e]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    return [g for g in gaps if 0 <= g <= BREAK_S]


def durations(root: pathlib.Path) -> dict:
    """The measured times of the participants under ``root`` (a study's participants
    folder): ``participants`` measured, ``seconds_per_rating`` (the median time from one
    rating to the next, both phases, breaks over ``BREAK_S`` left out) and ``draw_seconds``
    (the median time to draw phase II); each None before any was measured."""
    gaps, draws, people = [], [], 0
    for folder in sorted(root.glob("*/")) if root.is_dir() else []:
        try:
            mine = (_gaps(read_lines(folder / "session" / LOG_NAME))
                    + _gaps(read_lines(folder / "phase2" / LOG_NAME)))
            drawn = [e["seconds"] for e in read_lines(folder / STEPS_NAME)
                     if e.get("step") == "phase2_drawn"]
        except (OSError, ValueError, KeyError):  # a folder being written, or not a study's
            continue
        people += bool(mine or drawn)
        gaps += mine
        draws += drawn
    return {"participants": people,
            "seconds_per_rating": statistics.median(gaps) if gaps else None,
            "draw_seconds": statistics.median(draws) if draws else None}
