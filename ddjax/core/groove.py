"""Humanize: seeded timing and velocity jitter, the same in the audio and in the MIDI.

A loop repeats, so its jitter does too: every cell (track t, step j) gets one fixed timing
offset and one fixed velocity offset, drawn once from ``seed`` (NumPy's PCG64, so the same
seed gives the same offsets on every machine) and scaled by ``ms`` and ``velocity``:

- timing: ``u * ms`` milliseconds, u uniform in [-1, 1]; a hit is never moved before the
  start of its bar (the first step is never early, so a loop still starts on its
  downbeat);
- velocity: ``round(w * velocity)``, w uniform in [-1, 1], added to the cell's velocity
  and clipped to 1..127.

Track t's offsets do not depend on how many tracks the loop has. ``ms`` is at most
``MAX_MS`` (30 ms), so with any swing, at any tempo up to 200 BPM, every hit still starts
inside its bar.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ddjax import limits
from ddjax.errors import DdjaxError

MAX_MS = 30.0
MAX_VELOCITY = 40


@dataclasses.dataclass(frozen=True)
class Humanize:
    """Seeded jitter. ``Humanize()`` (all zero) is none: the grid exactly.

    Attributes:
      ms: the largest timing offset, in milliseconds, 0 to ``MAX_MS``.
      velocity: the largest velocity offset, 0 to ``MAX_VELOCITY``.
      seed: which offsets (a non-negative integer).
    """

    ms: float = 0.0
    velocity: int = 0
    seed: int = 0

    def __post_init__(self):
        if not 0.0 <= self.ms <= MAX_MS:
            raise DdjaxError(f"humanize timing must be 0 to {MAX_MS:g} ms, got {self.ms:g}")
        if not 0 <= self.velocity <= MAX_VELOCITY:
            raise DdjaxError(f"humanize velocity must be 0 to {MAX_VELOCITY}, got"
                             f" {self.velocity}")
        if self.seed < 0:
            raise DdjaxError(f"the humanize seed must be >= 0, got {self.seed}")

    def __bool__(self) -> bool:
        return self.ms > 0.0 or self.velocity > 0

    def _unit(self, n_steps: int) -> np.ndarray:
        # float64[2, MAX_TRACKS, n_steps], uniform in [-1, 1]: timing, then velocity.
        rng = np.random.default_rng([self.seed, n_steps])
        return rng.uniform(-1.0, 1.0, (2, limits.MAX_TRACKS, n_steps))

    def timing_ms(self, n_tracks: int, n_steps: int) -> np.ndarray:
        """float64[n_tracks, n_steps]: each cell's timing offset, in milliseconds."""
        return self.ms * self._unit(n_steps)[0, :n_tracks]

    def velocity_offsets(self, n_tracks: int, n_steps: int) -> np.ndarray:
        """int32[n_tracks, n_steps]: each cell's velocity offset."""
        return np.round(self.velocity * self._unit(n_steps)[1, :n_tracks]).astype(np.int32)

    def describe(self) -> str:
        """``MS,VELOCITY,SEED`` as ``--humanize`` takes it, or "none"."""
        return f"{self.ms:g},{self.velocity},{self.seed}" if self else "none"

    def record(self) -> dict[str, Any]:
        """The loop JSON's ``humanize`` value."""
        ms = int(self.ms) if float(self.ms).is_integer() else float(self.ms)
        return {"ms": ms, "velocity": self.velocity, "seed": self.seed}


def humanized_velocity(velocity: np.ndarray | None, humanize: Humanize,
                       shape: tuple[int, int]) -> np.ndarray | None:
    """Each cell's velocity after jitter, int32[tracks, steps] (None stays None when there
    is no velocity jitter: every hit at 127)."""
    if not humanize.velocity:
        return velocity
    base = np.full(shape, 127, np.int32) if velocity is None else np.asarray(velocity)
    return np.clip(base + humanize.velocity_offsets(*shape), 1, 127).astype(np.int32)


def from_record(value: Any, where: str) -> Humanize:
    """A loop JSON's ``humanize`` value, checked: ``{"ms": 8, "velocity": 10, "seed": 3}``
    (each key optional)."""
    def number(key, kind):
        x = value.get(key, 0)
        if isinstance(x, bool) or not isinstance(x, kind):
            raise DdjaxError(f"{where}: 'humanize' {key!r} must be a"
                             f" {'number' if kind is not int else 'whole number'}")
        return x
    if not isinstance(value, dict) or set(value) - {"ms", "velocity", "seed"}:
        raise DdjaxError(f"{where}: 'humanize' must be an object with 'ms', 'velocity' and"
                         " 'seed'")
    try:
        return Humanize(float(number("ms", (int, float))), number("velocity", int),
                        number("seed", int))
    except DdjaxError as err:
        raise DdjaxError(f"{where}: {err}") from None


def of_record(record: dict[str, Any], where: str = "loop") -> Humanize:
    """The ``Humanize`` of a loop record (none where it has no ``humanize`` key)."""
    return from_record(record["humanize"], where) if "humanize" in record else Humanize()


def parse(text: str) -> Humanize:
    """``MS[,VELOCITY[,SEED]]`` from the command line, e.g. ``8,10`` or ``8,10,3``."""
    parts = text.split(",")
    if not 1 <= len(parts) <= 3:
        raise ValueError(text)
    return Humanize(float(parts[0]), *(int(p) for p in parts[1:]))
