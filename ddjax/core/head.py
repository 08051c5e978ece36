"""Critic stage, second kind: a Bayesian logistic head on the bar's descriptors.

P(like | x) for a loop x with MFCC m is ``sigmoid(w . z + b)``, where
``z = (descriptors(m) - mean) / scale`` standardizes ``ddjax.core.descriptors`` with
statistics of random loops from the kit. The head carries a Gaussian belief over
(w, b): its mean and covariance ``cov`` (over the d + 1 numbers, bias last). Its P(like)
is the posterior predictive, with the probit approximation (MacKay, 1992; Bishop, *PRML*
4.5.2)::

    p = sigmoid(mu / sqrt(1 + pi * v / 8)),  mu = w . z + b,  v = [z, 1]' cov [z, 1]

so a head that knows nothing says 0.5, and it grows confident only where its ratings
agree. A draw from the belief (``cov`` 0) is a Thompson sample of the person's taste.
``ddjax.learning.bayes_head`` fits the belief from ratings; a critic file stores it whole.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ddjax.core.descriptors import DescriptorConfig, descriptors
from ddjax.core.features import FeatureConfig


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """The head's input and descriptors.

    Attributes:
      n_mfcc: MFCC coefficients (input height).
      n_frames: MFCC frames (input width); 442 for a 2 s bar at hop 200.
      bar_samples: samples in the bar the MFCC was computed on.
      sr: sample rate, in Hz.
      hop_length: MFCC hop, in samples.
      n_mels: mel bands behind the MFCC.
      n_bands: descriptor bands (``DescriptorConfig.n_bands``).
      n_steps: steps per bar.
      attack_frames: frames in an attack window.
    """

    n_mfcc: int = 60
    n_frames: int = 442
    bar_samples: int = 88200
    sr: int = 44100
    hop_length: int = 200
    n_mels: int = 128
    n_bands: int = 8
    n_steps: int = 16
    attack_frames: int = 4

    @property
    def descriptors(self) -> DescriptorConfig:
        return DescriptorConfig(self.n_bands, self.n_steps, self.attack_frames)

    @property
    def features(self) -> FeatureConfig:
        return FeatureConfig(sr=self.sr, n_mfcc=self.n_mfcc, hop_length=self.hop_length,
                             n_mels=self.n_mels, fmax=self.sr / 2)

    @property
    def size(self) -> int:
        """Number of descriptors, d."""
        return self.descriptors.size


def init_head(config: HeadConfig = HeadConfig()) -> dict:
    """A head that knows nothing: w = 0, b = 0, identity standardization; P(like) = 0.5."""
    d = config.size
    return {"params": {"w": jnp.zeros((d,), jnp.float32), "b": jnp.zeros((), jnp.float32)},
            "standardize": {"mean": jnp.zeros((d,), jnp.float32),
                            "scale": jnp.ones((d,), jnp.float32)},
            "posterior": {"cov": jnp.zeros((d + 1, d + 1), jnp.float32)}}


def head_inputs(mfccs: jax.Array, config: HeadConfig = HeadConfig()) -> jax.Array:
    """Raw descriptors of MFCC maps: float32[..., n_mfcc, n_frames] -> float32[..., d]."""
    return descriptors(mfccs, config.features, config.descriptors, config.bar_samples)


def standardized(variables: dict, x: jax.Array) -> jax.Array:
    """[z, 1]: standardized descriptors with the bias's 1 appended, float32[..., d + 1]."""
    s = variables["standardize"]
    z = (x - s["mean"]) / s["scale"]
    return jnp.concatenate([z, jnp.ones(z.shape[:-1] + (1,), z.dtype)], axis=-1)


def predictive(variables: dict, x: jax.Array) -> jax.Array:
    """P(like) from raw descriptors x: float32[..., d] -> float32[...]."""
    z1 = standardized(variables, x)
    p = variables["params"]
    mean = jnp.concatenate([p["w"], p["b"][None]])
    mu = z1 @ mean
    var = jnp.einsum("...i,ij,...j->...", z1, variables["posterior"]["cov"], z1)
    return jax.nn.sigmoid(mu / jnp.sqrt(1.0 + (np.pi / 8.0) * jnp.maximum(var, 0.0)))


def head_prob_like(variables: dict, mfccs: jax.Array,
                   config: HeadConfig = HeadConfig()) -> jax.Array:
    """P(like) of MFCC maps: float32[..., n_mfcc, n_frames] -> float32[...]."""
    return predictive(variables, head_inputs(mfccs, config))
