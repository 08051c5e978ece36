"""The hub: many sessions' device work in shared calls gives what each would get alone."""

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddjax.core.loops import Loop
from ddjax.core.pipeline import Pipeline
from ddjax.learning.registry import choose_learner, learner_pipeline, make_learner
from ddjax.sampling.engine import Engine
from ddjax.sampling.sampler import SamplerConfig, chain_keys
from ddjax.session.hub import Hub, _powers_of_two
from ddjax.session.session import Session, SessionConfig

CONFIG = SamplerConfig("mh", 3, 0.1)


@pytest.mark.parametrize("n", range(0, 40))
@pytest.mark.parametrize("most", [1, 4, 8])
def test_batches_are_cut_into_the_fewest_powers_of_two(n, most):
    sizes = _powers_of_two(n, most)
    assert sum(sizes) == n
    assert all(s & (s - 1) == 0 and 1 <= s <= most for s in sizes)
    assert sizes == sorted(sizes, reverse=True)
    # The fewest: every full ``most`` first, then one part per bit of the rest.
    assert len(sizes) == n // most + bin(n % most).count("1")


@pytest.fixture(scope="module")
def head(bundled_kit):
    choice = choose_learner(None)
    pipeline = learner_pipeline(choice, Pipeline())
    engine = Engine(bundled_kit, None, pipeline)
    learner = make_learner(choice, pipeline)
    state = learner.init(jax.random.key(0), engine.params.tables, engine.allowed)
    return engine, learner, state


def _in_threads(fns):
    """Calls every fn at once (so the hub may batch them) and returns their results."""
    results = [None] * len(fns)
    barrier = threading.Barrier(len(fns))

    def run(i):
        barrier.wait()
        results[i] = fns[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_sessions_sampled_together_get_the_chains_each_gets_alone(head):
    engine, learner, state = head
    critics = [learner.sample_critic(jax.random.key(i), state) for i in range(3)]
    hub = Hub()
    try:
        together = _in_threads([
            (lambda i=i: hub.sample(engine, chain_keys(jax.random.key(10 + i), 1), critics[i],
                                    CONFIG)) for i in range(3)])
    finally:
        hub.close()
    assert sum(n for (kind, _), n in hub.calls.items() if kind == "sample") <= 3
    for i, (state_i, _) in enumerate(together):
        alone, _ = engine.sample(jax.random.key(10 + i), 1, CONFIG, critic=critics[i])
        np.testing.assert_array_equal(np.asarray(state_i.loop.grid), np.asarray(alone.loop.grid))
        np.testing.assert_array_equal(np.asarray(state_i.loop.samples),
                                      np.asarray(alone.loop.samples))
        np.testing.assert_allclose(np.asarray(state_i.score), np.asarray(alone.score),
                                   rtol=1e-5)


def test_updates_run_together_give_each_session_its_own_update(head, bundled_kit):
    engine, learner, state = head
    rng = np.random.default_rng(0)
    loops = [Loop(jnp.asarray(rng.random((4, 16)) < 0.3),
                  jnp.asarray(rng.choice(len(bundled_kit.names), 4, replace=False), jnp.int32),
                  jnp.full((4, 16), 100, jnp.int32)) for _ in range(3)]
    hub = Hub()
    try:
        together = _in_threads([
            (lambda i=i: hub.update(learner, jax.random.key(i), state, engine.params.tables,
                                    loops[i], jnp.bool_(i % 2 == 0))) for i in range(3)])
    finally:
        hub.close()
    for i, (new_state, _) in enumerate(together):
        alone, _ = learner.update(jax.random.key(i), state, engine.params.tables, loops[i],
                                  jnp.bool_(i % 2 == 0))
        for a, b in zip(jax.tree_util.tree_leaves(new_state), jax.tree_util.tree_leaves(alone)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)


def test_a_pool_in_chunks_is_the_run_at_once(head):
    engine, learner, state = head
    critic = learner.critic(state)
    hub = Hub()
    heard = []
    try:  # CONFIG: the programs of the test above (a chunk is 2 groups of 1 chain, or 1)
        pooled, info = hub.sample_pool(engine, jax.random.key(5), 5, critic, CONFIG,
                                       heard.append)
    finally:
        hub.close()
    alone, alone_info = engine.sample(jax.random.key(5), 5, CONFIG, critic=critic)
    np.testing.assert_array_equal(np.asarray(pooled.loop.grid), np.asarray(alone.loop.grid))
    np.testing.assert_array_equal(np.asarray(info.acceptance_rate),
                                  np.asarray(alone_info.acceptance_rate))
    assert heard == [2, 4, 5]


def test_a_session_on_a_hub_deals_the_loops_it_deals_alone(bundled_kit):
    config = SessionConfig(n_iters=3, seed=4)
    hub = Hub()
    try:
        with Session(bundled_kit, config=config) as alone, \
                Session(bundled_kit, config=config, hub=hub) as shared:
            for n in range(3):
                a, b = alone.next_loop(), shared.next_loop()
                np.testing.assert_array_equal(a.grid, b.grid)
                np.testing.assert_array_equal(a.samples, b.samples)
                alone.rate(a, n != 1)
                shared.rate(b, n != 1)
            for x, y in zip(jax.tree_util.tree_leaves(alone.critic()),
                            jax.tree_util.tree_leaves(shared.critic())):
                np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5)
    finally:
        hub.close()
    assert hub.calls[("update", 1)] == 3


def test_a_restarted_session_shows_the_unrated_loop_it_was_showing(bundled_kit, tmp_path):
    config = SessionConfig(n_iters=2, seed=1)
    with Session(bundled_kit, tmp_path, config=config) as session:
        session.rate(session.next_loop(), True)
        shown = session.next_loop()  # then the process dies: never rated
    with Session(bundled_kit, tmp_path, config=config) as again:
        back = again.next_loop()
        assert back.id == shown.id
        np.testing.assert_array_equal(back.grid, shown.grid)
        assert back.sample_paths == shown.sample_paths
        again.rate(back, False)
        after = again.next_loop()
        assert after.id == shown.id + 1
    with Session(bundled_kit, tmp_path, config=config) as third:  # rated now: a new one
        assert third.next_loop().id == after.id
