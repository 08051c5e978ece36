"""The sampler against exact enumeration on a tiny loop space, and its contracts."""

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddjax import sampler
from ddjax.critic import init_critic
from ddjax import engine as engine_lib
from ddjax.engine import Engine
from ddjax.loops import Loop, LoopConfig, propose, random_loop

# 1 track x 3 steps x 2 samples: 16 states, each with a known score.
TINY = LoopConfig(n_tracks=1, n_steps=3, p_flip=0.3, p_swap=0.5)
ALLOWED = jnp.ones((1, 2), bool)
SCORES = np.random.default_rng(0).uniform(0.05, 1.0, 16).astype(np.float32)


def state_index(loop):
    bits = jnp.sum(loop.grid[..., 0, :] * jnp.array([4, 2, 1]), axis=-1)
    return loop.samples[..., 0] * 8 + bits


def tiny_score(table, loops):
    return table[state_index(loops)]


def tiny_run(key, n_chains, config, table=jnp.asarray(SCORES)):
    init_key, run_key = jax.random.split(key)
    starts = jax.vmap(lambda k: random_loop(k, ALLOWED, TINY))(
        jax.random.split(init_key, n_chains))
    propose_fn = functools.partial(propose, allowed=ALLOWED, config=TINY)
    state = sampler.init(starts, table, tiny_score)
    final, info = sampler.run(run_key, state, table, score_fn=tiny_score,
                              propose_fn=propose_fn, config=config)
    return state, final, info


def exact(power):
    weights = SCORES.astype(np.float64) ** power
    return weights / weights.sum()


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_mh_visits_states_in_proportion_to_f(temperature):
    config = sampler.SamplerConfig("mh", n_iters=60, temperature=temperature)
    _, final, info = jax.jit(tiny_run, static_argnums=(1, 2))(jax.random.key(1), 20000,
                                                              config)
    visits = np.bincount(np.asarray(state_index(final.loop)), minlength=16) / 20000
    total_variation = 0.5 * np.abs(visits - exact(1 / temperature)).sum()
    assert total_variation < 0.03
    # Sanity of the yardstick: the uniform distribution is far from the target.
    assert 0.5 * np.abs(1 / 16 - exact(1 / temperature)).sum() > 0.1
    assert np.all(np.asarray(info.n_iters) == 60)
    rate = float(np.mean(info.acceptance_rate))
    assert 0.05 < rate < 0.95


def test_scores_follow_the_loops():
    config = sampler.SamplerConfig("mh", n_iters=7)
    _, final, _ = tiny_run(jax.random.key(2), 64, config)
    np.testing.assert_array_equal(np.asarray(final.score), SCORES[np.asarray(
        state_index(final.loop))])


def test_until_runs_at_least_min_iters_then_stops_at_the_threshold():
    always = jnp.full((16,), 0.99, jnp.float32)  # every state is above the threshold
    never = jnp.full((16,), 0.5, jnp.float32)
    config = sampler.SamplerConfig("until", n_iters=9, threshold=0.95, min_iters=4)
    _, _, info = tiny_run(jax.random.key(0), 8, config, always)
    assert np.all(np.asarray(info.n_iters) == 4) and np.all(np.asarray(info.reached))
    _, _, info = tiny_run(jax.random.key(0), 8, config, never)
    assert np.all(np.asarray(info.n_iters) == 9) and not np.any(np.asarray(info.reached))


def test_until_stops_each_chain_at_the_threshold():
    threshold = float(np.sort(SCORES)[-2])  # 2 of the 16 states reach it
    config = sampler.SamplerConfig("until", n_iters=4, threshold=threshold)
    start, final, info = tiny_run(jax.random.key(3), 500, config)
    reached, n_iters = np.asarray(info.reached), np.asarray(info.n_iters)
    score = np.asarray(final.score)
    assert 0.2 < reached.mean() < 0.9
    assert np.all(score[reached] >= threshold)
    assert np.all(score[~reached] < threshold) and np.all(n_iters[~reached] == 4)
    assert np.all(n_iters[reached] <= 4)
    started_there = np.asarray(start.score) >= threshold
    assert started_there.any() and np.all(n_iters[started_there] == 0)
    assert np.all(n_iters[reached & ~started_there] >= 1)
    # Chains that reached it early stopped there: n_iters spreads over 1..4.
    assert len(set(n_iters[reached & ~started_there].tolist())) >= 3


@pytest.mark.parametrize("target", [1.0, 0.0])
def test_climb_only_moves_toward_the_target(target):
    config = sampler.SamplerConfig("climb", n_iters=30, target=target)
    start, final, _ = tiny_run(jax.random.key(4), 300, config)
    before, after = np.asarray(start.score), np.asarray(final.score)
    assert np.all(np.abs(after - target) <= np.abs(before - target))
    best = SCORES.max() if target == 1.0 else SCORES.min()
    assert np.mean(after == best) > 0.5


def test_sampler_compiles_once_per_shape():
    @chex.assert_max_traces(n=1)
    def run_fn(key, table):
        return tiny_run(key, 8, sampler.SamplerConfig("mh", n_iters=5), table)

    jitted = jax.jit(run_fn)
    for seed in range(3):
        jitted(jax.random.key(seed), jnp.asarray(SCORES) * (seed + 1) / 3)


@pytest.fixture(scope="module")
def engine(bundled_kit):
    return Engine(bundled_kit, init_critic(jax.random.key(0)))


def test_engine_is_deterministic_and_compiles_once(engine):
    config = sampler.SamplerConfig("mh", n_iters=3)
    compiled_before = engine_lib._sample._cache_size()
    a, info_a = engine.sample(jax.random.key(7), 2, config)
    b, info_b = engine.sample(jax.random.key(7), 2, config)
    c, _ = engine.sample(jax.random.key(8), 2, config)
    chex.assert_trees_all_equal(a, b)
    chex.assert_trees_all_equal(info_a, info_b)
    assert not np.array_equal(np.asarray(a.loop.grid), np.asarray(c.loop.grid))
    assert engine_lib._sample._cache_size() == compiled_before + 1  # one shape, one compile
    # A second engine with the same settings reuses the compiled sampler.
    twin = Engine(engine.kit, engine.params.critic)
    chex.assert_trees_all_equal(twin.sample(jax.random.key(7), 2, config), (a, info_a))
    assert engine_lib._sample._cache_size() == compiled_before + 1
    # The score the sampler reports is the critic's score of the loop it returns.
    np.testing.assert_allclose(np.asarray(engine.score(a.loop)), np.asarray(a.score),
                               atol=1e-5)


def test_all_state_space_is_reachable_by_enumeration():
    # The proposal connects the tiny space: from any state, every state is reachable.
    config = TINY
    seen = set()
    loop = Loop(jnp.zeros((1, 3), bool), jnp.zeros((1,), jnp.int32))
    moved = jax.vmap(lambda k: propose(k, loop, ALLOWED, config))(
        jax.random.split(jax.random.key(5), 4000))
    for g, s in zip(np.asarray(moved.grid), np.asarray(moved.samples)):
        seen.add((int(s[0]),) + tuple(int(v) for v in g[0]))
    assert seen == {(s,) + bits for s in (0, 1) for bits in itertools.product((0, 1), repeat=3)}
