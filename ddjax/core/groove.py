"""Groove: swing, and seeded timing and velocity jitter, the same in the audio and in the MIDI.

Swing is on the MPC/Ableton scale: swing S% puts the second 16th of each 8th-note pair at
S% of the 8th, so an odd step starts ``swing_late(S) = 2 * S / 100 - 1`` of a 16th late:
50 is straight, 66.67 the 8th-note triplet (a 2:1 shuffle), 75 (``limits.MAX_SWING``) a
dotted 8th and a 32nd. Files from before this scale (a loop JSON or a ``session.json``
whose ``swing`` has no ``"swing_scale": "mpc"`` beside it) stored the odd step's delay as
``old / 200`` of a 16th; ``recorded_swing`` reads both, as ``50 + old / 4``, the same delay.

A loop repeats, so its jitter does too: every cell (track t, step j) gets one fixed timing
offset and one fixed velocity offset, drawn once from ``seed`` (NumPy's PCG64, so the same
seed gives the same offsets on every machine) and scaled by ``ms`` and ``velocity``:

- timing: ``u * ms`` milliseconds, u uniform in [-1, 1]; a hit is never moved before the
  start of its bar (the first step is never early, so a loop still starts on its
  downbeat);
- velocity: ``round(w * velocity)``, w uniform in [-1, 1], added to the cell's velocity
  and clipped to 1..127.

Track t's offsets do not depend on how many tracks the loop has. ``ms`` is at most
``MAX_MS`` (30 ms), so with any swing (at most half a 16th late: 37.5 ms at 200 BPM), at
any tempo up to 200 BPM, every hit still starts inside its bar.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ddjax import limits
from ddjax.errors import DdjaxError

MAX_MS = 30.0
MAX_VELOCITY = 40
STRAIGHT = limits.MIN_SWING  # percent: no swing
SWING_SCALE = "mpc"  # the marker beside ``swing`` in files written on this scale
OLD_MAX_SWING = 75.0  # the old scale's range: 0 to 75 (percent of half a 16th)


def swing_late(swing: float) -> float:
    """How late an odd 16th starts, in 16ths: ``2 * swing / 100 - 1`` (``swing``: percent,
    MPC scale; 0 at 50, 1/3 at 66.67, 1/2 at 75)."""
    return 2.0 * swing / 100.0 - 1.0


def mpc_of_old_swing(old: float) -> float:
    """The MPC-scale swing of a pre-MPC file's ``swing`` (odd steps ``old / 200`` of a 16th
    late): ``50 + old / 4``, so 0 -> 50, 20 -> 55, 66.67 -> 66.67."""
    return STRAIGHT + old / 4.0


def recorded_swing(record: dict[str, Any], where: str = "loop") -> float:
    """The swing (percent, MPC scale) of a loop record or ``session.json``: its ``swing``
    where ``swing_scale`` is ``"mpc"``, converted with ``mpc_of_old_swing`` where the file
    is older (no ``swing_scale``), straight where it has no ``swing``. A DdjaxError naming
    ``where`` when the value is no number in its scale's range."""
    swing, scale = record.get("swing"), record.get("swing_scale")
    if swing is None:
        return STRAIGHT
    if scale not in (None, SWING_SCALE):
        raise DdjaxError(f"{where}: 'swing_scale' is {scale!r}; it must be {SWING_SCALE!r}"
                         " (or absent, for the old scale)")
    low, high = (limits.MIN_SWING, limits.MAX_SWING) if scale else (0.0, OLD_MAX_SWING)
    if isinstance(swing, bool) or not isinstance(swing, (int, float)) or not (
            low <= swing <= high):
        raise DdjaxError(f"{where}: 'swing' is {swing!r}; it must be a percent, {low:g} to"
                         f" {high:g}")
    return float(swing) if scale else mpc_of_old_swing(float(swing))


def swing_record(swing: float) -> dict[str, Any]:
    """What a loop JSON or ``session.json`` keeps of ``swing`` (percent, MPC scale): the
    value and the scale's marker, or nothing for straight 16ths (which old readers and
    ``recorded_swing`` read as straight too)."""
    if swing == STRAIGHT:
        return {}
    return {"swing": int(swing) if float(swing).is_integer() else float(swing),
            "swing_scale": SWING_SCALE}


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
