"""Counter-based random numbers (ddjax.core.noise) against their distributions."""

import jax
import numpy as np
from scipy import stats

from ddjax.core import noise


def test_bits_are_uniform_and_neighbours_independent():
    bits = np.asarray(noise.uniform_bits(jax.random.key(0), (1 << 20,)), np.float64)
    u = bits / 2.0 ** 32
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    # Each of the 32 bits is set half the time.
    ints = np.asarray(noise.uniform_bits(jax.random.key(0), (1 << 20,)))
    share = [(ints >> b & 1).mean() for b in range(32)]
    assert np.all(np.abs(np.asarray(share) - 0.5) < 5 * 0.5 / np.sqrt(ints.size))
    # Neighbouring values, along the flat index and across a row, are uncorrelated.
    limit = 5 / np.sqrt(u.size)
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < limit
    grid = u.reshape(1024, 1024)
    assert abs(np.corrcoef(grid[:-1].ravel(), grid[1:].ravel())[0, 1]) < limit


def test_keys_give_different_streams_and_the_same_key_the_same():
    a = np.asarray(noise.uniform_bits(jax.random.key(1), (4096,)))
    b = np.asarray(noise.uniform_bits(jax.random.key(2), (4096,)))
    again = np.asarray(noise.uniform_bits(jax.random.key(1), (4096,)))
    np.testing.assert_array_equal(a, again)
    assert np.mean(a == b) < 0.01
    assert abs(np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1]) < 0.08


def test_keep_mask_keeps_one_minus_rate():
    n = 1 << 20
    for rate in (0.0, 0.167, 0.5, 0.9):
        kept = np.asarray(noise.keep_mask(jax.random.key(3), (n,), rate)).mean()
        assert abs(kept - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / n) + 1e-9


def test_uniform_is_uniform_on_the_open_interval():
    u = np.asarray(noise.uniform(jax.random.key(4), (1 << 20,)), np.float64)
    assert u.min() > 0.0 and u.max() < 1.0  # -log(u) stays finite
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    # -log(u) is exponential with mean 1 and variance 1 (training.augment_mel uses it)
    e = -np.log(u)
    assert abs(e.mean() - 1.0) < 0.005 and abs(e.var() - 1.0) < 0.01
