"""Every learner keeps the same promises (``ddjax.learning.base.Learner``), checked by one
test per promise over every kind in the registry, as Optax's ``transform_test`` runs one
test over every transform.

The settings are small (a zero-mean prior for the head, a narrow CNN with a few fast
steps) so that each case runs in seconds; what is checked does not depend on them.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from ddjax.core.cnn import CriticConfig
from ddjax.core.loops import allowed_samples, random_loop
from ddjax.core.pipeline import Pipeline, ScoreParams, critic_score
from ddjax.core.render import render_tables
from ddjax.learning.registry import (
    LEARNERS,
    LearnerChoice,
    choose_learner,
    learner_pipeline,
    make_learner,
)
from ddjax.learning.taste_prior import Prior
from ddjax.learning.training import TrainConfig

KINDS = ["head", "cnn"]
assert sorted(KINDS) == sorted(LEARNERS)  # a new learner joins this test
TRAIN = TrainConfig(steps_per_rating=4, batch_size=4, learning_rate=1e-3)


def small_choice(kind: str) -> tuple[LearnerChoice, Pipeline]:
    if kind == "head":
        head = choose_learner(None).prior.head
        d = head.size + 1  # a prior with mean 0, so the untrained head says exactly 0.5
        choice = LearnerChoice("head", Prior(head, (0.0,) * d, (1.0,) * d, "contract test"))
        base = Pipeline()
    else:
        choice = LearnerChoice("cnn")
        frames = Pipeline().critic.n_frames
        base = Pipeline(critic=CriticConfig(n_frames=frames, channels=8, hidden=16))
    return choice, learner_pipeline(choice, base)


@pytest.fixture(scope="module", params=KINDS)
def case(request, bundled_kit):
    choice, pipeline = small_choice(request.param)
    learner = make_learner(choice, pipeline, TRAIN)
    tables = render_tables(bundled_kit.audio, pipeline.render)
    allowed = jnp.asarray(allowed_samples(pipeline.loops, bundled_kit.is_kick))
    loops = jax.vmap(lambda k: random_loop(k, allowed, pipeline.loops))(
        jax.random.split(jax.random.key(7), 8))
    state = learner.init(jax.random.key(0), tables, allowed)
    return request.param, choice, pipeline, learner, tables, loops, state


def row(loops, i):
    return jax.tree_util.tree_map(lambda a: a[i], loops)


def score(pipeline, tables, critic, loops):
    return np.asarray(critic_score(ScoreParams(tables, critic), loops, pipeline))


def leaves_equal(a, b):
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_init_gives_a_critic_that_knows_nothing(case):
    kind, _, pipeline, learner, tables, loops, state = case
    p = score(pipeline, tables, learner.critic(state), loops)
    assert int(state.count) == 0
    if kind == "head":
        np.testing.assert_allclose(p, 0.5, atol=1e-6)
    else:
        assert np.all((p > 0) & (p < 1))


def test_update_moves_the_score_toward_the_rating(case):
    _, _, pipeline, learner, tables, loops, state = case
    loop = row(loops, 0)
    first = jax.tree_util.tree_map(lambda a: a[:1], loops)
    before = score(pipeline, tables, learner.critic(state), first)[0]
    after = {}
    for liked in (True, False):
        new, info = learner.update(jax.random.key(1), state, tables, loop, jnp.bool_(liked))
        assert int(new.count) == 1 and np.isfinite(float(info))
        after[liked] = score(pipeline, tables, learner.critic(new), first)[0]
    assert after[True] > before > after[False]


def test_the_same_key_and_ratings_give_the_same_critic(case):
    _, _, pipeline, learner, tables, loops, state = case

    def run():
        s = state
        for i in range(3):
            s, _ = learner.update(jax.random.key(10 + i), s, tables, row(loops, i),
                                  jnp.bool_(i % 2 == 0))
        return s, score(pipeline, tables, learner.critic(s), loops)

    (a, score_a), (b, score_b) = run(), run()
    leaves_equal(a, b)
    np.testing.assert_array_equal(score_a, score_b)
    draw = lambda s: learner.sample_critic(jax.random.key(5), s)
    leaves_equal(draw(a), draw(b))


def test_the_model_survives_a_checkpoint_round_trip(case):
    # As ``ddjax.session.journal`` saves and restores it: flax's state dict in msgpack.
    _, _, pipeline, learner, tables, loops, state = case
    trained, _ = learner.update(jax.random.key(2), state, tables, row(loops, 1), jnp.bool_(True))
    data = serialization.msgpack_serialize(serialization.to_state_dict(trained.model))
    model = serialization.from_state_dict(state.model, serialization.msgpack_restore(data))
    leaves_equal(model, trained.model)
    restored = trained._replace(model=jax.tree_util.tree_map(jnp.asarray, model))
    np.testing.assert_array_equal(score(pipeline, tables, learner.critic(restored), loops),
                                  score(pipeline, tables, learner.critic(trained), loops))


def test_update_compiles_once_for_ratings_of_one_shape(case):
    _, choice, pipeline, learner, tables, loops, state = case
    chex.clear_trace_counter()
    raw = LEARNERS[choice.kind].build(choice.prior, pipeline, TRAIN)
    update = jax.jit(chex.assert_max_traces(raw.update, n=1))
    for i in range(3):
        state, _ = update(jax.random.key(i), state, tables, row(loops, i), jnp.bool_(i == 1))
    assert int(state.count) == 3


def test_make_learner_refuses_a_pipeline_that_does_not_fit(case):
    _, choice, pipeline, *_ = case
    other = Pipeline(critic=CriticConfig(channels=4)) if choice.kind == "head" else Pipeline(
        critic=choose_learner(None).prior.head)
    with pytest.raises(ValueError, match="learner_pipeline"):
        make_learner(choice, other, TRAIN)
