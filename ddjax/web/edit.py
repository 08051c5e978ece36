"""Edit stage: a loop as the person changed it on the page -> the loop they hear.

On the rating page a person can toggle cells, mute or solo tracks, and listen at another
tempo and swing. An ``Edit`` holds all of that, checked (``parse``); ``heard`` is the
loop's grid and velocities as they sound: the edited grid with the row of every silent
track cleared. A track is silent when it is muted, or when another track is soloed and it
is not.

Tempo and swing are for listening only. A session's critic hears every loop at the
session's tempo and swing, so rating an edited loop ("Rate this version") rates the
``heard`` grid and velocities at those.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ddjax import limits
from ddjax.core.loops import FULL_VELOCITY
from ddjax.errors import DdjaxError


class EditError(DdjaxError):
    """An edit that is malformed or does not fit the loop (one line, for the page)."""


@dataclasses.dataclass(frozen=True)
class Edit:
    """A loop as edited on the page.

    Attributes:
      grid: bool[tracks, steps], the cells after toggling.
      velocity: int[tracks, steps], each cell's MIDI velocity (1-127), or None: 127.
      muted: bool[tracks].
      soloed: bool[tracks].
      bpm: the tempo to listen at, or None for the session's.
      swing: the swing to listen at (percent, MPC scale: 50 straight, 66.67 triplet), or
        None for the session's.
    """

    grid: np.ndarray
    velocity: np.ndarray | None
    muted: np.ndarray
    soloed: np.ndarray
    bpm: float | None = None
    swing: float | None = None

    @property
    def audible(self) -> np.ndarray:
        """bool[tracks]: the tracks that sound."""
        return ~self.muted & (self.soloed if self.soloed.any() else True)

    def heard(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The grid (silent tracks' rows cleared) and velocities that sound."""
        return self.grid & self.audible[:, None], self.velocity

    def changes(self, grid: np.ndarray, velocity: np.ndarray | None) -> bool:
        """Whether what sounds differs from the loop ``grid``/``velocity`` as proposed."""
        heard, heard_velocity = self.heard()
        if not np.array_equal(heard, grid):
            return True
        full = np.full(grid.shape, FULL_VELOCITY)
        before = full if velocity is None else np.asarray(velocity)
        after = full if heard_velocity is None else heard_velocity
        return not np.array_equal(np.where(heard, after, 0), np.where(grid, before, 0))


def _matrix(value: Any, name: str, shape: tuple[int, int], low: int, high: int) -> np.ndarray:
    rows, steps = shape
    if (not isinstance(value, list) or len(value) != rows
            or not all(isinstance(row, list) and len(row) == steps for row in value)):
        raise EditError(f"'{name}' must be {rows} lists of {steps} numbers, as the loop's grid")
    cells = [cell for row in value for cell in row]
    if not all(isinstance(c, int) for c in cells):  # true and false count as 1 and 0
        raise EditError(f"'{name}' must hold whole numbers")
    out = np.array(value, np.int64).reshape(shape)
    if out.min(initial=low) < low or out.max(initial=high) > high:
        raise EditError(f"'{name}' must hold numbers from {low} to {high}")
    return out


def _flags(value: Any, name: str, n_tracks: int) -> np.ndarray:
    if value is None:
        return np.zeros(n_tracks, bool)
    if (not isinstance(value, list) or len(value) != n_tracks
            or not all(isinstance(v, bool) for v in value)):
        raise EditError(f"'{name}' must be {n_tracks} booleans, one per track")
    return np.array(value, bool)


def _number(value: Any, name: str, low: float, high: float, unit: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            low <= value <= high):
        raise EditError(f"'{name}' must be a number from {low:g} to {high:g}{unit}")
    return float(value)


def parse(body: dict, shape: tuple[int, int]) -> Edit:
    """The edit in a page's request ``body`` for a loop of ``shape`` (tracks, steps):
    ``grid`` (0/1 or booleans), and optionally ``velocity`` (1-127), ``mute`` and ``solo``
    (a boolean per track), ``bpm`` and ``swing``. Raises ``EditError`` naming the first
    field that is wrong."""
    if "grid" not in body:
        raise EditError("an edit needs the loop's 'grid'")
    grid = _matrix(body["grid"], "grid", shape, 0, 1).astype(bool)
    velocity = body.get("velocity")
    if velocity is not None:
        velocity = _matrix(velocity, "velocity", shape, 1, FULL_VELOCITY).astype(np.int32)
    return Edit(grid, velocity, _flags(body.get("mute"), "mute", shape[0]),
                _flags(body.get("solo"), "solo", shape[0]),
                _number(body.get("bpm"), "bpm", limits.MIN_BPM, limits.MAX_BPM, " BPM"),
                _number(body.get("swing"), "swing", limits.MIN_SWING, limits.MAX_SWING,
                        "% (50 is straight)"))
