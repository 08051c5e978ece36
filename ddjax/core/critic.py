"""Critic stage: MFCC features -> P(the user likes the loop), for either kind of critic.

Two kinds share one interface, looked up by their configuration's type, never by an
``isinstance`` chain: ``"cnn"``, the paper's network (``ddjax.core.cnn``), and ``"head"``,
a Bayesian logistic head on the bar's descriptors (``ddjax.core.head``). Their files are
``ddjax.io.critics``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax

from ddjax.core.cnn import CriticConfig, cnn_prob_like, count_params, init_cnn
from ddjax.core.head import HeadConfig, head_prob_like, init_head

__all__ = ["CriticConfig", "HeadConfig", "KINDS", "count_params", "init_critic", "kind_of",
           "prob_like"]


class CriticKind(NamedTuple):
    """One kind of critic: its configuration type, ``init(key, config) -> variables`` and
    ``prob_like(variables, features, config, dtype) -> float32[...]``."""

    config: type
    init: Callable[[jax.Array, object], dict]
    prob_like: Callable[..., jax.Array]


KINDS = {
    "cnn": CriticKind(CriticConfig, init_cnn, cnn_prob_like),
    "head": CriticKind(HeadConfig, lambda key, config: init_head(config),
                       lambda variables, features, config, dtype: head_prob_like(
                           variables, features, config)),
}
_BY_CONFIG = {kind.config: name for name, kind in KINDS.items()}


def kind_of(config: CriticConfig | HeadConfig) -> str:
    """"cnn" (the paper's network) or "head" (``ddjax.core.head``)."""
    return _BY_CONFIG[type(config)]


def init_critic(key: jax.Array, config: CriticConfig | HeadConfig = CriticConfig()) -> dict:
    """Fresh critic variables: for the CNN (``params`` and ``batch_stats``) like the paper's
    initial model; for the head, one that knows nothing (``head.init_head``)."""
    return KINDS[kind_of(config)].init(key, config)


def prob_like(variables: dict, features: jax.Array,
              config: CriticConfig | HeadConfig = CriticConfig(),
              dtype: str = "float32") -> jax.Array:
    """P(like) in inference mode. features: float32[..., n_mfcc, n_frames] -> float32[...].
    ``dtype``: the CNN's matmul inputs, "float32" or "bfloat16" (float32 accumulation)."""
    return KINDS[kind_of(config)].prob_like(variables, features, config, dtype)
