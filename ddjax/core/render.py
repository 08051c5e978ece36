"""Render stage: loops + kit -> audio.

Two views of a loop, both batched over any leading axes:

- ``critic_view``: one bar in steady state, i.e. bar 2 of a looped rendering with the
  wrap-around tails of bar 1. Since a kit sample is at most one bar long, that is the
  circular convolution of the bar's onsets with each track's sample.
- ``listening_render``: ``repeats`` bars followed by a ``tail_seconds`` tail, as played
  to the person.
- ``loop_render``: the critic's bar from the kit's audio: one bar that loops in a DAW.

Levels. Every hit is mixed at ``volume``, then each loop gets one linear gain,
``min(1, PEAK / p)`` (``loop_gain``), where p is the loop's own peak over its first bar,
its steady-state bar and its tails. Every view is made of those three, so no render of a
loop peaks above -1 dBFS (``PEAK``), and each stays an exact linear function of the
samples up to that one gain. There is no limiter or compressor, and the critic hears the
audio at the gain that is exported.

Step ``j`` of bar ``b`` starts at sample ``b * bar_samples + int(j * sr * 60 / bpm / 4)``
(with ``swing``, odd steps ``swing / 200`` of a step later: ``int((j + d) * sr * 60 / bpm /
4)``), and every hit is mixed at ``volume`` times its velocity / 127. For tempi whose bar is a whole number of samples
(all the usual ones at 44.1 kHz: 90, 96, 100, 105, 112, 120, 125, 126, 140, 150, 160,
175 BPM...) that is exactly ``int(k * sr * 60 / bpm / 4)`` for the k-th step counted from
the start of the render; otherwise the bar is rounded to whole samples so that the loop
repeats exactly, and later bars may start one sample earlier than that formula says.

Fast path. At most tempi the step offsets repeat every ``p`` steps (p = 2 at 120 BPM: an
even step starts on a multiple of 11025 samples, an odd one 5512 samples later). The
bar then splits into ``n = 16 / p`` blocks, and placing a sample on the steps of one
phase is a Toeplitz ``(2n x n)`` matrix of the grid applied to the sample cut into
blocks, shifted by the phase's offset: one small matmul per loop instead of a gather per
hit. ``render_tables`` cuts the kit into blocks once. On CPU, loops go through a few at
a time (``ddjax.core.batching``) so that their blocks stay in cache.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ddjax import limits
from ddjax.core.batching import in_chunks
from ddjax.core.groove import Humanize, humanized_velocity
from ddjax.core.loops import FULL_VELOCITY, Loop
from ddjax.errors import DdjaxError

MAX_TABLE_PHASES = 4  # beyond this, the p rolls cost more than folding the hits
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
      swing: 0 to 75 (percent): every off-beat 16th (odd step) starts ``swing / 200`` of a
        16th late: 0 is straight, 66.7 puts it on the 8th-note triplet (a 2:1 shuffle).
      humanize: seeded timing and velocity jitter per cell (``ddjax.core.groove``); none by
        default.
    """

    sr: int = 44100
    bpm: float = 120.0
    volume: float = 0.5
    repeats: int = 4
    tail_seconds: float = 1.0
    n_steps: int = 16
    swing: float = 0.0
    humanize: Humanize = Humanize()

    def __post_init__(self):
        if not 0.0 <= self.swing <= limits.MAX_SWING:
            raise DdjaxError(f"swing must be 0 to {limits.MAX_SWING:g}%, got {self.swing:g}")
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
        return int(round(self.n_steps * self.step_samples))

    @property
    def step_offsets(self) -> np.ndarray:
        """int[n_steps]: start of each step within its bar, in samples: ``int((j + d) *
        step_samples)``, where d is ``swing / 200`` on odd steps and 0 on even ones."""
        late = self.swing / 200.0
        return np.array([int((j + late * (j % 2)) * self.step_samples)
                         for j in range(self.n_steps)], np.int64)

    def cell_offsets(self, n_tracks: int) -> np.ndarray:
        """int[n_tracks, n_steps]: where each cell's hit starts within its bar, in samples:
        ``step_offsets`` moved by the humanize timing (never before the bar's start)."""
        jitter = self.humanize.timing_ms(n_tracks, self.n_steps) * self.sr / 1000.0
        late = self.swing / 200.0
        steps = np.arange(self.n_steps) + late * (np.arange(self.n_steps) % 2)
        return np.maximum(0, (steps * self.step_samples + jitter).astype(np.int64))

    @property
    def listening_samples(self) -> int:
        """Length of the listening render, in samples."""
        return self.repeats * self.bar_samples + int(round(self.tail_seconds * self.sr))


class _Blocks(NamedTuple):
    period: int  # steps after which the offsets repeat
    block_samples: int


def _block_layout(config: RenderConfig) -> _Blocks | None:
    if config.humanize.ms:
        return None  # every cell has its own offset
    offsets, n, bar = config.step_offsets, config.n_steps, config.bar_samples
    for period in (p for p in range(1, MAX_TABLE_PHASES + 1) if n % p == 0):
        block = int(offsets[period]) if period < n else bar
        if block * (n // period) == bar and all(
                offsets[j + period] - offsets[j] == block for j in range(n - period)):
            return _Blocks(period, block)
    return None


def render_tables(kit_audio: jax.Array, config: RenderConfig) -> jax.Array:
    """The kit, precomputed for ``critic_view``.

    Args:
      kit_audio: float32[kit, samples] from ``Kit.audio``, each at most one bar.
      config: the render settings.

    Returns:
      float32[kit, blocks, block_samples], the bar-padded samples cut into blocks, or
      float32[kit, bar_samples] where the tempo has no short period.
    """
    bar = config.bar_samples
    if kit_audio.shape[-1] > bar:
        raise DdjaxError(f"kit samples are up to {kit_audio.shape[-1]} samples long, more than"
                         f" one bar ({bar}); load the kit with this tempo")
    padded = jnp.pad(kit_audio, ((0, 0), (0, bar - kit_audio.shape[-1])))
    layout = _block_layout(config)
    if layout is None:
        return padded
    return padded.reshape(kit_audio.shape[0], config.n_steps // layout.period,
                          layout.block_samples)


def _toeplitz_index(period: int, n_blocks: int) -> np.ndarray:
    # Output block j (of 2n) takes phase q of input block i from step period * (j - i) + q
    # when 0 <= j - i < n; other entries read the zero appended after the last step.
    j = np.arange(2 * n_blocks)[None, :, None]
    q = np.arange(period)[:, None, None]
    i = np.arange(n_blocks)[None, None, :]
    lag = j - i
    return np.where((lag >= 0) & (lag < n_blocks), period * lag + q, period * n_blocks)


def _gains(loop: Loop, dtype, config: RenderConfig) -> jax.Array:
    """Each cell's gain: ``volume * velocity / 127`` where it is on, else 0 (the velocity
    after the humanize jitter, clipped to 1..127)."""
    gains = loop.grid.astype(dtype) * config.volume
    velocity = loop.velocity
    if config.humanize.velocity:
        jitter = config.humanize.velocity_offsets(*loop.grid.shape[-2:])
        velocity = jnp.clip((FULL_VELOCITY if velocity is None else velocity) + jitter,
                            1, FULL_VELOCITY)
    if velocity is not None:
        gains = gains * (velocity.astype(dtype) / FULL_VELOCITY)
    return gains


def _one_bar(kit_audio: jax.Array, loop: Loop, config: RenderConfig) -> jax.Array:
    """One bar's hits, unwrapped, at ``volume``: float32[..., 2 * bar_samples]."""
    bar = config.bar_samples
    sample_len = kit_audio.shape[-1]
    track_audio = kit_audio[loop.samples]  # [..., tracks, samples]
    gains = _gains(loop, kit_audio.dtype, config)
    out = jnp.zeros(loop.grid.shape[:-2] + (2 * bar,), kit_audio.dtype)
    if config.humanize.ms:  # a hit per cell, each at its own offset
        cells = config.cell_offsets(loop.grid.shape[-2])
        for (track, step), offset in np.ndenumerate(cells):
            out = out.at[..., offset:offset + sample_len].add(
                gains[..., track, step, None] * track_audio[..., track, :])
        return out
    per_step = jnp.einsum("...ts,...tn->...sn", gains, track_audio)
    for step, offset in enumerate(config.step_offsets):
        out = out.at[..., offset:offset + sample_len].add(per_step[..., step, :])
    return out


def _one_bar_blocks(tables: jax.Array, loop: Loop, config: RenderConfig,
                    layout: _Blocks) -> jax.Array:
    """``_one_bar`` by the block path, for loops batched over [...].

    Phase q of a sample is phase 0 shifted by ``step_offsets[q]``, and the shift commutes
    with the sum over tracks and blocks: one matmul per loop gives every phase's sum of
    unshifted blocks; then shift each phase into place and add. A sample is at most one
    bar long, so the last of the 2n output blocks is empty before the shift, and a shift
    by less than a block never wraps anything but zeros.
    """
    lead = loop.grid.shape[:-2]
    n_tracks = loop.grid.shape[-2]
    period, n_blocks = layout.period, config.n_steps // layout.period
    gains = _gains(loop, tables.dtype, config)
    gains = jnp.concatenate([gains, jnp.zeros(gains.shape[:-1] + (1,), gains.dtype)], -1)
    toeplitz = gains[..., _toeplitz_index(period, n_blocks)]  # [..., t, q, j, i]
    toeplitz = jnp.moveaxis(toeplitz, -4, -2).reshape(
        lead + (2 * period * n_blocks, n_tracks * n_blocks))  # [..., (q j), (t i)]
    blocks = tables[loop.samples].reshape(lead + (n_tracks * n_blocks, layout.block_samples))
    phases = jnp.matmul(toeplitz, blocks, precision=jax.lax.Precision.HIGHEST)
    phases = phases.reshape(lead + (period, 2 * config.bar_samples))
    out = phases[..., 0, :]
    for q in range(1, period):
        out = out + jnp.roll(phases[..., q, :], int(config.step_offsets[q]), axis=-1)
    return out


def loop_gain(unwrapped: jax.Array, bar: int, xp=jnp) -> jax.Array:
    """The one gain of each loop: ``min(1, PEAK / p)``, where p is the largest absolute
    sample of the loop's first bar, of its steady-state bar (the bar plus the tails that
    wrap around) and of its tails after the last bar. Every render is made of these three,
    so none peaks above ``PEAK`` (-1 dBFS). float32[...] for ``unwrapped`` [..., 2 bar]
    (``xp=np``: the same on the host)."""
    first, tails = unwrapped[..., :bar], unwrapped[..., bar:]
    peak = xp.maximum(xp.max(xp.abs(first + tails), axis=-1),
                      xp.max(xp.abs(unwrapped), axis=-1))
    return xp.minimum(1.0, PEAK / xp.maximum(peak, 1e-30))


def _steady_bar(unwrapped: jax.Array, bar: int) -> jax.Array:
    gain = loop_gain(unwrapped, bar)
    return gain[..., None] * (unwrapped[..., :bar] + unwrapped[..., bar:])


def critic_view(tables: jax.Array, loop: Loop, config: RenderConfig) -> jax.Array:
    """The steady-state bar the critic hears, at the loop's gain (``loop_gain``).

    Args:
      tables: from ``render_tables``.
      loop: ``grid: bool[..., tracks, steps]``, ``samples: int32[..., tracks]``.
      config: the render settings.

    Returns:
      float32[..., bar_samples].
    """
    bar = config.bar_samples
    layout = _block_layout(config)
    if layout is None:
        return _steady_bar(_one_bar(tables, loop, config), bar)
    # Memory bound: a batched gather of every loop's blocks spills to DRAM, so go through
    # small chunks of loops whose blocks and partial sums stay in cache.
    return in_chunks(lambda l: _steady_bar(_one_bar_blocks(tables, l, config, layout), bar),
                     loop, loop.grid.ndim - 2)


def listening_render(kit_audio: jax.Array, loop: Loop, config: RenderConfig) -> jax.Array:
    """The loop as played: ``repeats`` bars and a tail, at the loop's gain (``loop_gain``).

    Args:
      kit_audio: float32[kit, samples] from ``Kit.audio``, each at most one bar.
      loop: ``grid: bool[..., tracks, steps]``, ``samples: int32[..., tracks]``.
      config: the render settings.

    Returns:
      float32[..., listening_samples].
    """
    bar, total = config.bar_samples, config.listening_samples
    one_bar = _one_bar(kit_audio, loop, config)
    out = jnp.zeros(loop.grid.shape[:-2] + (max(total, (config.repeats + 1) * bar),),
                    kit_audio.dtype)
    for repeat in range(config.repeats):
        out = out.at[..., repeat * bar:(repeat + 2) * bar].add(one_bar)
    return loop_gain(one_bar, bar)[..., None] * out[..., :total]


def host_listening_render(rows: np.ndarray, grid: np.ndarray, velocity: np.ndarray | None,
                          config: RenderConfig) -> np.ndarray:
    """``listening_render`` of one loop in NumPy, on the host, with nothing to compile: the
    same rule (each hit at ``cell_offsets``, at ``volume`` x velocity / 127 after the
    humanize jitter, one gain per loop), so a loop is heard at once at any tempo and swing
    (the rating page's auditions; the critic and every file use ``listening_render``).

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


def loop_render(kit_audio: jax.Array, loop: Loop, config: RenderConfig) -> jax.Array:
    """Exactly one bar that loops seamlessly: the steady-state bar (the tails that ring
    past the bar's end folded onto its start), at the loop's gain. It is what the critic
    hears (``critic_view``), from the kit's audio instead of its tables.

    Returns:
      float32[..., bar_samples].
    """
    return _steady_bar(_one_bar(kit_audio, loop, config), config.bar_samples)
