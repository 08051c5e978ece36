"""The generator's prior and proposal."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddjax.core.drums import KINDS
from ddjax.core.loops import (
    VELOCITY_LEVELS,
    Loop,
    LoopConfig,
    allowed_samples,
    is_valid,
    log_prior,
    propose,
    random_loop,
)
from ddjax.errors import DdjaxError


def batch_random(key, allowed, config, n):
    return jax.vmap(lambda k: random_loop(k, allowed, config))(jax.random.split(key, n))


def test_random_loops_have_distinct_samples_and_half_the_cells_on():
    config = LoopConfig(prior="uniform")
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
    from ddjax.core.loops import Loop
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


def reference_log_prior(grid, samples, kinds, config):
    """The musical prior, one loop at a time in plain Python (math.lgamma)."""
    a = config.density_mean * config.density_concentration
    b = (1 - config.density_mean) * config.density_concentration
    lbeta = lambda x, y: math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)
    n = len(grid[0])
    total = 0.0
    for row in grid:
        k = sum(row)
        total += lbeta(a + k, b + n - k) - lbeta(a, b)
    names = [KINDS[kinds[s]] if kinds[s] >= 0 else None for s in samples]
    if any(name == "kick" and sum(row) > 0 for name, row in zip(names, grid)):
        total += math.log(config.kick_weight)
    if n % 4 == 0 and any(name in ("snare", "clap", "rim") and row[n // 4] and row[3 * n // 4]
                          for name, row in zip(names, grid)):
        total += math.log(config.backbeat_weight)
    seen = []
    for name in names:
        if name is not None and name in seen:
            total += math.log(config.repeat_weight)
        seen.append(name)
    return total


def test_the_musical_prior_against_a_plain_python_reference():
    config = LoopConfig(n_tracks=3, n_steps=8)
    kinds = np.array([KINDS.index(k) for k in ("kick", "snare", "clap", "clap")] + [-1, -1],
                     np.int32)
    rng = np.random.default_rng(0)
    grids = rng.random((300, 3, 8)) < rng.uniform(0.05, 0.9, (300, 3, 1))
    grids[:100, :, [2, 6]] = True  # backbeats
    samples = np.stack([rng.choice(6, 3, replace=False) for _ in range(300)]).astype(np.int32)
    got = np.asarray(log_prior(Loop(jnp.asarray(grids), jnp.asarray(samples)),
                               jnp.asarray(kinds), config))
    want = [reference_log_prior(g.tolist(), s.tolist(), kinds, config)
            for g, s in zip(grids, samples)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert np.ptp(want) > 5  # the prior is far from flat on these loops
    uniform = log_prior(Loop(jnp.asarray(grids), jnp.asarray(samples)), jnp.asarray(kinds),
                        LoopConfig(n_tracks=3, n_steps=8, prior="uniform"))
    np.testing.assert_array_equal(np.asarray(uniform), 0.0)


def test_musical_starts_draw_each_track_density_from_the_hyperprior():
    """Rows of a random loop follow the Beta-binomial: counts of hits per track against
    the exact probabilities."""
    config = LoopConfig()
    allowed = jnp.asarray(allowed_samples(config, np.zeros(6, bool)))
    loops = batch_random(jax.random.key(3), allowed, config, 5000)
    hits = np.asarray(loops.grid).sum(axis=-1).ravel()  # 20,000 rows of 16 steps
    a = config.density_mean * config.density_concentration
    b = config.density_concentration - a
    lbeta = lambda x, y: math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)
    exact = np.array([math.comb(16, k) * math.exp(lbeta(a + k, b + 16 - k) - lbeta(a, b))
                      for k in range(17)])
    assert abs(exact.sum() - 1) < 1e-9
    seen = np.bincount(hits, minlength=17) / hits.size
    assert 0.5 * np.abs(seen - exact).sum() < 0.02
    assert abs(np.median(np.asarray(loops.grid).mean(axis=(-2, -1))) - 0.25) < 0.05


def test_velocities_start_from_their_prior_and_move_symmetrically():
    """Musical: velocities drawn from the levels' weights, and each cell re-drawn uniformly
    with probability p_velocity; uniform prior: every hit at 127 and never moved."""
    config = LoopConfig()
    allowed = jnp.asarray(allowed_samples(config, np.zeros(6, bool)))
    loops = batch_random(jax.random.key(4), allowed, config, 4000)
    velocity = np.asarray(loops.velocity)
    for level, weight in zip(VELOCITY_LEVELS, config.velocity_weights):
        assert abs(np.mean(velocity == level) - weight) < 0.01
    moved = jax.vmap(lambda k, l: propose(k, l, allowed, config))(
        jax.random.split(jax.random.key(5), 4000), loops)
    changed = np.asarray(moved.velocity) != velocity
    # A re-draw lands on another level 2 times in 3.
    assert abs(changed.mean() - config.p_velocity * 2 / 3) < 0.003
    assert set(np.unique(np.asarray(moved.velocity))) <= set(VELOCITY_LEVELS)
    uniform = LoopConfig(prior="uniform")
    flat = batch_random(jax.random.key(6), allowed, uniform, 50)
    assert np.all(np.asarray(flat.velocity) == 127)
    still = jax.vmap(lambda k, l: propose(k, l, allowed, uniform))(
        jax.random.split(jax.random.key(7), 50), flat)
    assert np.all(np.asarray(still.velocity) == 127)


def test_the_velocity_prior_adds_each_cells_log_weight():
    config = LoopConfig(n_tracks=2, n_steps=4)
    grid = jnp.zeros((2, 4), bool)
    samples = jnp.array([0, 1], jnp.int32)
    kinds = jnp.array([-1, -1], jnp.int32)
    velocity = jnp.array([[70, 100, 127, 100], [100, 100, 90, 127]], jnp.int32)
    without = log_prior(Loop(grid, samples), kinds, config)
    got = log_prior(Loop(grid, samples, velocity), kinds, config)
    w = dict(zip(VELOCITY_LEVELS, config.velocity_weights))
    want = sum(math.log(w[int(v)]) for v in np.asarray(velocity).ravel() if int(v) in w)
    assert float(got - without) == pytest.approx(want, rel=1e-5)  # 90 is no level: 0
