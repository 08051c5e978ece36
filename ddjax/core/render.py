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
(with ``swing``, odd steps ``d = groove.swing_late(swing) = 2 * swing / 100 - 1`` of a step
later: ``int((j + d) * sr * 60 / bpm / 4)``), and every hit is mixed at ``volume`` times its velocity / 127. For tempi whose bar is a whole number of samples
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

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ddjax.core import host_render
from ddjax.core.batching import in_chunks

# Re-exported: their home is JAX-free, so the host render loads without a device.
from ddjax.core.host_render import PEAK, RenderConfig, host_listening_render  # noqa: F401
from ddjax.core.loops import FULL_VELOCITY, Loop
from ddjax.errors import DdjaxError

MAX_TABLE_PHASES = 4  # beyond this, the p rolls cost more than folding the hits


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
    """``host_render.loop_gain`` on the device (``xp=jnp``) by default."""
    return host_render.loop_gain(unwrapped, bar, xp)


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


def loop_render(kit_audio: jax.Array, loop: Loop, config: RenderConfig) -> jax.Array:
    """Exactly one bar that loops seamlessly: the steady-state bar (the tails that ring
    past the bar's end folded onto its start), at the loop's gain. It is what the critic
    hears (``critic_view``), from the kit's audio instead of its tables.

    Returns:
      float32[..., bar_samples].
    """
    return _steady_bar(_one_bar(kit_audio, loop, config), config.bar_samples)
