"""Critic stage: MFCC features -> P(the user likes the loop).

The paper's network (Alain et al., 2020, section 3.3 and the original code): three 2-D
convolutions of 64 channels with kernel (4, 8) and stride (2, 4), a 1x1 convolution to 8
channels, each followed by leaky ReLU, batch norm and dropout; then a dense layer of 128
units with leaky ReLU and dropout, and a 2-way softmax. 291,290 parameters for a
(60, 442) MFCC map, exactly the original's count.

Speed. XLA's CPU convolution is slow for these strided kernels, so ``strided_conv`` uses
space-to-depth: when the kernel is a whole number of strides (4 = 2 x 2 and 8 = 2 x 4),
the input is cut into stride-sized blocks, and the convolution becomes a 2 x 2 stride-1
convolution over blocks, i.e. a few matmuls. The parameters keep ``flax.linen.Conv``'s
layout, so the network is the paper's in every respect but the arithmetic order.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from ddjax import noise
from ddjax.errors import DdjaxError
from ddjax.files import atomic_write_bytes
from ddjax.head import HeadConfig, head_prob_like, init_head

FILE_FORMAT = "ddjax-critic"
FILE_VERSION = 1


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


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def _transposed_copy(w: jax.Array) -> jax.Array:
    """``w.T`` as a new row-major array. XLA folds a plain transpose into the matmul that
    reads it, and its CPU backend multiplies bfloat16 on the matrix units (AMX) only for
    a matmul whose operands are both row-major; a gather it does not fold."""
    k, n = w.shape
    return w.reshape(-1)[np.arange(k * n).reshape(k, n).T.reshape(-1)].reshape(n, k)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _lowp_matmul(x: jax.Array, w: jax.Array, dtype: str) -> jax.Array:
    return jnp.dot(x.astype(dtype), w.astype(dtype), preferred_element_type=jnp.float32)


def _lowp_matmul_fwd(x, w, dtype):
    x, w = x.astype(dtype), w.astype(dtype)
    return jnp.dot(x, w, preferred_element_type=jnp.float32), (x, w)


def _lowp_matmul_bwd(dtype, residuals, dy):
    x, w = residuals
    dy = dy.astype(dtype)
    dx = jnp.dot(dy, _transposed_copy(w), preferred_element_type=jnp.float32)
    dw = jnp.dot(x.T, dy, preferred_element_type=jnp.float32)
    return dx, dw


_lowp_matmul.defvjp(_lowp_matmul_fwd, _lowp_matmul_bwd)


def _matmul(x: jax.Array, w: jax.Array, dtype: str = "float32") -> jax.Array:
    """``x @ w`` over the last axis of ``x``, as one 2-D matmul: its gradients are then 2-D
    matmuls too, where a matmul contracting several axes at once is slow on XLA's CPU.

    ``dtype`` "bfloat16" multiplies in bfloat16 with float32 accumulation and output, in
    the backward pass too."""
    x2 = x.reshape(-1, x.shape[-1])
    y = x2 @ w if dtype == "float32" else _lowp_matmul(x2, w, dtype)
    return y.reshape(x.shape[:-1] + w.shape[-1:])


def strided_conv(x: jax.Array, kernel: jax.Array, bias: jax.Array,
                 stride: tuple[int, int], dtype: str = "float32") -> jax.Array:
    """A VALID 2-D convolution, NHWC, computed as matmuls.

    Args:
      x: float32[batch, height, width, in_channels].
      kernel: float32[kh, kw, in_channels, out_channels] (``flax.linen.Conv`` layout).
      bias: float32[out_channels].
      stride: (sh, sw); ``kh`` and ``kw`` must be multiples of them for the fast path.
      dtype: the matmuls' input type, "float32" or "bfloat16" (float32 accumulation).

    Returns:
      float32[batch, (height - kh) // sh + 1, (width - kw) // sw + 1, out_channels],
      equal to ``lax.conv_general_dilated(x, kernel, stride, 'VALID')`` + bias.
    """
    kh, kw, cin, cout = kernel.shape
    sh, sw = stride
    if kh % sh or kw % sw:
        y = jax.lax.conv_general_dilated(x, kernel, stride, "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + bias
    batch, height, width, _ = x.shape
    out_h, out_w = _conv_out(height, kh, sh), _conv_out(width, kw, sw)
    a, b = kh // sh, kw // sw  # kernel size in blocks
    blocks_h, blocks_w = out_h + a - 1, out_w + b - 1
    x = x[:, :blocks_h * sh, :blocks_w * sw, :]
    x = x.reshape(batch, blocks_h, sh, blocks_w, sw, cin).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(batch, blocks_h, blocks_w, sh * sw * cin)
    w = kernel.reshape(a, sh, b, sw, cin, cout).transpose(0, 2, 1, 3, 4, 5)
    w = w.reshape(a, b, sh * sw * cin, cout)
    depth = sh * sw * cin
    if out_h * out_w * a * b * depth <= blocks_h * blocks_w * a * b * cout:
        # Few input channels: gather the a*b shifted blocks, then one matmul.
        patches = jnp.concatenate(
            [x[:, i:i + out_h, j:j + out_w, :] for i in range(a) for j in range(b)], axis=-1)
        y = _matmul(patches, w.reshape(a * b * depth, cout), dtype)
        return y + bias
    # Many input channels: one matmul against all a*b kernel blocks, then shifted sums.
    y = _matmul(x, w.transpose(2, 0, 1, 3).reshape(depth, a * b * cout), dtype).reshape(
        batch, blocks_h, blocks_w, a, b, cout)
    out = sum(y[:, i:i + out_h, j:j + out_w, i, j, :] for i in range(a) for j in range(b))
    return out + bias


class Dropout(nn.Module):
    """Inverted dropout like ``flax.linen.Dropout``, with the mask from ``ddjax.noise``:
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
    """``flax.linen.Conv`` (VALID padding) with the ``strided_conv`` arithmetic."""

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int]
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (*self.kernel_size, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
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

        def block(x, conv):
            x = nn.leaky_relu(conv(x), c.negative_slope)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x)
            return Dropout(c.dropout, deterministic=not train)(x)

        for _ in range(c.n_strided):
            x = block(x, StridedConv(c.channels, c.kernel, c.stride, self.dtype))
        x = block(x, StridedConv(c.bottleneck_channels, (1, 1), (1, 1), self.dtype))
        x = x.reshape(x.shape[0], -1)
        x = nn.leaky_relu(nn.Dense(c.hidden)(x), c.negative_slope)
        x = Dropout(c.dropout, deterministic=not train)(x)
        logits = nn.Dense(2)(x)
        return logits.reshape(lead + (2,))


KINDS = {"cnn": CriticConfig, "head": HeadConfig}


def kind_of(config: CriticConfig | HeadConfig) -> str:
    """"cnn" (the paper's network) or "head" (``ddjax.head``)."""
    return "head" if isinstance(config, HeadConfig) else "cnn"


def init_critic(key: jax.Array, config: CriticConfig | HeadConfig = CriticConfig()) -> dict:
    """Fresh critic variables: for the CNN (``params`` and ``batch_stats``) like the paper's
    initial model; for the head, one that knows nothing (``head.init_head``)."""
    if isinstance(config, HeadConfig):
        return init_head(config)
    dummy = jnp.zeros((1, config.n_mfcc, config.n_frames), jnp.float32)
    return dict(Critic(config).init(key, dummy, train=False))


def prob_like(variables: dict, features: jax.Array,
              config: CriticConfig | HeadConfig = CriticConfig(),
              dtype: str = "float32") -> jax.Array:
    """P(like) in inference mode. features: float32[..., n_mfcc, n_frames] -> float32[...].
    ``dtype``: the CNN's matmul inputs, "float32" or "bfloat16" (float32 accumulation)."""
    if isinstance(config, HeadConfig):
        return head_prob_like(variables, features, config)
    logits = Critic(config, dtype=dtype).apply(variables, features, train=False)
    return jax.nn.softmax(logits, axis=-1)[..., 1]


def count_params(variables: dict) -> int:
    """Learnable parameters (batch statistics excluded)."""
    return int(sum(np.size(p) for p in jax.tree_util.tree_leaves(variables["params"])))


AUDIO_DEFAULTS = {"sr": 44100, "bar_samples": 88200}  # what files without these fields mean


def save_critic(path: str | os.PathLike, variables: dict, config: CriticConfig | HeadConfig, *,
                sr: int = AUDIO_DEFAULTS["sr"],
                bar_samples: int = AUDIO_DEFAULTS["bar_samples"]) -> None:
    """Writes the critic (all its variables) to one versioned file, atomically.

    ``sr`` (Hz) and ``bar_samples`` record the audio the critic was trained to hear, so
    that a pipeline with another sample rate or tempo refuses it. The bytes depend only on
    the arguments.
    """
    payload = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "kind": kind_of(config),
        "config": json.dumps(dataclasses.asdict(config)),
        "audio": {"sr": int(sr), "bar_samples": int(bar_samples)},
        "variables": serialization.to_state_dict(jax.device_get(variables)),
    }
    atomic_write_bytes(path, serialization.msgpack_serialize(payload))


def check_critic_config(path: str | os.PathLike, config: CriticConfig | HeadConfig, pipeline,
                        audio: dict | None = None) -> None:
    """Checks, field by field, that the critic in ``path`` hears what ``pipeline`` feeds it.

    Args:
      path: the critic file, for the message.
      config: its architecture, as the file records it.
      pipeline: an ``engine.Pipeline`` (its ``render`` and ``features`` are read).
      audio: the file's ``{"sr", "bar_samples"}``; missing fields mean ``AUDIO_DEFAULTS``.

    Raises:
      DdjaxError: one line naming the file, the first field that differs and both values.
    """
    audio = {**AUDIO_DEFAULTS, **(audio or {})}
    render, features = pipeline.render, pipeline.features
    checks = (
        ("sr", audio["sr"], render.sr, "Hz"),
        ("bar_samples", audio["bar_samples"], render.bar_samples,
         f"samples a bar, at {render.bpm:g} BPM"),
        ("n_mfcc", config.n_mfcc, features.n_mfcc, "MFCC coefficients"),
        ("n_frames", config.n_frames, features.n_frames(render.bar_samples),
         "MFCC frames a bar"),
    )
    for field, in_file, here, unit in checks:
        if in_file != here:
            raise DdjaxError(f"critic {path} does not fit this pipeline: {field} is {in_file}"
                             f" in the file but {here} here ({unit}); use a critic trained"
                             " with these settings")


def _architecture_mismatch(config: CriticConfig, template: dict, restored: dict) -> str | None:
    """The first architecture field the file's parameters contradict, as words."""
    flat_want = {jax.tree_util.keystr(k): v for k, v in
                 jax.tree_util.tree_flatten_with_path(template)[0]}
    flat_got = {jax.tree_util.keystr(k): v for k, v in
                jax.tree_util.tree_flatten_with_path(restored)[0]}
    def order(key):  # kernels in data-flow order first: every other shape follows them
        return ("kernel" not in key, "Dense" in key, key)

    for key in sorted(flat_want, key=order):
        want = flat_want[key]
        got = tuple(np.shape(flat_got[key]))
        want = tuple(want.shape)
        if got == want:
            continue
        if "StridedConv" in key and "kernel" in key:
            layer = int(key.split("StridedConv_")[1].split("'")[0])
            if got[:2] != want[:2] and layer < config.n_strided:
                return (f"kernel is {list(config.kernel)} in its configuration but"
                        f" {list(got[:2])} in its parameters")
            field = "channels" if layer < config.n_strided else "bottleneck_channels"
            return (f"{field} is {want[3]} in its configuration but"
                    f" {got[3] if len(got) == 4 else got} in its parameters")
        if "Dense_0" in key and "kernel" in key:
            if len(got) == 2 and got[1] != want[1]:
                return f"hidden is {want[1]} in its configuration but {got[1]} in its parameters"
            return (f"its dense layer takes {got[0] if got else got} inputs but n_mfcc="
                    f"{config.n_mfcc}, n_frames={config.n_frames}, kernel={list(config.kernel)}"
                    f" and stride={list(config.stride)} give {want[0]}")
        return f"{key} has shape {got} in its parameters, not {want}"
    return None


def load_critic(path: str | os.PathLike,
                pipeline=None) -> tuple[dict, CriticConfig | HeadConfig]:
    """Reads a file written by ``save_critic``.

    Args:
      path: the critic file.
      pipeline: the ``engine.Pipeline`` that will use it, checked by
        ``check_critic_config`` before anything is built; None skips that check.

    Raises:
      DdjaxError: the file is missing, not a ddjax critic, of another version, its
        parameters do not fit the architecture it names, or it does not fit ``pipeline``.
    """
    try:
        with open(path, "rb") as f:
            payload = serialization.msgpack_restore(f.read())
    except IsADirectoryError:
        raise DdjaxError(f"critic file {path} is a folder; pass a .critic file") from None
    except OSError as err:
        raise DdjaxError(f"cannot read critic file {path}: {err.strerror}") from None
    except Exception:  # msgpack raises many types on garbage
        raise DdjaxError(f"{path} is not a ddjax critic file (unreadable)") from None
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise DdjaxError(f"{path} is not a ddjax critic file")
    if payload.get("version") != FILE_VERSION:
        raise DdjaxError(f"{path} is a version {payload.get('version')} critic file; this"
                         f" ddjax reads version {FILE_VERSION}")
    kind = payload.get("kind", "cnn")  # files before the head have no kind
    if kind not in KINDS:
        raise DdjaxError(f"{path} holds a critic of unknown kind {kind!r}")
    try:
        config = KINDS[kind](**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in json.loads(payload["config"]).items()})
        audio = payload.get("audio") or {}
        if not isinstance(audio, dict):
            raise TypeError("audio")
    except (TypeError, ValueError, KeyError):
        raise DdjaxError(f"{path} has an unknown critic configuration") from None
    if pipeline is not None:
        check_critic_config(path, config, pipeline, audio)
    try:
        template = jax.eval_shape(lambda: init_critic(jax.random.key(0), config))
    except Exception:  # flax/jax raise many types on an impossible architecture
        raise DdjaxError(f"{path} has an impossible critic configuration ({config})") from None
    variables = payload.get("variables")
    try:
        restored = serialization.from_state_dict(template, variables)
    except (ValueError, KeyError, TypeError) as err:
        raise DdjaxError(f"{path} does not match the critic architecture: n_strided is"
                         f" {config.n_strided} in its configuration but its parameters have"
                         f" other layers ({str(err).splitlines()[0]})") from None
    mismatch = _architecture_mismatch(config, template, restored)
    if mismatch:
        raise DdjaxError(f"{path} does not match the critic architecture: {mismatch}")
    return jax.tree_util.tree_map(jnp.asarray, restored), config
