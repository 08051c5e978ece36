"""Loops stage, variations: loops near a source loop ("more like this", ``generate
--from``).

A variation changes ``min(2, distance)`` to ``LoopConfig.distance`` cells of its source's
grid and at most ``variation_swaps`` of its samples (one up to 8 cells: at least 3 of 4
kept). Its chains start a few cells away (``variation_start``) and the target's support is
that ball (``near``), so the critic steers which variation comes, never how far it goes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ddjax.core.loops import DEFAULT_DISTANCE, Loop, LoopConfig, support


def variation_swaps(config: LoopConfig) -> int:
    """How many of its source's samples a variation may change: 1 up to ``distance`` 8,
    one more for every further 8 cells."""
    return max(1, config.distance // DEFAULT_DISTANCE)


def cells_changed(loop: Loop, source: Loop) -> jax.Array:
    """int32[...]: grid cells where ``loop`` differs from ``source``."""
    return jnp.sum(loop.grid != source.grid, axis=(-2, -1)).astype(jnp.int32)


def samples_changed(loop: Loop, source: Loop) -> jax.Array:
    """int32[...]: tracks whose sample differs from ``source``'s."""
    return jnp.sum(loop.samples != source.samples, axis=-1).astype(jnp.int32)


def near(source: Loop, config: LoopConfig):
    """The support of variations on ``source``, ``loop -> bool[...]``: ``support`` and
    ``min(2, distance)`` to ``distance`` cells changed, and at most ``variation_swaps``
    samples."""
    inside = support(config)
    low = min(2, config.distance)

    def fn(loop: Loop) -> jax.Array:
        cells = cells_changed(loop, source)
        return (inside(loop) & (cells >= low) & (cells <= config.distance)
                & (samples_changed(loop, source) <= variation_swaps(config)))
    return fn


def variation_start(key: jax.Array, source: Loop, config: LoopConfig) -> Loop:
    """A chain's start near ``source``: k cells flipped, k uniform in ``min(2, distance)``
    to ``distance``, none on the four-on-the-floor row and none that is a track's first hit
    (so every track that plays still plays); the samples and velocities are the
    source's."""
    count_key, order_key = jax.random.split(key)
    low = min(2, config.distance)
    k = jax.random.randint(count_key, (), low, config.distance + 1)
    grid = source.grid
    first_hit = jnp.arange(grid.shape[-1]) == jnp.argmax(grid, axis=-1)[..., None]
    movable = ~(grid & first_hit)  # each track keeps its first hit
    if config.four_on_the_floor:
        movable = movable.at[0].set(False)
    noise = jnp.where(movable, jax.random.uniform(order_key, grid.shape), 2.0).reshape(-1)
    rank = jnp.argsort(jnp.argsort(noise)).reshape(grid.shape)
    flips = (rank < k) & movable
    return source._replace(grid=grid ^ flips)
