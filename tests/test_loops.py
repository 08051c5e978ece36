"""The generator's prior and proposal."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddjax.errors import DdjaxError
from ddjax.loops import LoopConfig, allowed_samples, is_valid, propose, random_loop


def batch_random(key, allowed, config, n):
    return jax.vmap(lambda k: random_loop(k, allowed, config))(jax.random.split(key, n))


def test_random_loops_have_distinct_samples_and_half_the_cells_on():
    config = LoopConfig()
    allowed = jnp.asarray(allowed_samples(config, np.zeros(6, bool)))
    loops = batch_random(jax.random.key(0), allowed, config, 4000)
    samples = np.asarray(loops.samples)
    assert all(len(set(row)) == 4 for row in samples)
    assert abs(np.asarray(loops.grid).mean() - 0.5) < 0.01
    # Uniform without repeats: each of the 6 samples is used by a track 4/6 of the time.
    usage = np.array([(samples == s).any(axis=1).mean() for s in range(6)])
    np.testing.assert_allclose(usage, 4 / 6, atol=0.03)
    # ... and each track's sample is uniform too.
    np.testing.assert_allclose(np.bincount(samples[:, 3], minlength=6) / 4000, 1 / 6, atol=0.03)


def test_proposal_flips_and_swaps_at_the_configured_rates():
    config = LoopConfig(p_flip=0.05, p_swap=0.15)
    allowed = jnp.asarray(allowed_samples(config, np.zeros(50, bool)))
    loops = batch_random(jax.random.key(1), allowed, config, 20000)
    moved = jax.vmap(lambda k, l: propose(k, l, allowed, config))(
        jax.random.split(jax.random.key(2), 20000), loops)
    flipped = np.asarray(moved.grid != loops.grid).mean()
    assert abs(flipped - 0.05) < 0.003
    changed = np.asarray(moved.samples != loops.samples).mean()
    assert abs(changed - 0.15 * 49 / 50) < 0.005  # a re-draw may pick the same sample


def test_four_on_the_floor_holds_under_proposals():
    config = LoopConfig(four_on_the_floor=True, p_flip=0.5, p_swap=0.9)
    is_kick = np.zeros(10, bool)
    is_kick[[3, 7]] = True
    allowed = jnp.asarray(allowed_samples(config, is_kick))
    loop = random_loop(jax.random.key(3), allowed, config)
    for i in range(50):
        loop = propose(jax.random.key(100 + i), loop, allowed, config)
        row = np.asarray(loop.grid[0])
        assert row.tolist() == [j % 4 == 0 for j in range(16)]
        assert int(loop.samples[0]) in (3, 7)


def test_repeated_samples_are_invalid():
    from ddjax.loops import Loop
    grid = jnp.zeros((2, 4, 16), bool)
    loops = Loop(grid, jnp.asarray([[0, 1, 2, 3], [0, 1, 2, 1]], jnp.int32))
    assert np.asarray(is_valid(loops)).tolist() == [True, False]


def test_impossible_spaces_are_clear_errors():
    with pytest.raises(DdjaxError, match="kick"):
        allowed_samples(LoopConfig(four_on_the_floor=True), np.zeros(10, bool))
    with pytest.raises(DdjaxError, match="4 tracks"):
        allowed_samples(LoopConfig(), np.zeros(3, bool))
    with pytest.raises(DdjaxError, match="p_flip"):
        LoopConfig(p_flip=1.5)
