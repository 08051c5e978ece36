"""A session's start, step by step: what is being prepared, and about how long is left.

``Startup`` hears each step's name as it begins (``Session``'s ``progress`` callback) and
answers ``status()``, what ``GET /api/status`` sends the page. The time left is estimated
from how long each step took the last time this session started (``RECORD_NAME`` in the
session folder, written by ``save_record``), or from ``DEFAULT_SECONDS`` before any
record.
"""

from __future__ import annotations

import json
import os
import pathlib
import threading
import time
from typing import Callable

from ddjax.session.session import STARTUP_STEPS

RECORD_NAME = ".startup.json"
# Seconds per step before a session has a record: a new session's start with a cold
# compile cache on a busy 2-core CPU (measured: 26 s in all). A first run is cold; with the
# cache warm a start takes 6-8 s there, and the session's own record says so from then on.
DEFAULT_SECONDS = {"building the engine": 0.5, "preparing the critic": 9.0,
                   "reading the ratings": 1.5, "drawing the first loop": 13.0,
                   "compiling the learner": 3.0}
UNKNOWN_STEP_SECONDS = 1.0  # a step neither the record nor the defaults know


def seconds_left(expected: dict[str, float], steps: tuple[str, ...], current: int,
                 in_step: float) -> float:
    """The estimated time left when step ``current`` of ``steps`` has run ``in_step`` s:
    what step ``current`` is expected to take beyond that (none once it overran), plus
    every later step's expected time."""
    def take(step: str) -> float:
        return expected.get(step, DEFAULT_SECONDS.get(step, UNKNOWN_STEP_SECONDS))
    return max(0.0, take(steps[current]) - in_step) + sum(map(take, steps[current + 1:]))


def read_record(path: pathlib.Path | None) -> dict[str, float]:
    """The seconds per step recorded at ``path``; empty where there is none or it is not
    a record (a torn or hand-edited file only costs the estimate)."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(k): float(v) for k, v in data["seconds"].items() if float(v) >= 0}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def save_record(path: pathlib.Path, seconds: dict[str, float]) -> None:
    """Writes the seconds per step to ``path`` whole (a temporary file, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"seconds": {k: round(v, 3) for k, v in seconds.items()}}))
    os.replace(tmp, path)


class Startup:
    """How far a start has come; thread-safe (steps come from the session's threads).

    Args:
      expected: seconds per step (``read_record``); missing steps take the defaults.
      steps: the steps, in order.
      clock: seconds, monotonic.
    """

    def __init__(self, expected: dict[str, float] | None = None,
                 steps: tuple[str, ...] = STARTUP_STEPS,
                 clock: Callable[[], float] = time.monotonic):
        self.expected, self.steps, self._clock = dict(expected or {}), steps, clock
        self._lock = threading.Lock()
        self._began = self._step_began = clock()
        self._current = 0
        self._seconds: dict[str, float] = {}
        self.ready = False
        self.error: str | None = None

    def step(self, name: str) -> None:
        """Step ``name`` begins (and the one before it ends)."""
        with self._lock:
            now = self._clock()
            self._close_step(now)
            if name in self.steps:
                self._current = self.steps.index(name)
            self._step_began = now

    def finish(self) -> dict[str, float]:
        """The start is over; returns the seconds each step took."""
        with self._lock:
            self._close_step(self._clock())
            self.ready = True
            return dict(self._seconds)

    def fail(self, message: str) -> None:
        with self._lock:
            self.error = message

    def _close_step(self, now: float) -> None:
        name = self.steps[self._current]
        self._seconds[name] = self._seconds.get(name, 0.0) + now - self._step_began
        self._step_began = now

    def status(self) -> dict:
        """``{"ready": true}`` once started; until then the step, how many steps are done,
        the seconds since the start and the estimated seconds left; ``error`` if it
        failed."""
        with self._lock:
            if self.ready:
                return {"ready": True}
            now = self._clock()
            status = {"ready": False, "step": self.steps[self._current],
                      "done": self._current, "steps": len(self.steps),
                      "elapsed_s": round(now - self._began, 1),
                      "estimate_s": round(seconds_left(self.expected, self.steps,
                                                       self._current,
                                                       now - self._step_began), 1)}
            if self.error is not None:
                status["error"] = self.error
            return status
