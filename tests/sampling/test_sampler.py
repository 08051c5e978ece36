"""The sampler's public face (``sampler.run`` and the engine) on a tiny loop space and on
the kit: its modes, determinism, chains independent of each other, and the loop prior
against exact enumeration. Each kernel's own contract is ``test_kernels.py``."""

import functools
import itertools
import json
import math
import os
import pathlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddjax.core.critic import init_critic
from ddjax.core.drums import KINDS
from ddjax.core.loops import Loop, LoopConfig, log_prior, propose, random_loop
from ddjax.sampling import engine as engine_lib
from ddjax.sampling import sampler
from ddjax.sampling.engine import Engine

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
    final, info = sampler.run(sampler.chain_keys(run_key, n_chains), state, table,
                              score_fn=tiny_score, propose_fn=propose_fn, config=config)
    return state, final, info


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


def test_a_chain_does_not_depend_on_the_chains_beside_it():
    """Chains 4-7 run on their own give the same paths as inside a run of chains 0-7."""
    config = sampler.SamplerConfig("until", n_iters=40, threshold=0.9, min_iters=5)
    key = jax.random.key(11)
    starts = jax.vmap(lambda k: random_loop(k, ALLOWED, TINY))(
        jax.random.split(jax.random.key(12), 8))
    propose_fn = functools.partial(propose, allowed=ALLOWED, config=TINY)
    table = jnp.asarray(SCORES)

    def run(keys, loops):
        state = sampler.init(loops, table, tiny_score)
        return sampler.run(keys, state, table, score_fn=tiny_score, propose_fn=propose_fn,
                           config=config)

    together = run(sampler.chain_keys(key, 8), starts)
    alone = run(sampler.chain_keys(key, 4, first=4),
                jax.tree_util.tree_map(lambda x: x[4:], starts))
    chex.assert_trees_all_equal(jax.tree_util.tree_map(lambda x: x[4:], together), alone)
    # The keys are fold_in(key, i), whatever the number of chains.
    np.testing.assert_array_equal(
        jax.random.key_data(sampler.chain_keys(key, 3)),
        np.stack([jax.random.key_data(jax.random.fold_in(key, i)) for i in range(3)]))


SPLIT_RUN = """
import json, sys, jax, numpy as np
from ddjax.core.hardware import use_all_cores
use_all_cores()
from ddjax.core.critic import init_critic
from ddjax.sampling.engine import Engine
from ddjax.io.kit import load_kit
from ddjax.sampling.sampler import SamplerConfig
engine = Engine(load_kit(sys.argv[1], 88200), init_critic(jax.random.key(0)))
state, info = engine.sample(jax.random.key(7), 5, SamplerConfig("mh", n_iters=4))
print(json.dumps({"devices": jax.device_count(), "grid": np.asarray(state.loop.grid).tolist(),
                  "samples": np.asarray(state.loop.samples).tolist(),
                  "score": np.asarray(state.score).tolist()}))
"""


@pytest.mark.slow
def test_chains_split_over_cpu_devices_give_the_same_loops(engine):
    """``use_all_cores`` gives one CPU device per core, and the engine's chains, split over
    them (5 chains on 2 cores: 3 + 3 with one padding chain), are the chains a single
    device runs."""
    kit_dir = str(pathlib.Path(__file__).resolve().parents[2] / "samples")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", SPLIT_RUN, kit_dir], env=env,
                         capture_output=True, text=True, check=True)
    split = json.loads(out.stdout.splitlines()[-1])
    assert split["devices"] == len(os.sched_getaffinity(0))
    state, _ = engine.sample(jax.random.key(7), 5, sampler.SamplerConfig("mh", n_iters=4))
    np.testing.assert_array_equal(split["grid"], np.asarray(state.loop.grid))
    np.testing.assert_array_equal(split["samples"], np.asarray(state.loop.samples))
    np.testing.assert_allclose(split["score"], np.asarray(state.score), atol=1e-5)


def test_mh_draws_in_proportion_to_prior_times_score():
    """With the musical prior, chains visit each of 32 loops (1 track x 4 steps x a kick or
    a snare) in proportion to P(x) f(x), enumerated exactly with a plain Python prior."""
    from test_loops import reference_log_prior

    space = LoopConfig(n_tracks=1, n_steps=4, p_flip=0.3, p_swap=0.5)
    kinds = np.array([KINDS.index("kick"), KINDS.index("snare")], np.int32)
    scores = np.random.default_rng(1).uniform(0.05, 1.0, 32).astype(np.float32)
    index = lambda loop: loop.samples[..., 0] * 16 + jnp.sum(
        loop.grid[..., 0, :] * jnp.array([8, 4, 2, 1]), axis=-1)
    score_fn = lambda table, loops: table[index(loops)]
    config = sampler.SamplerConfig("mh", n_iters=80)

    @jax.jit
    def run(key):
        init_key, run_key = jax.random.split(key)
        starts = jax.vmap(lambda k: random_loop(k, ALLOWED, space))(
            jax.random.split(init_key, 20000))
        table = jnp.asarray(scores)
        state = sampler.init(starts, table, score_fn)
        final, _ = sampler.run(
            sampler.chain_keys(run_key, 20000), state, table, score_fn=score_fn,
            propose_fn=functools.partial(propose, allowed=ALLOWED, config=space),
            config=config,
            log_prior_fn=functools.partial(log_prior, kinds=jnp.asarray(kinds), config=space))
        return index(final.loop)

    visits = np.bincount(np.asarray(run(jax.random.key(5))), minlength=32) / 20000
    weights = np.array([
        math.exp(reference_log_prior([[(i >> (3 - s)) & 1 for s in range(4)]], [i // 16],
                                     kinds, space)) * scores[i] for i in range(32)])
    exact = weights / weights.sum()
    assert 0.5 * np.abs(visits - exact).sum() < 0.03
    # Sanity of the yardstick: the score alone (the uniform prior) is far from the target.
    assert 0.5 * np.abs(scores / scores.sum() - exact).sum() > 0.1
