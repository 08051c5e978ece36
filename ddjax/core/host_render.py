"""Render stage, host side: the loop as played, in NumPy, with no JAX.

``ddjax.core.render`` renders batches of loops on the device; this module holds what a
render needs without a device: the settings (``RenderConfig``), the one gain per loop
(``loop_gain``, -1 dBFS peak) and ``host_listening_render``, the listening render of one
loop with nothing to compile (auditions, ``ddjax export``). ``ddjax.core.render``
re-exports all three and states the render's rules (offsets, swing, levels).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ddjax import limits
from ddjax.core.groove import STRAIGHT, Humanize, humanized_velocity, swing_late
from ddjax.core.loop_space import FULL_VELOCITY
from ddjax.errors import DdjaxError

PEAK = 10.0 ** (-1.0 / 20.0)  # -1 dBFS: no render of a loop peaks above it


@dataclasses.dataclass(frozen=True)
class RenderConfig:
    """How loops become audio.

    Attributes:
      sr: sample rate, in Hz.
      bpm: tempo, in quarter notes per minute; a step is a 16th note.
      volume: gain of every hit.
      repeats: bars in the listening render.
      tail_seconds: silence-and-tails after the last bar of the listening render.
      n_steps: steps per bar.
      swing: 50 to 75 (percent, the MPC/Ableton scale): every off-beat 16th (odd step)
        starts at ``swing`` percent of its 8th note, ``2 * swing / 100 - 1`` of a 16th late
        (``groove.swing_late``): 50 is straight, 66.67 puts it on the 8th-note triplet (a
        2:1 shuffle).
      humanize: seeded timing and velocity jitter per cell (``ddjax.core.groove``); none by
        default.
    """

    sr: int = 44100
    bpm: float = 120.0
    volume: float = 0.5
    repeats: int = 4
    tail_seconds: float = 1.0
    n_steps: int = 16
    swing: float = STRAIGHT
    humanize: Humanize = Humanize()  # noqa: RUF009 (frozen: one shared default is safe)

    def __post_init__(self):
        if not limits.MIN_SWING <= self.swing <= limits.MAX_SWING:
            raise DdjaxError(f"swing must be {limits.MIN_SWING:g} to {limits.MAX_SWING:g}%"
                             f" (50 is straight), got {self.swing:g}")
        if not (limits.MIN_BPM <= self.bpm <= limits.MAX_BPM):
            raise DdjaxError(f"bpm must be {limits.MIN_BPM:g} to {limits.MAX_BPM:g},"
                             f" got {self.bpm:g}")
        if self.sr <= 0 or self.repeats < 1 or self.tail_seconds < 0:
            raise DdjaxError("sr and repeats must be positive and tail_seconds non-negative")

    @property
    def step_samples(self) -> float:
        """Length of a 16th note, in (fractional) samples."""
        return self.sr * 60.0 / self.bpm / 4.0

    @property
    def bar_samples(self) -> int:
        """Length of one bar, in samples."""
        return round(self.n_steps * self.step_samples)

    @property
    def step_offsets(self) -> np.ndarray:
        """int[n_steps]: start of each step within its bar, in samples: ``int((j + d) *
        step_samples)``, where d is ``swing_late(swing)`` on odd steps and 0 on even ones."""
        late = swing_late(self.swing)
        return np.array([int((j + late * (j % 2)) * self.step_samples)
                         for j in range(self.n_steps)], np.int64)

    def cell_offsets(self, n_tracks: int) -> np.ndarray:
        """int[n_tracks, n_steps]: where each cell's hit starts within its bar, in samples:
        ``step_offsets`` moved by the humanize timing (never before the bar's start)."""
        jitter = self.humanize.timing_ms(n_tracks, self.n_steps) * self.sr / 1000.0
        late = swing_late(self.swing)
        steps = np.arange(self.n_steps) + late * (np.arange(self.n_steps) % 2)
        return np.maximum(0, (steps * self.step_samples + jitter).astype(np.int64))

    @property
    def listening_samples(self) -> int:
        """Length of the listening render, in samples."""
        return self.repeats * self.bar_samples + round(self.tail_seconds * self.sr)


def loop_gain(unwrapped: np.ndarray, bar: int, xp=np) -> np.ndarray:
    """The one gain of each loop: ``min(1, PEAK / p)``, where p is the largest absolute
    sample of the loop's first bar, of its steady-state bar (the bar plus the tails that
    wrap around) and of its tails after the last bar. Every render is made of these three,
    so none peaks above ``PEAK`` (-1 dBFS). float32[...] for ``unwrapped`` [..., 2 bar]
    (``xp=jax.numpy``: the same on a device)."""
    first, tails = unwrapped[..., :bar], unwrapped[..., bar:]
    peak = xp.maximum(xp.max(xp.abs(first + tails), axis=-1),
                      xp.max(xp.abs(unwrapped), axis=-1))
    return xp.minimum(1.0, PEAK / xp.maximum(peak, 1e-30))


def host_listening_render(rows: np.ndarray, grid: np.ndarray, velocity: np.ndarray | None,
                          config: RenderConfig) -> np.ndarray:
    """``render.listening_render`` of one loop in NumPy, on the host, with nothing to
    compile: the same rule (each hit at ``cell_offsets``, at ``volume`` x velocity / 127
    after the humanize jitter, one gain per loop), so a loop is heard at once at any tempo
    and swing (the rating page's auditions, ``ddjax export``'s preview and stems).

    Args:
      rows: float32[tracks, samples], each track's sample, at most one bar long.
      grid: bool[tracks, steps].
      velocity: int[tracks, steps] or None (every hit at 127).
      config: the render settings.

    Returns:
      float32[listening_samples].
    """
    bar, total, length = config.bar_samples, config.listening_samples, rows.shape[-1]
    offsets = config.cell_offsets(grid.shape[0])
    velocity = humanized_velocity(velocity, config.humanize, grid.shape)
    gains = config.volume * (np.ones(grid.shape) if velocity is None
                             else np.asarray(velocity) / FULL_VELOCITY)
    one_bar = np.zeros(2 * bar)
    for track, step in zip(*np.nonzero(grid)):
        start = offsets[track, step]
        one_bar[start:start + length] += gains[track, step] * rows[track]
    out = np.zeros(max(total, (config.repeats + 1) * bar))
    for repeat in range(config.repeats):
        out[repeat * bar:(repeat + 2) * bar] += one_bar
    return (loop_gain(one_bar, bar, xp=np) * out[:total]).astype(np.float32)
