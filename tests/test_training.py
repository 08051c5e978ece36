"""Training: the critic learns a separable toy set; the optimizer is the original's."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ddjax.critic import init_critic, prob_like
from ddjax.engine import Pipeline
from ddjax.features import mfcc
from ddjax.loops import Loop
from ddjax.render import critic_view, render_tables
from ddjax.training import Ratings, TrainConfig, augment, init_train_state, train_steps


def cross_entropy(variables, tables, loops, liked, pipeline):
    """Mean cross-entropy of P(like) on the clean views, computed here from prob_like."""
    p = np.asarray(prob_like(variables, mfcc(critic_view(tables, loops, pipeline.render))),
                   np.float64)
    y = np.asarray(liked, np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_training_lowers_the_loss_on_a_separable_set(bundled_kit):
    pipeline = Pipeline()
    tables = render_tables(bundled_kit.audio, pipeline.render)
    kicks = np.nonzero([n.startswith("kick/") for n in bundled_kit.names])[0]
    hats = np.nonzero([n.startswith("closed_hat/") for n in bundled_kit.names])[0]
    others = np.nonzero([n.startswith(("tom/", "rim/")) for n in bundled_kit.names])[0]
    rng = np.random.default_rng(0)
    n = 24
    liked = np.arange(n) % 2 == 0  # liked loops have kicks on every track, disliked hats
    samples = np.stack([rng.choice(kicks if l else hats, 3, replace=False).tolist()
                        + [rng.choice(others)] for l in liked]).astype(np.int32)
    grid = rng.random((n, 4, 16)) < 0.5
    loops = Loop(jnp.asarray(grid), jnp.asarray(samples))
    ratings = Ratings(loops, jnp.asarray(liked), jnp.int32(n))
    config = TrainConfig(learning_rate=3e-4, batch_size=8)
    state = init_train_state(init_critic(jax.random.key(0)), config)
    before = cross_entropy(state.variables, tables, loops, liked, pipeline)
    run = jax.jit(functools.partial(train_steps, n_steps=40, pipeline=pipeline, config=config))
    state, losses = run(jax.random.key(1), state, ratings, tables)
    after = cross_entropy(state.variables, tables, loops, liked, pipeline)
    assert np.all(np.isfinite(np.asarray(losses)))
    assert after < 0.5 * before and after < 0.35


def test_batches_are_half_likes_half_dislikes():
    from ddjax.training import _balanced_indices
    liked = jnp.asarray([True] + [False] * 20 + [False] * 11)  # 1 like among 21 real rows
    ratings = Ratings(None, liked, jnp.int32(21))
    rows = np.asarray(jax.vmap(lambda k: _balanced_indices(k, ratings, 16))(
        jax.random.split(jax.random.key(0), 200)))
    assert rows.max() < 21
    np.testing.assert_array_equal(np.asarray(liked)[rows].sum(axis=1), 8)


def test_augmentation_statistics():
    config = TrainConfig()
    audio = jnp.zeros((4000, 64))
    out = np.asarray(augment(jax.random.key(0), audio, config))
    dc = out.mean(axis=1)
    assert abs(dc.std() - 0.05) < 0.005  # DC offset N(0, 0.05) plus a little noise
    assert abs((out - dc[:, None]).std() - 0.006) < 0.0005  # noise sigma 0.006
    impulse = jnp.zeros((2000, 300)).at[:, 0].set(1.0)
    shifted = np.asarray(augment(jax.random.key(1), impulse, config))
    peaks = np.argmax(shifted, axis=1)
    assert peaks.min() == 0 and peaks.max() == 128  # circular shift of 0..128 samples
    gains = shifted.max(axis=1) - np.median(shifted, axis=1)
    assert abs(gains.mean() - 1.0) < 0.01 and abs(gains.std() - 0.05) < 0.01


def test_optimizer_is_adam_with_coupled_weight_decay():
    from ddjax.training import make_optimizer
    config = TrainConfig(learning_rate=0.1, weight_decay=0.5)
    params = {"w": jnp.asarray([2.0, -1.0])}
    grads = {"w": jnp.asarray([0.3, 0.0])}
    opt = make_optimizer(config)
    updates, _ = opt.update(grads, opt.init(params), params)
    # torch.optim.Adam: g' = g + wd * w; first step moves by -lr * sign(g').
    g = np.array([0.3, 0.0]) + 0.5 * np.array([2.0, -1.0])
    np.testing.assert_allclose(np.asarray(updates["w"]), -0.1 * g / (np.abs(g) + 1e-8),
                               rtol=1e-5)
