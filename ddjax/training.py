"""Training stage: ratings -> a better critic (optax, one jit per burst of steps).

As in the paper, training is incremental: after each new rating, ``steps_per_rating``
minibatch steps run over every loop rated so far, continuing from the current weights.
Batches are half likes and half dislikes once both exist. The critic trains on the same
view it scores, the steady-state bar, with audio augmentation: gain x N(1, 0.05), DC
offset N(0, 0.05), white noise of sigma 0.006, and a circular shift of 0..128 samples.

The optimizer is the original's Adam with L2 weight decay added to the gradient
(PyTorch's ``Adam(weight_decay=...)``), lr 5.74e-5, decay 5.9e-6. Every default is the
original's except ``steps_per_rating``: 16 instead of 40, so that a burst (~1.6 s on a
2-core CPU) hides behind one bar of listening; the simulated-user table in
``bench/README.md`` is the evidence that the critic still learns.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from ddjax.critic import Critic
from ddjax.errors import DdjaxError
from ddjax.features import mfcc
from ddjax.loops import Loop
from ddjax.render import critic_view


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How the critic learns from ratings.

    Attributes:
      steps_per_rating: minibatch steps after each new rating.
      batch_size: loops per step; half likes, half dislikes once both exist.
      learning_rate: Adam's step size.
      weight_decay: L2 coefficient added to the gradient.
      gain_std: std of the random gain around 1.
      dc_std: std of the random DC offset.
      noise_std: std of the added white noise.
      max_shift_samples: largest random circular shift, in samples.
    """

    steps_per_rating: int = 16
    batch_size: int = 16
    learning_rate: float = 5.74e-5
    weight_decay: float = 5.9e-6
    gain_std: float = 0.05
    dc_std: float = 0.05
    noise_std: float = 0.006
    max_shift_samples: int = 128

    def __post_init__(self):
        if self.steps_per_rating < 0 or self.batch_size < 2:
            raise DdjaxError("steps_per_rating must be >= 0 and batch_size >= 2")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise DdjaxError("learning_rate must be > 0 and weight_decay >= 0")


class TrainState(NamedTuple):
    """The critic in training: its variables and Adam's state."""

    variables: dict
    opt_state: optax.OptState


class Ratings(NamedTuple):
    """Rated loops on device, padded to a fixed capacity so shapes stay put.

    Attributes:
      loops: ``Loop`` batched over [capacity].
      liked: bool[capacity].
      count: int32 scalar, how many rows are real.
    """

    loops: Loop
    liked: jax.Array
    count: jax.Array


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Adam with coupled L2 weight decay, like ``torch.optim.Adam(weight_decay=...)``."""
    return optax.chain(optax.add_decayed_weights(config.weight_decay),
                       optax.adam(config.learning_rate))


def init_train_state(variables: dict, config: TrainConfig) -> TrainState:
    return TrainState(variables, make_optimizer(config).init(variables["params"]))


def augment(key: jax.Array, audio: jax.Array, config: TrainConfig) -> jax.Array:
    """Random gain, DC offset, noise and circular shift of each clip. audio: float32[n, samples]."""
    gain_key, dc_key, noise_key, shift_key = jax.random.split(key, 4)
    n = audio.shape[0]
    gain = 1.0 + config.gain_std * jax.random.normal(gain_key, (n, 1))
    dc = config.dc_std * jax.random.normal(dc_key, (n, 1))
    noise = config.noise_std * jax.random.normal(noise_key, audio.shape)
    shifts = jax.random.randint(shift_key, (n,), 0, config.max_shift_samples + 1)
    shifted = jax.vmap(jnp.roll)(audio, shifts)
    return gain * shifted + dc + noise


def _balanced_indices(key: jax.Array, ratings: Ratings, batch_size: int) -> jax.Array:
    rows = jnp.arange(ratings.liked.shape[0])
    real = rows < ratings.count
    likes, dislikes = real & ratings.liked, real & ~ratings.liked
    both = jnp.any(likes) & jnp.any(dislikes)
    half = batch_size // 2
    first = jnp.where(both, likes, real)
    second = jnp.where(both, dislikes, real)
    k1, k2 = jax.random.split(key)
    logits = lambda mask: jnp.where(mask, 0.0, -jnp.inf)
    return jnp.concatenate([
        jax.random.categorical(k1, logits(first), shape=(half,)),
        jax.random.categorical(k2, logits(second), shape=(batch_size - half,))])


def train_steps(key: jax.Array, state: TrainState, ratings: Ratings, tables: jax.Array, *,
                n_steps: int, pipeline, config: TrainConfig) -> tuple[TrainState, jax.Array]:
    """``n_steps`` minibatch steps on the rated loops, in one ``lax.scan``.

    Args:
      key: PRNG key.
      state: the critic and optimizer state.
      ratings: the rated loops so far (``count >= 1``).
      tables: the kit's render tables.
      n_steps: steps to run (static).
      pipeline: ``engine.Pipeline`` with the render, feature and critic settings.
      config: training settings.

    Returns:
      The new state and the loss of each step, float32[n_steps].
    """
    model = Critic(pipeline.critic)
    optimizer = make_optimizer(config)

    def loss_fn(params, batch_stats, audio, labels, dropout_key):
        logits, updates = model.apply(
            {"params": params, "batch_stats": batch_stats}, mfcc(audio, pipeline.features),
            train=True, rngs={"dropout": dropout_key}, mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, updates["batch_stats"]

    def step(state, step_key):
        pick_key, aug_key, dropout_key = jax.random.split(step_key, 3)
        rows = _balanced_indices(pick_key, ratings, config.batch_size)
        batch = jax.tree_util.tree_map(lambda x: x[rows], ratings.loops)
        audio = augment(aug_key, critic_view(tables, batch, pipeline.render), config)
        labels = ratings.liked[rows].astype(jnp.int32)
        params, batch_stats = state.variables["params"], state.variables["batch_stats"]
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, batch_stats, audio, labels, dropout_key)
        updates, opt_state = optimizer.update(grads, state.opt_state, params)
        params = optax.apply_updates(params, updates)
        return TrainState({"params": params, "batch_stats": batch_stats}, opt_state), loss

    return jax.lax.scan(step, state, jax.random.split(key, n_steps))
