"""Critic stage: MFCC features -> P(the user likes the loop).

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
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from ddjax.core import noise
from ddjax.core.conv import conv_from_blocks, conv_into_blocks, strided_conv
from ddjax.errors import DdjaxError
from ddjax.io.files import atomic_write_bytes
from ddjax.core.head import HeadConfig, head_prob_like, init_head
from ddjax.core.norm import BatchNorm

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


KINDS = {"cnn": CriticConfig, "head": HeadConfig}


def kind_of(config: CriticConfig | HeadConfig) -> str:
    """"cnn" (the paper's network) or "head" (``ddjax.core.head``)."""
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
