"""The CNN's training: Adam steps on the rated loops, with the original's augmentation
(optax, one jit per burst of steps); ``paper_cnn`` drives it after each rating.

As in the paper, training is incremental: after each new rating, ``steps_per_rating``
minibatch steps run over every loop rated so far, continuing from the current weights.
Batches are half likes and half dislikes once both exist. The critic trains on the same
view it scores, the steady-state bar, with the original's augmentation: gain x N(1, 0.05),
DC offset N(0, 0.05), white noise of sigma 0.006, and a circular shift of 0..128 samples.

Where the augmentation happens (``TrainConfig.augmentation``):

- ``"mel"`` (the default): each rated loop's mel power spectrogram is computed once, when
  it is rated (``Ratings.mel``), and every step augments that: the gain scales the power
  by g^2 (exact); the DC offset and the noise add their expected power through the
  analysis window (``features.window_responses``), the noise with a per-bin fluctuation
  of the right size; the shift moves the frames by whole hops and interpolates the rest.
  A step then costs the critic's forward and backward pass and little else
  (``bench/training.py``).
- ``"audio"``: the original's way, which renders the loops, augments the audio and
  computes the MFCC again at every step.

The optimizer is the original's Adam with L2 weight decay added to the gradient
(PyTorch's ``Adam(weight_decay=...)``), lr 5.74e-5, decay 5.9e-6. Every default is the
original's except ``steps_per_rating``: 16 instead of 40, so that a burst (0.6 s on a
2-core CPU with AMX, ``bench/training.py``) hides behind one bar of listening.

Speed (``bench/training.py``): the convolutions' matmuls run in bfloat16 with float32
accumulation where the CPU has AMX or AVX512-BF16 (``TrainConfig.precision``), dropout
masks and augmentation noise come from ``ddjax.core.noise`` rather than Threefry, every
matmul of the backward pass is a 2-D one (``ddjax.core.conv``), and each leaky ReLU, batch norm
and dropout is one op with its own backward pass (``ddjax.core.norm``).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ddjax.core import noise
from ddjax.core.cnn import Critic
from ddjax.core.features import (
    FeatureConfig,
    mel_filterbank,
    mfcc,
    mfcc_from_mel,
    window_responses,
)
from ddjax.core.hardware import native_bfloat16
from ddjax.core.loops import Loop
from ddjax.core.render import critic_view
from ddjax.errors import DdjaxError

AUGMENTATIONS = ("mel", "audio")
PRECISIONS = ("auto", "float32", "bfloat16")


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
      augmentation: "mel" (on each rated loop's cached mel power) or "audio" (on the
        audio, rendered again at every step); see the module docstring.
      precision: the convolutions' matmuls in training: "float32", "bfloat16" (float32
        accumulation; the weights stay float32), or "auto": bfloat16 where the device
        multiplies it natively (``hardware.native_bfloat16``), else float32.
    """

    steps_per_rating: int = 16
    batch_size: int = 16
    learning_rate: float = 5.74e-5
    weight_decay: float = 5.9e-6
    gain_std: float = 0.05
    dc_std: float = 0.05
    noise_std: float = 0.006
    max_shift_samples: int = 128
    augmentation: str = "mel"
    precision: str = "auto"

    def __post_init__(self):
        if self.steps_per_rating < 0 or self.batch_size < 2:
            raise DdjaxError("steps_per_rating must be >= 0 and batch_size >= 2")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise DdjaxError("learning_rate must be > 0 and weight_decay >= 0")
        if self.augmentation not in AUGMENTATIONS:
            raise DdjaxError(f"augmentation must be one of {AUGMENTATIONS}")
        if self.precision not in PRECISIONS:
            raise DdjaxError(f"precision must be one of {PRECISIONS}")

    def matmul_dtype(self) -> str:
        """"float32" or "bfloat16", with "auto" resolved for this device."""
        if self.precision == "auto":
            return "bfloat16" if native_bfloat16() else "float32"
        return self.precision


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
      mel: float32[capacity, frames, n_mels], the mel power of each loop's critic view
        (``features.mel_power``); needed for ``augmentation="mel"`` only.
    """

    loops: Loop
    liked: jax.Array
    count: jax.Array
    mel: jax.Array | None = None


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


def augment_mel(key: jax.Array, mel: jax.Array, config: TrainConfig,
                features: FeatureConfig) -> jax.Array:
    """``augment``'s gain, DC offset, noise and shift, applied to mel power spectrograms.

    Args:
      key: PRNG key.
      mel: float32[n, frames, n_mels], the clean clips' ``features.mel_power``.
      config: the augmentation's sizes.
      features: the MFCC settings (hop and filterbank).

    Returns:
      float32[n, frames, n_mels]: g^2 times the shifted power, plus the DC offset's power
      and the noise's expected power times a positive fluctuation of mean 1 and, in band
      m, standard deviation ``1 / sqrt(k_m)`` (k_m: the band's effective number of FFT
      bins). The cross terms between the clip and the DC offset or the noise are left out.
    """
    gain_key, dc_key, noise_key, shift_key = jax.random.split(key, 4)
    n = mel.shape[0]
    gain = 1.0 + config.gain_std * jax.random.normal(gain_key, (n, 1, 1))
    dc = config.dc_std * jax.random.normal(dc_key, (n, 1, 1))
    shifts = jax.random.randint(shift_key, (n,), 0, config.max_shift_samples + 1)
    whole, part = shifts // features.hop_length, shifts % features.hop_length
    moved = jax.vmap(lambda m, k: jnp.roll(m, k, axis=0))(mel, whole)
    frac = (part / features.hop_length)[:, None, None]
    shifted = (1.0 - frac) * moved + frac * jnp.roll(moved, 1, axis=1)
    dc_power, noise_power = window_responses(features)
    filters = mel_filterbank(features)
    bins = np.square(filters.sum(axis=0)) / np.maximum(np.square(filters).sum(axis=0), 1e-30)
    # Mean 1, variance 1 / k_m, never negative: a mix of 1 and an exponential, the power of
    # one FFT bin of white noise (its variance is 1).
    mix = jnp.asarray(np.sqrt(1.0 / np.maximum(bins, 1.0)), mel.dtype)
    exponential = -jnp.log(noise.uniform(noise_key, mel.shape))
    fluctuation = 1.0 + mix * (exponential - 1.0)
    return (jnp.square(gain) * shifted + jnp.square(dc) * jnp.asarray(dc_power, mel.dtype)
            + config.noise_std ** 2 * jnp.asarray(noise_power, mel.dtype) * fluctuation)


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
      ratings: the rated loops so far (``count >= 1``), with ``mel`` for
        ``augmentation="mel"``.
      tables: the kit's render tables (read for ``augmentation="audio"`` only).
      n_steps: steps to run (static).
      pipeline: ``engine.Pipeline`` with the render, feature and critic settings.
      config: training settings.

    Returns:
      The new state and the loss of each step, float32[n_steps].
    """
    if config.augmentation == "mel" and ratings.mel is None:
        raise ValueError("augmentation='mel' trains on Ratings.mel; compute it with"
                         " features.mel_power")
    model = Critic(pipeline.critic, dtype=config.matmul_dtype())
    optimizer = make_optimizer(config)

    def loss_fn(params, batch_stats, features, labels, dropout_key):
        logits, updates = model.apply(
            {"params": params, "batch_stats": batch_stats}, features,
            train=True, rngs={"dropout": dropout_key}, mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, updates["batch_stats"]

    def step(state, step_key):
        pick_key, aug_key, dropout_key = jax.random.split(step_key, 3)
        rows = _balanced_indices(pick_key, ratings, config.batch_size)
        if config.augmentation == "mel":
            mel = augment_mel(aug_key, ratings.mel[rows], config, pipeline.features)
            features = mfcc_from_mel(mel, pipeline.features)
        else:
            batch = jax.tree_util.tree_map(lambda x: x[rows], ratings.loops)
            audio = augment(aug_key, critic_view(tables, batch, pipeline.render), config)
            features = mfcc(audio, pipeline.features)
        labels = ratings.liked[rows].astype(jnp.int32)
        params, batch_stats = state.variables["params"], state.variables["batch_stats"]
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, batch_stats, features, labels, dropout_key)
        updates, opt_state = optimizer.update(grads, state.opt_state, params)
        params = optax.apply_updates(params, updates)
        return TrainState({"params": params, "batch_stats": batch_stats}, opt_state), loss

    return jax.lax.scan(step, state, jax.random.split(key, n_steps))
