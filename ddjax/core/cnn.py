"""Critic stage, first kind: the paper's CNN, MFCC features -> P(the user likes the loop).

The paper's network (Alain et al., 2020, section 3.3 and the original code): three 2-D
convolutions of 64 channels with kernel (4, 8) and stride (2, 4), a 1x1 convolution to 8
channels, each followed by leaky ReLU, batch norm and dropout; then a dense layer of 128
units with leaky ReLU and dropout, and a 2-way softmax. 291,290 parameters for a
(60, 442) MFCC map, exactly the original's count.

Speed. The convolutions are matmuls over stride-sized blocks (``ddjax.core.conv``), and the
first one writes its output directly in the blocks the second reads. In training, each
leaky ReLU -> batch norm -> dropout is one op with a hand-written backward pass
(``ddjax.core.norm``). The parameters keep ``flax.linen.Conv``'s and ``flax.linen.BatchNorm``'s
layout and names, so the network is the paper's in every respect but the arithmetic order.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ddjax.core import noise
from ddjax.core.conv import conv_from_blocks, conv_into_blocks, strided_conv
from ddjax.core.norm import BatchNorm


@dataclasses.dataclass(frozen=True)
class CriticConfig:
    """The critic's architecture.

    Attributes:
      n_mfcc: MFCC coefficients (input height).
      n_frames: MFCC frames (input width); 442 for a 2 s bar at hop 200.
      channels: channels of the strided convolutions.
      n_strided: number of strided convolutions.
      bottleneck_channels: channels of the final 1x1 convolution.
      kernel: kernel size (coefficients, frames).
      stride: stride (coefficients, frames).
      hidden: units of the dense layer.
      dropout: dropout rate after every layer, in training.
      negative_slope: slope of the leaky ReLU for negative inputs.
    """

    n_mfcc: int = 60
    n_frames: int = 442
    channels: int = 64
    n_strided: int = 3
    bottleneck_channels: int = 8
    kernel: tuple[int, int] = (4, 8)
    stride: tuple[int, int] = (2, 4)
    hidden: int = 128
    dropout: float = 0.167
    negative_slope: float = 0.01


class Dropout(nn.Module):
    """Inverted dropout like ``flax.linen.Dropout``, with the mask from ``ddjax.core.noise``:
    drawing it with ``jax.random`` took longer than the critic's forward pass."""

    rate: float
    deterministic: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.deterministic or self.rate == 0.0:
            return x
        keep = noise.keep_mask(self.make_rng("dropout"), x.shape, self.rate)
        return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))


class StridedConv(nn.Module):
    """``flax.linen.Conv`` (VALID padding) with the ``ddjax.core.conv`` arithmetic.

    ``layout`` "nhwc" takes and returns NHWC arrays; "into_blocks" returns
    ``conv.conv_into_blocks``' rows for a next convolution of kernel ``next`` and the same
    stride; "from_blocks" takes the blocked input that ``conv_into_blocks`` gives."""

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int]
    dtype: str = "float32"
    layout: str = "nhwc"
    next: tuple[int, int] | None = None

    @nn.compact
    def __call__(self, x: jax.Array):
        cin = x.shape[-1]
        if self.layout == "from_blocks":
            cin //= self.strides[0] * self.strides[1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (*self.kernel_size, cin, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if self.layout == "into_blocks":
            return conv_into_blocks(x, kernel, bias, self.strides, self.next, self.strides,
                                    self.dtype)
        if self.layout == "from_blocks":
            return conv_from_blocks(x, kernel, bias, self.strides, self.dtype)
        return strided_conv(x, kernel, bias, self.strides, self.dtype)


class Critic(nn.Module):
    """The paper's critic. Call it on ``float32[..., n_mfcc, n_frames]``; get logits[..., 2]
    where index 1 is "like". ``dtype`` "bfloat16" runs the convolutions' matmuls in
    bfloat16 with float32 accumulation (the parameters stay float32)."""

    config: CriticConfig = CriticConfig()
    dtype: str = "float32"

    @nn.compact
    def __call__(self, features: jax.Array, train: bool = False) -> jax.Array:
        c = self.config
        lead = features.shape[:-2]
        x = features.reshape((-1,) + features.shape[-2:] + (1,))

        def block(x):  # leaky ReLU -> batch norm -> dropout, one fused op in training
            return BatchNorm(c.negative_slope, c.dropout, momentum=0.9, epsilon=1e-5)(x, train)

        conv = functools.partial(StridedConv, c.channels, c.kernel, c.stride, self.dtype)
        first = 0
        if c.n_strided >= 2 and not (c.kernel[0] % c.stride[0] or c.kernel[1] % c.stride[1]):
            # The first layer's 0.8 MB a loop is written in the second's blocks: batch norm
            # sees every position (rows), the second convolution the ones it reads.
            rows, n_read, shape = conv(layout="into_blocks", next=c.kernel)(x)
            x = block(conv(layout="from_blocks")(block(rows)[:n_read].reshape(shape)))
            first = 2
        for _ in range(first, c.n_strided):
            x = block(conv()(x))
        x = block(StridedConv(c.bottleneck_channels, (1, 1), (1, 1), self.dtype)(x))
        x = x.reshape(x.shape[0], -1)
        x = nn.leaky_relu(nn.Dense(c.hidden)(x), c.negative_slope)
        x = Dropout(c.dropout, deterministic=not train)(x)
        logits = nn.Dense(2)(x)
        return logits.reshape(lead + (2,))


def init_cnn(key: jax.Array, config: CriticConfig = CriticConfig()) -> dict:
    """Fresh CNN variables (``params`` and ``batch_stats``), like the paper's initial model."""
    dummy = jnp.zeros((1, config.n_mfcc, config.n_frames), jnp.float32)
    return dict(Critic(config).init(key, dummy, train=False))


def cnn_prob_like(variables: dict, features: jax.Array, config: CriticConfig = CriticConfig(),
                  dtype: str = "float32") -> jax.Array:
    """P(like) in inference mode. features: float32[..., n_mfcc, n_frames] -> float32[...].
    ``dtype``: the matmul inputs, "float32" or "bfloat16" (float32 accumulation)."""
    logits = Critic(config, dtype=dtype).apply(variables, features, train=False)
    return jax.nn.softmax(logits, axis=-1)[..., 1]


def count_params(variables: dict) -> int:
    """Learnable parameters (batch statistics excluded)."""
    return int(sum(np.size(p) for p in jax.tree_util.tree_leaves(variables["params"])))
