"""Every kernel through one contract: exact enumeration on a tiny loop space, one trace
per shape, and any driver running it."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddjax.core.loops import LoopConfig, propose, random_loop
from ddjax.sampling import climb, drivers, mh
from ddjax.sampling.base import Target

# 1 track x 3 steps x 2 samples: 16 states, each with a known score and log prior.
TINY = LoopConfig(n_tracks=1, n_steps=3, p_flip=0.3, p_swap=0.5)
ALLOWED = jnp.ones((1, 2), bool)
SCORES = np.random.default_rng(0).uniform(0.05, 1.0, 16).astype(np.float32)
LOG_PRIOR = np.random.default_rng(1).normal(0.0, 1.0, 16).astype(np.float32)
# Outside the support: sample 1 with the first step on (4 of the 16 states).
SUPPORT = np.array([not (i >= 8 and i % 8 >= 4) for i in range(16)])
PROPOSE = functools.partial(propose, allowed=ALLOWED, config=TINY)


def state_index(loop):
    bits = jnp.sum(loop.grid[..., 0, :] * jnp.array([4, 2, 1]), axis=-1)
    return loop.samples[..., 0] * 8 + bits


def tiny_target(with_prior=False, with_support=False):
    score_fn = lambda table, loops: table[state_index(loops)]
    log_prior_fn = lambda loops: jnp.asarray(LOG_PRIOR)[state_index(loops)]
    support_fn = lambda loops: jnp.asarray(SUPPORT)[state_index(loops)]
    return Target(score_fn, log_prior_fn if with_prior else None,
                  support_fn if with_support else None)


def point_mass(index):
    probs = np.zeros(16)
    probs[index] = 1.0
    return probs


def mh_case(temperature, with_prior, with_support):
    """MH and the distribution it draws from, enumerated: P(x) f(x) ** (1 / s) on the
    support."""
    kernel = mh.kernel(tiny_target(with_prior, with_support), PROPOSE, temperature=temperature)
    weights = SCORES.astype(np.float64) ** (1 / temperature)
    if with_prior:
        weights = weights * np.exp(LOG_PRIOR.astype(np.float64))
    if with_support:
        weights = weights * SUPPORT
    return kernel, weights / weights.sum()


def climb_case(goal, with_support):
    """Climbing and where it ends: the best (or worst) state of the support."""
    kernel = climb.kernel(tiny_target(with_support=with_support), PROPOSE, goal=goal)
    candidates = np.where(SUPPORT | (not with_support))[0]
    distance = np.abs(SCORES[candidates] - goal)
    return kernel, point_mass(candidates[np.argmin(distance)])


CASES = {
    "mh": lambda: mh_case(1.0, False, False),
    "mh-cold": lambda: mh_case(0.5, False, False),
    "mh-prior-support": lambda: mh_case(1.0, True, True),
    "climb-up": lambda: climb_case(1.0, False),
    "climb-down-support": lambda: climb_case(0.0, True),
}
KERNELS = {"mh": lambda: mh_case(0.7, True, True)[0], "climb": lambda: climb_case(1.0, True)[0]}


def starts(key, n_chains):
    return jax.vmap(lambda k: random_loop(k, ALLOWED, TINY))(jax.random.split(key, n_chains))


@pytest.mark.parametrize("case", CASES)
def test_kernel_draws_its_enumerated_distribution(case):
    kernel, exact = CASES[case]()
    table = jnp.asarray(SCORES)
    n_chains = 40000

    @jax.jit
    def run(key):
        init_key, run_key = jax.random.split(key)
        state = kernel.init(starts(init_key, n_chains), table)
        final, _ = drivers.run_fixed(drivers.chain_keys(run_key, n_chains), state,
                                     lambda k, s: kernel.step(k, s, table), n_iters=400)
        return state_index(final.loop)

    visits = np.bincount(np.asarray(run(jax.random.key(1))), minlength=16) / n_chains
    assert 0.5 * np.abs(visits - exact).sum() <= 0.02
    # Sanity of the yardstick: the uniform distribution is far from the target.
    assert 0.5 * np.abs(1 / 16 - exact).sum() > 0.1


@pytest.mark.parametrize("goal", [1.0, 0.0])
def test_climb_never_moves_away_from_its_goal(goal):
    kernel = climb.kernel(tiny_target(with_support=True), PROPOSE, goal=goal)
    table = jnp.asarray(SCORES)

    @jax.jit
    def path(key):
        state = kernel.init(starts(key, 500), table)
        keys = drivers.chain_keys(key, 500)

        def body(s, it):
            new, info = kernel.step(drivers._keys_at(keys, it), s, table)
            return new, (s.score, new.score, info.is_accepted, state_index(new.loop))
        return jax.lax.scan(body, state, jnp.arange(60))[1]

    before, after, accepted, index = map(np.asarray, path(jax.random.key(4)))
    assert np.all(np.abs(after - goal) <= np.abs(before - goal))
    assert accepted.any() and not np.all(accepted)
    # Once in the support, never out of it; the starts are drawn from the whole space.
    entered = np.maximum.accumulate(SUPPORT[index], axis=0)
    assert np.all(SUPPORT[index][entered])


@pytest.mark.parametrize("name", KERNELS)
def test_step_compiles_once_per_shape(name):
    kernel = KERNELS[name]()
    chex.clear_trace_counter()  # the counter is keyed on the code, shared by the kernels

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(keys, state, table):
        return kernel.step(keys, state, table)

    table = jnp.asarray(SCORES)
    state = kernel.init(starts(jax.random.key(0), 8), table)
    for seed in range(4):
        state, info = step(drivers.chain_keys(jax.random.key(seed), 8), state,
                           table * (seed + 1) / 4)
    chex.assert_shape(info.is_accepted, (8,))


def stepped_by_hand(kernel, keys, state, table, n_iters):
    """The states after 0, 1, ..., n_iters steps, one jitted step at a time."""
    step = jax.jit(lambda k, s: kernel.step(k, s, table))
    states = [state]
    for it in range(n_iters):
        states.append(step(drivers._keys_at(keys, it), states[-1])[0])
    return states


@pytest.mark.parametrize("name", KERNELS)
def test_drivers_run_any_kernel(name):
    kernel = KERNELS[name]()
    table = jnp.asarray(SCORES)
    n_chains, n_iters = 64, 8
    keys = drivers.chain_keys(jax.random.key(9), n_chains)
    state = kernel.init(starts(jax.random.key(10), n_chains), table)
    bound = lambda k, s: kernel.step(k, s, table)
    by_hand = stepped_by_hand(kernel, keys, state, table, n_iters)

    fixed, info = jax.jit(functools.partial(drivers.run_fixed, step=bound, n_iters=n_iters))(
        keys, state)
    chex.assert_trees_all_equal(fixed, by_hand[-1])
    assert np.all(np.asarray(info.n_iters) == n_iters) and np.all(np.asarray(info.reached))

    # "until": each chain is the hand-stepped chain frozen after the steps it ran.
    threshold = float(np.sort(SCORES)[-4])
    until, info = jax.jit(functools.partial(drivers.run_until, step=bound, n_iters=n_iters,
                                            threshold=threshold, min_iters=1))(keys, state)
    ran = np.asarray(info.n_iters)
    assert ran.min() >= 1 and ran.max() <= n_iters and len(set(ran.tolist())) > 1
    for c in range(n_chains):
        chex.assert_trees_all_equal(jax.tree_util.tree_map(lambda x: x[c], until),
                                    jax.tree_util.tree_map(lambda x: x[c], by_hand[ran[c]]))
    reached = np.asarray(info.reached)
    np.testing.assert_array_equal(reached, np.asarray(until.score) >= threshold)
    assert np.all(ran[~reached] == n_iters)
