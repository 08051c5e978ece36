"""Counter-based random numbers for large tensors: dropout masks and augmentation noise.

``jax.random`` draws every value through Threefry-2x32, about 10 ns a value on this
project's CPUs: a training step's dropout masks (3.4 million values at batch 16) then cost
more than the critic's forward pass. Here one Threefry call draws two 32-bit seeds, and
value i is the "lowbias32" integer hash (C. Wellons, 2018) of ``i * m + s``, where the
seeds give the odd multiplier m and the offset s: a few integer operations that
vectorize. (Two keys with the same m would give streams shifted against each other; a
key's own m makes them unrelated.) It is
meant for masks and noise, not for cryptography; the tests check the moments, the keep
rate and the independence of neighbouring values.

The same key gives the same values on the same backend.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def _mix(x: jax.Array) -> jax.Array:
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def draw_seeds(key: jax.Array) -> jax.Array:
    """uint32[2]: the two seeds that ``bits`` hashes with, drawn from ``key``."""
    return jax.random.bits(key, (2,), jnp.uint32)


def bits(seeds: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32[shape] from ``seeds`` (``draw_seeds``), each uniform over all 2^32 values."""
    size = math.prod(shape)
    index = jax.lax.iota(jnp.uint32, size)
    return _mix(index * (seeds[1] | jnp.uint32(1)) + seeds[0]).reshape(shape)


def uniform_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32[shape], each value uniform over all 2^32 values."""
    return bits(draw_seeds(key), shape)


def keep_threshold(rate: float) -> np.uint32:
    """``bits(...) >= keep_threshold(rate)`` is True with probability ``1 - rate``."""
    return np.uint32(min(round(rate * 2.0 ** 32), 2 ** 32 - 1))


def keep_mask(key: jax.Array, shape: tuple[int, ...], rate: float) -> jax.Array:
    """bool[shape], each True with probability ``1 - rate`` (to within 2^-32)."""
    return uniform_bits(key, shape) >= keep_threshold(rate)


def uniform(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """Uniform values in (0, 1), 24-bit resolution, never 0 or 1."""
    bits = uniform_bits(key, tuple(shape))
    scale = 1.0 / 2 ** 24
    return ((bits >> 8).astype(jnp.float32) * scale + 0.5 * scale).astype(dtype)
