"""Training stage: ratings -> a critic, as one small set of pure functions.

A ``Learner`` is shaped like an Optax transform or a BlackJAX kernel: a NamedTuple of
pure functions with its settings bound in a factory, and a pytree state.

- ``init(key, tables, allowed) -> LearnerState``: the critic before any rating.
- ``update(key, state, tables, loop, liked) -> (LearnerState, info)``: learn one more
  rating (the loop is unbatched; ``info`` is a float32 scalar: the last loss).
- ``remember(state, tables, loop, liked) -> LearnerState``: add a rating to the data
  without learning it (a resumed session whose checkpoint has learned it already).
- ``critic(state) -> variables``: the critic to score loops with (``critic.prob_like``).
- ``sample_critic(key, state) -> variables``: one draw of the critic from the learner's
  belief, for Thompson sampling; the same as ``critic`` for a learner with no belief.

Two learners:

- ``bayes_head`` (the default): the Bayesian logistic head of ``ddjax.core.head`` on the bar's
  descriptors, with a prior over its weights loaded from a pretrained file
  (``ddjax.learning.taste_prior``). After each rating it refits the posterior over every rating so far
  (Newton's method to the MAP, then the Laplace covariance), so it is deterministic and
  does not depend on the order of the ratings.
- ``paper_cnn`` (``--pretrained none``): the paper's CNN trained from scratch, a burst of
  minibatch steps after each rating (``ddjax.learning.training``).

Rated loops live in ``state.data`` rows ``[capacity]`` with ``state.count`` real ones, so
shapes stay put under jit; ``grow`` doubles the capacity when it is full.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ddjax.core import loops as loops_lib
from ddjax.core.critic import init_critic
from ddjax.core.features import mel_power, mfcc
from ddjax.core.head import HeadConfig, head_inputs, standardized
from ddjax.core.loops import Loop, with_velocity
from ddjax.core.render import critic_view
from ddjax.learning.training import Ratings, TrainConfig, init_train_state, train_steps

STANDARDIZE_LOOPS = 512  # random loops whose descriptors standardize the head's inputs
NEWTON_STEPS = 12
INITIAL_CAPACITY = 128  # rows of rated loops before the first doubling


class Rated(NamedTuple):
    """Rated loops, rows [capacity]: the loop, the rating, and what the learner caches of
    each (float32[capacity, d]): the head's descriptors, or the CNN's mel power
    spectrogram (d = 0 when the CNN augments the audio at every step)."""

    loop: Loop
    liked: jax.Array
    inputs: jax.Array


class LearnerState(NamedTuple):
    """``model``: what the learner learns (head variables, or the CNN and Adam's state);
    ``data``: the rated loops; ``count``: int32, how many rows of ``data`` are real."""

    model: Any
    data: Rated
    count: jax.Array


class Learner(NamedTuple):
    init: Callable
    update: Callable
    remember: Callable
    critic: Callable
    sample_critic: Callable


def empty_data(capacity: int, n_tracks: int, n_steps: int, n_inputs: int) -> Rated:
    return Rated(Loop(jnp.zeros((capacity, n_tracks, n_steps), bool),
                      jnp.zeros((capacity, n_tracks), jnp.int32),
                      jnp.zeros((capacity, n_tracks, n_steps), jnp.int32)),
                 jnp.zeros((capacity,), bool), jnp.zeros((capacity, n_inputs), jnp.float32))


def grow(state: LearnerState) -> LearnerState:
    """The same state with twice the rows (one recompile per doubling, not per rating)."""
    pad = lambda x: jnp.concatenate([x, jnp.zeros_like(x)])
    return state._replace(data=jax.tree_util.tree_map(pad, state.data))


def capacity(state: LearnerState) -> int:
    return int(state.data.liked.shape[0])


def _append(data: Rated, count: jax.Array, loop: Loop, liked, inputs) -> Rated:
    put = lambda rows, row: rows.at[count].set(row)
    return Rated(jax.tree_util.tree_map(put, data.loop, with_velocity(loop)), put(data.liked, liked),
                 put(data.inputs, inputs))


def _inputs(tables, loops: Loop, pipeline) -> jax.Array:
    audio = critic_view(tables, loops, pipeline.render)
    return head_inputs(mfcc(audio, pipeline.features), pipeline.critic)


# -- the Bayesian head -------------------------------------------------------------------

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
      pipeline: ``engine.Pipeline`` whose ``critic`` is a ``HeadConfig``.
    """
    config: HeadConfig = pipeline.critic
    prior_mean = jnp.asarray(prior_mean, jnp.float32)
    prior_scale = jnp.asarray(prior_scale, jnp.float32)
    d = config.size

    def with_belief(variables, theta, cov):
        return {**variables, "params": {"w": theta[:d], "b": theta[d]},
                "posterior": {"cov": cov}}

    def init(key, tables, allowed):
        starts = jax.vmap(lambda k: loops_lib.random_loop(k, allowed, pipeline.loops))(
            jax.random.split(key, STANDARDIZE_LOOPS))
        x = _inputs(tables, starts, pipeline)
        variables = init_critic(key, config)
        variables["standardize"] = {"mean": jnp.mean(x, axis=0),
                                    "scale": jnp.maximum(jnp.std(x, axis=0), 1e-3)}
        variables = with_belief(variables, prior_mean, jnp.diag(jnp.square(prior_scale)))
        data = empty_data(INITIAL_CAPACITY, pipeline.loops.n_tracks, pipeline.loops.n_steps, d)
        return LearnerState(variables, data, jnp.int32(0))

    def remember(state, tables, loop, liked):
        x = _inputs(tables, jax.tree_util.tree_map(lambda a: a[None], loop), pipeline)[0]
        return state._replace(data=_append(state.data, state.count, loop, liked, x),
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


# -- the paper's CNN ---------------------------------------------------------------------

def paper_cnn(pipeline, train: TrainConfig = TrainConfig()) -> Learner:
    """The paper's learner: its CNN from scratch, ``train.steps_per_rating`` Adam steps on
    every rating so far after each new one (``ddjax.learning.training.train_steps``). With
    ``train.augmentation == "mel"``, each rated loop's mel power is computed once, when it
    is rated, and kept in ``data.inputs`` (flattened)."""
    frames = pipeline.features.n_frames(pipeline.render.bar_samples)
    mel_shape = (frames, pipeline.features.n_mels) if train.augmentation == "mel" else (0,)
    n_inputs = int(np.prod(mel_shape))

    def init(key, tables, allowed):
        del tables, allowed
        variables = init_critic(key, pipeline.critic)
        data = empty_data(INITIAL_CAPACITY, pipeline.loops.n_tracks, pipeline.loops.n_steps,
                          n_inputs)
        return LearnerState(init_train_state(variables, train), data, jnp.int32(0))

    def remember(state, tables, loop, liked):
        inputs = jnp.zeros((0,), jnp.float32)
        if n_inputs:
            audio = critic_view(tables, jax.tree_util.tree_map(lambda a: a[None], loop),
                                pipeline.render)
            inputs = mel_power(audio, pipeline.features).reshape(-1)
        data = _append(state.data, state.count, loop, liked, inputs)
        return state._replace(data=data, count=state.count + 1)

    def update(key, state, tables, loop, liked):
        data, count = remember(state, tables, loop, liked)[1:]
        model, losses = state.model, jnp.zeros((1,), jnp.float32)
        if train.steps_per_rating:
            mel = data.inputs.reshape((-1,) + mel_shape) if n_inputs else None
            model, losses = train_steps(key, model, Ratings(data.loop, data.liked, count, mel),
                                        tables, n_steps=train.steps_per_rating,
                                        pipeline=pipeline, config=train)
        return LearnerState(model, data, count), losses[-1]

    def critic(state):
        return state.model.variables

    def sample_critic(key, state):
        del key
        return state.model.variables

    return Learner(init, update, remember, critic, sample_critic)


@functools.lru_cache(maxsize=None)
def compiled(learner: Learner) -> Learner:
    """The learner with each function jit-compiled once (learners are cached by
    ``ddjax.learning.taste_prior.make_learner``, so every session with the same settings shares them)."""
    return Learner(*(jax.jit(fn) for fn in learner))
