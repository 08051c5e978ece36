"""The default learner: a Bayesian logistic head on the bar's descriptors.

``bayes_head`` is a ``base.Learner`` over the head of ``ddjax.core.head``, with a Gaussian
prior over its weights (``ddjax.learning.taste_prior``). After each rating it refits the
posterior over every rating so far (``fit_posterior``: Newton's method to the MAP, then
the Laplace covariance), so it is deterministic and does not depend on the order of the
ratings; ``sample_critic`` draws the head's weights from that posterior.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ddjax.core import loops as loops_lib
from ddjax.core.critic import init_critic
from ddjax.core.head import HeadConfig, head_inputs, standardized
from ddjax.core.pipeline import critic_features
from ddjax.learning.base import INITIAL_CAPACITY, Learner, LearnerState, append, empty_data

STANDARDIZE_LOOPS = 512  # random loops whose descriptors standardize the head's inputs
# Their key: the standardization is the kit's, not the person's, so every session on a kit
# starts from the same state (a server shares it: ``ddjax.session.hub``).
STANDARDIZE_SEED = 0
NEWTON_STEPS = 12


def _inputs(tables, loops, pipeline) -> jax.Array:
    return head_inputs(critic_features(tables, loops, pipeline), pipeline.critic)


def fit_posterior(z1: jax.Array, liked: jax.Array, mask: jax.Array, mean: jax.Array,
                  prior_mean: jax.Array, prior_scale: jax.Array,
                  n_steps: int = NEWTON_STEPS) -> tuple[jax.Array, jax.Array]:
    """The Laplace posterior of Bayesian logistic regression (Bishop, *PRML* 4.5).

    Args:
      z1: float32[n, d + 1], inputs with the bias's 1 last.
      liked: bool[n]; mask: bool[n], which rows count.
      mean: float32[d + 1], where Newton's method starts.
      prior_mean, prior_scale: float32[d + 1], the Gaussian prior N(mean, diag(scale^2)).
      n_steps: Newton steps.

    Returns:
      The MAP weights float32[d + 1] and the covariance float32[d + 1, d + 1], the inverse
      of the negative log posterior's Hessian there.
    """
    precision = 1.0 / jnp.square(prior_scale)
    y, m = liked.astype(z1.dtype), mask.astype(z1.dtype)

    def hessian(theta):
        p = jax.nn.sigmoid(z1 @ theta)
        h = (z1 * (m * p * (1.0 - p))[:, None]).T @ z1 + jnp.diag(precision)
        return p, h

    def newton(theta, _):
        p, h = hessian(theta)
        grad = z1.T @ (m * (y - p)) - precision * (theta - prior_mean)
        chol = jax.scipy.linalg.cho_factor(h)
        return theta + jax.scipy.linalg.cho_solve(chol, grad), None

    theta, _ = jax.lax.scan(newton, mean, None, length=n_steps)
    _, h = hessian(theta)
    chol = jax.scipy.linalg.cho_factor(h)
    cov = jax.scipy.linalg.cho_solve(chol, jnp.eye(h.shape[0], dtype=h.dtype))
    return theta, 0.5 * (cov + cov.T)


def bayes_head(prior_mean: np.ndarray, prior_scale: np.ndarray, pipeline) -> Learner:
    """The default learner: a Bayesian logistic head (``ddjax.core.head``).

    Args:
      prior_mean, prior_scale: float[d + 1], the prior over (w, b) (``ddjax.learning.taste_prior``).
      pipeline: ``ddjax.core.pipeline.Pipeline`` whose ``critic`` is a ``HeadConfig``.
    """
    config: HeadConfig = pipeline.critic
    prior_mean = jnp.asarray(prior_mean, jnp.float32)
    prior_scale = jnp.asarray(prior_scale, jnp.float32)
    d = config.size

    def with_belief(variables, theta, cov):
        return {**variables, "params": {"w": theta[:d], "b": theta[d]},
                "posterior": {"cov": cov}}

    def init(key, tables, allowed):
        # Standardised over the musical prior's loops, whatever prior the chains use: the
        # same statistics as the shipped taste prior was learned with.
        generic = dataclasses.replace(pipeline.loops, prior="musical")
        starts = jax.vmap(lambda k: loops_lib.random_loop(k, allowed, generic))(
            jax.random.split(jax.random.key(STANDARDIZE_SEED), STANDARDIZE_LOOPS))
        x = _inputs(tables, starts, pipeline)
        variables = init_critic(key, config)
        variables["standardize"] = {"mean": jnp.mean(x, axis=0),
                                    "scale": jnp.maximum(jnp.std(x, axis=0), 1e-3)}
        variables = with_belief(variables, prior_mean, jnp.diag(jnp.square(prior_scale)))
        data = empty_data(INITIAL_CAPACITY, pipeline.loops.n_tracks, pipeline.loops.n_steps, d)
        return LearnerState(variables, data, jnp.int32(0))

    def remember(state, tables, loop, liked):
        x = _inputs(tables, jax.tree_util.tree_map(lambda a: a[None], loop), pipeline)[0]
        return state._replace(data=append(state.data, state.count, loop, liked, x),
                              count=state.count + 1)

    def update(key, state, tables, loop, liked):
        del key  # the posterior is a deterministic function of the ratings
        data, count = remember(state, tables, loop, liked)[1:]
        mask = jnp.arange(data.liked.shape[0]) < count
        z1 = standardized(state.model, data.inputs)
        theta, cov = fit_posterior(z1, data.liked, mask, prior_mean, prior_mean, prior_scale)
        logits = z1 @ theta
        loss = -jnp.sum(mask * jax.nn.log_sigmoid(jnp.where(data.liked, logits, -logits)))
        return LearnerState(with_belief(state.model, theta, cov), data, count), \
            loss / count

    def critic(state):
        return state.model

    def sample_critic(key, state):
        p = state.model["params"]
        mean = jnp.concatenate([p["w"], p["b"][None]])
        cov = state.model["posterior"]["cov"]
        chol = jnp.linalg.cholesky(cov + 1e-6 * jnp.eye(d + 1))
        theta = mean + chol @ jax.random.normal(key, (d + 1,))
        return with_belief(state.model, theta, jnp.zeros_like(cov))

    return Learner(init, update, remember, critic, sample_critic)
