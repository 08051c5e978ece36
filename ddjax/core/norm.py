"""The critic's block after each convolution, leaky ReLU -> batch norm -> dropout, fused.

In training, ``flax.linen.BatchNorm`` between a leaky ReLU and a dropout is a chain of
elementwise passes over the first layer's activations (0.8 MB a loop), forward and
backward, and JAX's autodiff of it adds more. Here the block is one function with a
hand-written backward pass: forward, the batch statistics (two sums per channel) and one
elementwise pass; backward, two sums per channel and one elementwise pass. The dropout
mask is a hash of each value's index (``ddjax.core.noise``), so it costs no memory to keep.
``bench/training.py`` measures the step; ``bench/OPTIMIZATION.md`` says what it saved.

``BatchNorm`` here keeps ``flax.linen.BatchNorm``'s variables, names and running averages
(momentum, fast variance, none at initialization) and its arithmetic in inference, so
critic files and their scores do not change.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ddjax.core import noise


def _leaky(x, slope):
    return jnp.where(x >= 0, x, slope * x)


def _keep_scale(seeds, shape, rate):
    """float32[shape]: 0 where dropped, 1 / (1 - rate) where kept."""
    if rate == 0.0:
        return jnp.float32(1.0)
    keep = noise.bits(seeds, shape) >= noise.keep_threshold(rate)
    return jnp.where(keep, jnp.float32(1.0 / (1.0 - rate)), jnp.float32(0.0))


def _forward(x, scale, bias, seeds, slope, eps, rate):
    a = _leaky(x, slope)
    mean = jnp.mean(a, axis=0)
    var = jnp.maximum(0.0, jnp.mean(jnp.square(a), axis=0) - jnp.square(mean))
    inv = jax.lax.rsqrt(var + eps)
    out = ((a - mean) * (inv * scale) + bias) * _keep_scale(seeds, x.shape, rate)
    return (out, mean, var), (x, scale, seeds, mean, inv)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def leaky_norm_dropout(x: jax.Array, scale: jax.Array, bias: jax.Array, seeds: jax.Array,
                       slope: float, eps: float, rate: float):
    """Leaky ReLU, batch norm on this batch's statistics, then inverted dropout.

    Args:
      x: float32[n, channels]; the statistics are over axis 0.
      scale, bias: float32[channels], batch norm's parameters.
      seeds: uint32[2], the dropout mask's (``noise.draw_seeds``).
      slope: the leaky ReLU's slope for negative inputs.
      eps: added to the variance.
      rate: the share of values dropped.

    Returns:
      ``(out, mean, var)``: out float32[n, channels]; mean and var float32[channels], the
      leaky ReLU's batch mean and (biased) variance, for the running averages.
    """
    return _forward(x, scale, bias, seeds, slope, eps, rate)[0]


def _backward(slope, eps, rate, residuals, cotangents):
    x, scale, seeds, mean, inv = residuals
    g_out, g_mean, g_var = cotangents
    n = x.shape[0]
    a = _leaky(x, slope)
    xhat = (a - mean) * inv
    gy = g_out * _keep_scale(seeds, x.shape, rate)
    g_bias = jnp.sum(gy, axis=0)
    g_scale = jnp.sum(gy * xhat, axis=0)
    # d/da of batch norm (the mean and variance depend on a), plus the paths through the
    # returned statistics.
    k = inv * scale
    c0 = k * g_bias / n - g_mean / n
    c1 = k * g_scale / n - 2.0 * g_var / (n * inv)
    g_a = k * gy - c0 - xhat * c1
    g_x = jnp.where(x >= 0, g_a, slope * g_a)
    return g_x, g_scale, g_bias, np.zeros(seeds.shape, jax.dtypes.float0)


leaky_norm_dropout.defvjp(_forward, _backward)


class BatchNorm(nn.Module):
    """Leaky ReLU -> batch norm -> dropout, with ``flax.linen.BatchNorm``'s variables.

    Named ``BatchNorm`` so that flax names its variables ``BatchNorm_<i>``, as the critic
    has always had them. Normalizes over every axis but the last.
    """

    slope: float
    rate: float
    momentum: float = 0.9
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        features = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
        scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
        a = _leaky(x, self.slope)
        if not train:
            return (a - ra_mean.value) * (jax.lax.rsqrt(ra_var.value + self.epsilon)
                                          * scale) + bias
        seeds = (noise.draw_seeds(self.make_rng("dropout")) if self.rate
                 else jnp.zeros(2, jnp.uint32))
        flat = x.reshape(-1, features)
        out, mean, var = leaky_norm_dropout(flat, scale, bias, seeds, self.slope,
                                            self.epsilon, self.rate)
        if not self.is_initializing():
            ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
            ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        return out.reshape(x.shape)
