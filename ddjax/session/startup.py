"""A session's start, step by step: what is being prepared, and about how long is left.

``Startup`` hears each step's name as it begins (``Session``'s ``progress`` callback) and
answers ``status()``, what ``GET /api/status`` sends the page.

The time left is estimated from the session's past starts (``RECORD_NAME`` in its folder,
``read_record`` / ``save_record``), and only from those like this one: a start whose
compiled programs are in JAX's persistent compilation cache (warm) takes a fraction of one
that compiles them (cold): 7.5 s against 27 s on an idle 2-core CPU, 12 s against 100 s
on a busy one. A finished start is told warm or cold by what it wrote to the cache; the
next one is foretold warm when the cache still holds what the session's starts wrote
there. Where no past start of the kind foretold is known, or those known disagree by more
than ``AGREEMENT``, the page is told no number rather than a wrong one. As the start goes
on, the steps done say which kind it is and at what pace it runs, and the estimate
follows them.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import statistics
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from ddjax.session.session import STARTUP_STEPS

RECORD_NAME = ".startup.json"
WARM, COLD = "warm", "cold"
KEEP_STARTS = 12  # the past starts a record keeps
AGREE_OVER = 3  # the latest starts of a kind that the estimate comes from
AGREEMENT = 0.3  # their estimate is within ±30% of each of them, or there is none
# A kind of start other than the one foretold estimates once this share of its start has
# gone by; the pace counts this many seconds more on both sides, so a few short steps sway
# it little; and a kind estimates only while the start's pace is within MAX_PACE of its
# record (either way).
EVIDENCE_SHARE = 0.25
PACE_PRIOR_SECONDS = 1.0
MAX_PACE = 1.5
UNKNOWN_STEP_SECONDS = 1.0  # a step the record does not know (one added since)
JAX_CACHE = "jax"  # ``Startup(cache_dir=...)``: the directory JAX's config names


class Start(NamedTuple):
    """One past start.

    seconds: per step, as timed.
    cache: ``WARM`` (it compiled nothing), ``COLD`` (it compiled its programs), or None
      (some of each, or not known): only warm and cold starts estimate.
    written: the compilation-cache entries it wrote.
    """
    seconds: dict[str, float]
    cache: str | None
    written: frozenset[str] = frozenset()


class Record(NamedTuple):
    """A session's past starts, oldest first, and the compilation-cache entries its
    starts wrote (the programs a start finds there when warm)."""
    starts: tuple[Start, ...] = ()
    entries: frozenset[str] = frozenset()


def compile_cache_dir() -> pathlib.Path | None:
    """JAX's persistent compilation cache directory, or None where it is off."""
    import jax
    found = jax.config.jax_compilation_cache_dir
    return pathlib.Path(found) if found else None


def cache_entries(cache_dir: pathlib.Path | None) -> frozenset[str]:
    """The names in the compilation cache (empty where there is none)."""
    if cache_dir is None:
        return frozenset()
    try:
        return frozenset(entry.name for entry in os.scandir(cache_dir))
    except OSError:
        return frozenset()


def foretell(record: Record, cache_dir: pathlib.Path | None,
             present: frozenset[str]) -> str | None:
    """Whether the coming start will be warm or cold (None: can't tell), from what the
    cache holds now (``present``) against what the session's starts wrote there."""
    if cache_dir is None or not present:
        return COLD  # nothing kept, or nothing there yet: every program compiles
    if record.entries:
        found = len(record.entries & present)
        return WARM if found == len(record.entries) else COLD if found == 0 else None
    # Every start so far found its programs there (a cache shared with other sessions).
    return WARM if any(start.cache == WARM for start in record.starts) else None


def classify(record: Record, cache_dir: pathlib.Path | None, before: frozenset[str],
             written: frozenset[str]) -> str | None:
    """Whether a finished start was warm or cold, from the cache entries it ``written``
    (``before``: the cache as it began)."""
    if cache_dir is None:
        return COLD
    if not written:
        return WARM
    if record.entries:  # as many new programs as a whole start has: another JAX, a new config
        return COLD if len(written) >= 0.8 * len(record.entries) else None
    # A new cache (what the command compiled before the start, such as the kit's features,
    # is in it already) or one shared with other sessions, where some programs were found.
    return COLD if len(before) < len(written) else None


def plans(record: Record) -> dict[str, dict[str, float]]:
    """Seconds per step for each kind of start (warm, cold) whose latest ``AGREE_OVER``
    starts agree: the median per step, whose total is within ``AGREEMENT`` of each one's
    total. A kind with no such starts has no plan."""
    found = {}
    for kind in (WARM, COLD):
        starts = [s.seconds for s in record.starts if s.cache == kind][-AGREE_OVER:]
        if not starts:
            continue
        steps = set().union(*starts)
        plan = {step: statistics.median(s.get(step, 0.0) for s in starts) for step in steps}
        estimate = sum(plan.values())
        if all(abs(estimate - sum(s.values())) <= AGREEMENT * sum(s.values()) for s in starts):
            found[kind] = plan
    return found


def seconds_left(expected: dict[str, float], steps: tuple[str, ...], current: int,
                 in_step: float) -> float:
    """The estimated time left when step ``current`` of ``steps`` has run ``in_step`` s:
    what step ``current`` is expected to take beyond that (none once it overran), plus
    every later step's expected time."""
    def take(step: str) -> float:
        return expected.get(step, UNKNOWN_STEP_SECONDS)
    return max(0.0, take(steps[current]) - in_step) + sum(map(take, steps[current + 1:]))


def pace(expected: dict[str, float], steps: tuple[str, ...], current: int,
         done: dict[str, float], in_step: float) -> float:
    """How much slower than ``expected`` the start runs (1: as expected), from the steps
    done, and the current one once it overran; both sides count ``PACE_PRIOR_SECONDS``
    more."""
    take = lambda step: expected.get(step, UNKNOWN_STEP_SECONDS)
    seen = sum(done.get(step, 0.0) for step in steps[:current])
    planned = sum(map(take, steps[:current]))
    if in_step > take(steps[current]):
        seen, planned = seen + in_step, planned + take(steps[current])
    return (seen + PACE_PRIOR_SECONDS) / (planned + PACE_PRIOR_SECONDS)


def read_record(path: pathlib.Path | None) -> Record:
    """The past starts recorded at ``path``; none where there is no record or it is not
    one (a torn or hand-edited file only costs the estimate). A record from before the
    starts were told apart is one start of an unknown kind."""
    if path is None:
        return Record()
    try:
        data = json.loads(path.read_text())
        if "starts" not in data:
            return Record((Start(_seconds(data["seconds"]), None),))
        starts = tuple(Start(_seconds(s["seconds"]), s["cache"] if s.get("cache") in (WARM, COLD)
                             else None) for s in data["starts"])
        return Record(starts, frozenset(map(str, data.get("entries", []))))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return Record()


def _seconds(data: dict) -> dict[str, float]:
    return {str(k): float(v) for k, v in data.items() if float(v) >= 0}


def save_record(path: pathlib.Path, start: Start) -> None:
    """Adds ``start`` to the record at ``path`` (the latest ``KEEP_STARTS`` are kept), whole:
    a temporary file, then a rename. ``seconds`` stays the latest start's, for readers that
    want only that."""
    record = read_record(path)
    # A cold start wrote every program a start needs; anything else adds what it wrote.
    entries = start.written if start.cache == COLD else record.entries | start.written
    starts = (*record.starts, start)[-KEEP_STARTS:]
    rounded = lambda seconds: {k: round(v, 3) for k, v in seconds.items()}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({
        "seconds": rounded(start.seconds),
        "starts": [{"seconds": rounded(s.seconds), "cache": s.cache} for s in starts],
        "entries": sorted(entries)}))
    os.replace(tmp, path)


class Startup:
    """How far a start has come; thread-safe (steps come from the session's threads).

    Args:
      record: the session's past starts (``read_record``).
      steps: the steps, in order.
      clock: seconds, monotonic.
      cache_dir: JAX's compilation cache (``JAX_CACHE``: where JAX's config says; None:
        off), looked at now, before this start compiles anything, and once it finishes.
    """

    def __init__(self, record: Record | None = None,
                 steps: tuple[str, ...] = STARTUP_STEPS,
                 clock: Callable[[], float] = time.monotonic,
                 cache_dir: pathlib.Path | str | None = JAX_CACHE):
        self.record, self.steps, self._clock = record or Record(), steps, clock
        self._cache_dir = compile_cache_dir() if cache_dir == JAX_CACHE else cache_dir
        self._cache_before = cache_entries(self._cache_dir)
        self.cache = foretell(self.record, self._cache_dir, self._cache_before)
        self.plans = plans(self.record)
        self.expected = self.plans.get(self.cache)  # seconds per step, or None: no number
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

    def finish(self) -> Start:
        """The start is over; returns it (its seconds per step, and whether it was warm),
        for ``save_record``."""
        with self._lock:
            self._close_step(self._clock())
            self.ready = True
            seconds = dict(self._seconds)
        written = cache_entries(self._cache_dir) - self._cache_before
        return Start(seconds, classify(self.record, self._cache_dir, self._cache_before,
                                       written), written)

    def fail(self, message: str) -> None:
        with self._lock:
            self.error = message

    def _close_step(self, now: float) -> None:
        name = self.steps[self._current]
        self._seconds[name] = self._seconds.get(name, 0.0) + now - self._step_began
        self._step_began = now

    def _left(self, elapsed: float, in_step: float) -> float | None:
        """Seconds left, from the kind of start whose record the steps done fit best; the
        kind foretold until the steps done say otherwise. None where no kind fits."""
        fits = []
        for kind, plan in self.plans.items():
            if kind != self.cache and elapsed < EVIDENCE_SHARE * sum(plan.values()):
                continue
            slower = pace(plan, self.steps, self._current, self._seconds, in_step)
            fits.append((abs(math.log(slower)), kind != self.cache, slower, plan))
        if not fits:
            return None
        off, _, slower, plan = min(fits, key=lambda fit: fit[:2])
        if off > math.log(MAX_PACE):
            return None
        scaled = {step: slower * seconds for step, seconds in plan.items()}
        return seconds_left(scaled, self.steps, self._current, in_step)

    def status(self) -> dict:
        """``{"ready": true}`` once started; until then the step, how many steps are done,
        the seconds since the start and the estimated seconds left (null: no estimate);
        ``error`` if it failed."""
        with self._lock:
            if self.ready:
                return {"ready": True}
            now = self._clock()
            left = self._left(now - self._began, now - self._step_began)
            status = {"ready": False, "step": self.steps[self._current],
                      "done": self._current, "steps": len(self.steps),
                      "elapsed_s": round(now - self._began, 1),
                      "estimate_s": None if left is None else round(left, 1)}
            if self.error is not None:
                status["error"] = self.error
            return status
