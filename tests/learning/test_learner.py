"""The default learner: the Bayesian head, its prior, its calibration and its draws."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddjax.core.critic import CriticConfig, count_params, prob_like
from ddjax.core.features import mfcc
from ddjax.core.head import HeadConfig, head_inputs
from ddjax.core.loops import allowed_samples, random_loop
from ddjax.core.pipeline import Pipeline
from ddjax.core.render import critic_view
from ddjax.errors import DdjaxError
from ddjax.learning.bayes_head import fit_posterior
from ddjax.learning.registry import choose_learner, learner_pipeline, make_learner
from ddjax.learning.taste_prior import empirical_bayes_scale, load_prior
from ddjax.sampling.engine import Engine


def random_loops(kit, n, seed, pipeline=Pipeline()):
    allowed = jnp.asarray(allowed_samples(pipeline.loops, kit.is_kick))
    return jax.vmap(lambda k: random_loop(k, allowed, pipeline.loops))(
        jax.random.split(jax.random.key(seed), n))


def numpy_map(z1, y, prior_scale, steps=200):
    """MAP of Bayesian logistic regression by plain gradient ascent with a line search,
    and the inverse Hessian there, written out in NumPy (float64)."""
    z1, y = z1.astype(np.float64), y.astype(np.float64)
    precision = 1.0 / prior_scale.astype(np.float64) ** 2

    def log_post(w):
        logits = z1 @ w
        return np.sum(y * logits - np.logaddexp(0.0, logits)) - 0.5 * np.sum(precision * w * w)

    w = np.zeros(z1.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(z1 @ w)))
        grad = z1.T @ (y - p) - precision * w
        hess = (z1 * (p * (1 - p))[:, None]).T @ z1 + np.diag(precision)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while log_post(w + t * step) < log_post(w) and t > 1e-6:
            t /= 2
        w = w + t * step
    p = 1.0 / (1.0 + np.exp(-(z1 @ w)))
    hess = (z1 * (p * (1 - p))[:, None]).T @ z1 + np.diag(precision)
    return w, np.linalg.inv(hess)


def test_the_posterior_is_the_map_and_the_laplace_covariance():
    rng = np.random.default_rng(0)
    z1 = np.concatenate([rng.normal(size=(60, 5)), np.ones((60, 1))], axis=1)
    y = rng.random(60) < 1 / (1 + np.exp(-(z1 @ np.array([1.5, -1.0, 0.5, 0, 0, -0.3]))))
    scale = np.array([1.0, 1.0, 0.5, 0.5, 0.2, 1.5])
    mask = np.ones(64, bool)
    mask[60:] = False  # padded rows do not count
    padded_z = np.concatenate([z1, rng.normal(size=(4, 6))]).astype(np.float32)
    padded_y = np.concatenate([y, [True] * 4])
    zero = jnp.zeros(6)
    theta, cov = fit_posterior(jnp.asarray(padded_z), jnp.asarray(padded_y), jnp.asarray(mask),
                               zero, zero, jnp.asarray(scale, jnp.float32))
    want_theta, want_cov = numpy_map(z1, y, scale)
    np.testing.assert_allclose(np.asarray(theta), want_theta, atol=2e-4)
    np.testing.assert_allclose(np.asarray(cov), want_cov, atol=2e-4)


def test_with_no_ratings_the_posterior_is_the_prior():
    scale = jnp.array([0.3, 2.0, 1.0])
    theta, cov = fit_posterior(jnp.ones((4, 3)), jnp.zeros(4, bool), jnp.zeros(4, bool),
                               jnp.zeros(3), jnp.zeros(3), scale)
    np.testing.assert_allclose(np.asarray(theta), 0.0, atol=1e-7)
    np.testing.assert_allclose(np.asarray(cov), np.diag(np.square(np.asarray(scale))), rtol=1e-5)


@pytest.fixture(scope="module")
def head(bundled_kit):
    choice = choose_learner(None)
    pipeline = learner_pipeline(choice, Pipeline())
    learner = make_learner(choice, pipeline)
    engine = Engine(bundled_kit, None, pipeline)
    state = learner.init(jax.random.key(0), engine.params.tables, engine.allowed)
    return learner, pipeline, engine, state


def test_an_untrained_critic_says_one_half_everywhere(head, bundled_kit):
    learner, pipeline, engine, state = head
    scores = np.asarray(engine.score(random_loops(bundled_kit, 64, 5), learner.critic(state)))
    np.testing.assert_allclose(scores, 0.5, atol=1e-6)


def test_the_head_standardizes_with_random_loops_of_the_kit(head, bundled_kit):
    learner, pipeline, engine, state = head
    x = np.asarray(head_inputs(mfcc(critic_view(engine.params.tables,
                                                random_loops(bundled_kit, 512, 9),
                                                pipeline.render)), pipeline.critic))
    standardize = state.model["standardize"]
    z = (x - np.asarray(standardize["mean"])) / np.asarray(standardize["scale"])
    # Other random loops than init's: means near 0 and spreads near 1 (sampling error).
    assert np.median(np.abs(z.mean(axis=0))) < 0.15
    assert 0.8 < np.median(z.std(axis=0)) < 1.2


def test_scores_follow_the_probit_approximation(head, bundled_kit):
    learner, pipeline, engine, state = head
    loops = random_loops(bundled_kit, 40, 3)
    for i in range(24):  # likes: loops with more hits than the median
        loop = jax.tree_util.tree_map(lambda a: a[i], loops)
        state, _ = learner.update(jax.random.key(i), state, engine.params.tables, loop,
                                  jnp.bool_(loop.grid.sum() > 32))
    critic = learner.critic(state)
    test = jax.tree_util.tree_map(lambda a: a[24:], loops)
    x = np.asarray(head_inputs(mfcc(critic_view(engine.params.tables, test, pipeline.render)),
                               pipeline.critic), np.float64)
    s = critic["standardize"]
    z1 = np.concatenate([(x - np.asarray(s["mean"])) / np.asarray(s["scale"]),
                         np.ones((16, 1))], axis=1)
    mean = np.append(np.asarray(critic["params"]["w"]), float(critic["params"]["b"]))
    var = np.einsum("ij,jk,ik->i", z1, np.asarray(critic["posterior"]["cov"], np.float64), z1)
    want = 1 / (1 + np.exp(-(z1 @ mean) / np.sqrt(1 + np.pi * var / 8)))
    np.testing.assert_allclose(np.asarray(engine.score(test, critic)), want, atol=2e-4)
    # Thompson draws scatter around the mean critic's weights.
    draws = jax.vmap(lambda k: learner.sample_critic(k, state)["params"]["w"])(
        jax.random.split(jax.random.key(1), 400))
    np.testing.assert_allclose(np.asarray(draws).mean(axis=0), np.asarray(critic["params"]["w"]),
                               atol=4 * float(np.sqrt(np.max(np.diag(
                                   np.asarray(critic["posterior"]["cov"]))) / 400)) + 1e-3)


def test_learning_is_deterministic(head, bundled_kit):
    learner, _, engine, state = head
    loop = jax.tree_util.tree_map(lambda a: a[0], random_loops(bundled_kit, 1, 4))
    runs = [learner.update(jax.random.key(k), state, engine.params.tables, loop,
                           jnp.bool_(True))[0] for k in (0, 1)]
    for a, b in zip(jax.tree_util.tree_leaves(runs[0]), jax.tree_util.tree_leaves(runs[1])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_empirical_bayes_recovers_the_spread_of_tastes():
    rng = np.random.default_rng(0)
    truth = np.array([2.0] * 10 + [0.5] * 10)
    groups = np.repeat([0, 1], 10)
    weights = rng.normal(size=(4000, 20)) * truth
    np.testing.assert_allclose(empirical_bayes_scale(weights, groups), truth, rtol=0.05)
    own = empirical_bayes_scale(weights * np.linspace(0.5, 1.5, 20), groups, pool=0.0)
    np.testing.assert_allclose(own, truth * np.linspace(0.5, 1.5, 20), rtol=0.05)


def test_the_packaged_prior_loads_and_a_corrupt_one_is_one_clear_error(tmp_path):
    prior = load_prior()
    assert len(prior.scale) == HeadConfig().size + 1 and min(prior.scale) > 0
    record = json.loads(open(prior.source).read())
    cases = {"not-json": "{\"format\": ",
             "other-format": json.dumps({**record, "format": "something"}),
             "short": json.dumps({**record, "scale": record["scale"][:-1]}),
             "negative": json.dumps({**record, "scale": [-1.0] * len(record["scale"])}),
             "future": json.dumps({**record, "version": 99})}
    for name, text in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        with pytest.raises(DdjaxError) as err:
            load_prior(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DdjaxError, match="cannot read"):
        load_prior(tmp_path / "missing.json")


def test_pretrained_none_is_the_papers_critic(bundled_kit):
    choice = choose_learner("none")
    pipeline = learner_pipeline(choice, Pipeline())
    learner = make_learner(choice, pipeline)
    assert isinstance(pipeline.critic, CriticConfig)
    engine = Engine(bundled_kit, None, pipeline)
    state = learner.init(jax.random.key(0), engine.params.tables, engine.allowed)
    critic = learner.critic(state)
    assert count_params(critic) == 291_290  # the original's count
    loops = random_loops(bundled_kit, 4, 1)
    audio = critic_view(engine.params.tables, loops, pipeline.render)
    np.testing.assert_allclose(np.asarray(engine.score(loops, critic)),
                               np.asarray(prob_like(critic, mfcc(audio), pipeline.critic)),
                               atol=1e-5)
