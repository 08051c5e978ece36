"""Render stage: loops + kit -> audio.

Two views of a loop, both batched over any leading axes:

- ``critic_view``: one bar in steady state, i.e. bar 2 of a looped rendering with the
  wrap-around tails of bar 1. Since a kit sample is at most one bar long, that is the
  circular convolution of the bar's onsets with each track's sample.
- ``listening_render``: ``repeats`` bars followed by a ``tail_seconds`` tail, as played
  to the person.

Step ``j`` of bar ``b`` starts at sample ``b * bar_samples + int(j * sr * 60 / bpm / 4)``,
and every hit is mixed at ``volume``. For tempi whose bar is a whole number of samples
(all the usual ones at 44.1 kHz: 90, 96, 100, 105, 112, 120, 125, 126, 140, 150, 160,
175 BPM...) that is exactly ``int(k * sr * 60 / bpm / 4)`` for the k-th step counted from
the start of the render; otherwise the bar is rounded to whole samples so that the loop
repeats exactly, and later bars may start one sample earlier than that formula says.

Fast path. At most tempi the step offsets repeat every ``p`` steps (p = 2 at 120 BPM: an
even step starts on a multiple of 11025 samples, an odd one 5512 samples later). The
bar then splits into ``16 / p`` blocks, and placing a sample on the steps of one phase
is a circulant ``(blocks x blocks)`` matrix of the grid applied to the sample cut into
blocks, rolled by the phase's offset: one small matmul per loop instead of a gather per
hit. ``render_tables`` cuts the kit into blocks once. On CPU, loops go through a few at
a time (``ddjax.batching``) so that their blocks stay in cache.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ddjax import limits
from ddjax.batching import in_chunks
from ddjax.errors import DdjaxError
from ddjax.loops import Loop

MAX_TABLE_PHASES = 4  # beyond this, the p rolls cost more than folding the hits


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
    """

    sr: int = 44100
    bpm: float = 120.0
    volume: float = 0.5
    repeats: int = 4
    tail_seconds: float = 1.0
    n_steps: int = 16

    def __post_init__(self):
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
        """int[n_steps]: start of each step within its bar, in samples."""
        return np.array([int(j * self.step_samples) for j in range(self.n_steps)], np.int64)

    @property
    def listening_samples(self) -> int:
        """Length of the listening render, in samples."""
        return self.repeats * self.bar_samples + int(round(self.tail_seconds * self.sr))


class _Blocks(NamedTuple):
    period: int  # steps after which the offsets repeat
    block_samples: int


def _block_layout(config: RenderConfig) -> _Blocks | None:
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


def _circulant_index(period: int, n_blocks: int) -> np.ndarray:
    # Output block j takes phase q of input block i from step period * ((j - i) % n) + q.
    j = np.arange(n_blocks)[:, None, None]
    q = np.arange(period)[None, :, None]
    i = np.arange(n_blocks)[None, None, :]
    return (period * ((j - i) % n_blocks) + q).reshape(n_blocks, period * n_blocks)


def _one_bar(kit_audio: jax.Array, loop: Loop, config: RenderConfig) -> jax.Array:
    """One bar's hits, unwrapped: float32[..., 2 * bar_samples]."""
    bar = config.bar_samples
    sample_len = kit_audio.shape[-1]
    track_audio = kit_audio[loop.samples]  # [..., tracks, samples]
    gains = loop.grid.astype(kit_audio.dtype) * config.volume
    per_step = jnp.einsum("...ts,...tn->...sn", gains, track_audio)
    out = jnp.zeros(loop.grid.shape[:-2] + (2 * bar,), kit_audio.dtype)
    for step, offset in enumerate(config.step_offsets):
        out = out.at[..., offset:offset + sample_len].add(per_step[..., step, :])
    return out


def _roll_sum(y: jax.Array, offsets: np.ndarray) -> jax.Array:
    """``sum_q roll(y[..., q, :], offsets[q])`` over the phase axis ``-2``."""
    bar = y.shape[-1]
    out = y[..., 0, :]
    for q in range(1, y.shape[-2]):
        off = int(offsets[q]) % bar
        out = out + jnp.concatenate([y[..., q, bar - off:], y[..., q, :bar - off]], axis=-1)
    return out


def _view_blocks(tables: jax.Array, loop: Loop, config: RenderConfig,
                 layout: _Blocks) -> jax.Array:
    """``critic_view`` by the block path, for loops batched over [...].

    Phase q of a sample is phase 0 rolled by ``step_offsets[q]``, and the roll commutes
    with the sum over tracks and blocks: one matmul per loop gives every phase's sum of
    unshifted blocks; then roll each phase into place and add.
    """
    lead = loop.grid.shape[:-2]
    n_tracks = loop.grid.shape[-2]
    period, n_blocks = layout.period, config.n_steps // layout.period
    gains = loop.grid.astype(tables.dtype) * config.volume
    index = _circulant_index(period, n_blocks).reshape(n_blocks, period, n_blocks)
    circulant = gains[..., index.transpose(1, 0, 2)]  # [..., t, q, j, i]
    circulant = jnp.moveaxis(circulant, -4, -2).reshape(
        lead + (period * n_blocks, n_tracks * n_blocks))  # [..., (q j), (t i)]
    blocks = tables[loop.samples].reshape(lead + (n_tracks * n_blocks, layout.block_samples))
    phases = jnp.matmul(circulant, blocks, precision=jax.lax.Precision.HIGHEST)
    return _roll_sum(phases.reshape(lead + (period, config.bar_samples)), config.step_offsets)


def critic_view(tables: jax.Array, loop: Loop, config: RenderConfig) -> jax.Array:
    """The steady-state bar the critic hears.

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
        unwrapped = _one_bar(tables, loop, config)
        return unwrapped[..., :bar] + unwrapped[..., bar:]
    # Memory bound: a batched gather of every loop's blocks spills to DRAM, so go through
    # small chunks of loops whose blocks and partial sums stay in cache.
    return in_chunks(lambda l: _view_blocks(tables, l, config, layout), loop,
                     loop.grid.ndim - 2)


def listening_render(kit_audio: jax.Array, loop: Loop, config: RenderConfig) -> jax.Array:
    """The loop as played: ``repeats`` bars and a tail.

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
    return out[..., :total]

