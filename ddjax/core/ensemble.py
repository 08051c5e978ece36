"""Ensembles of critics: many users' critics judging the same loops at once.

The paper ranked its 3,500 study loops with an ensemble of every user's critic. Here the
K critics' variables are stacked along a new leading axis and the critic is vmapped over
it, so one MFCC per loop is shared by all K critics and the K forward passes run as
batched matmuls.

Per loop, the K probabilities ``p_k = P_k(like)`` reduce to:

- ``mean``: ``sum_k p_k / K``, the ensemble's P(like);
- ``vote``: the share of critics with ``p_k > 0.5``, in ``{0, 1/K, ..., 1}``;
- ``std``: the population standard deviation ``sqrt(sum_k (p_k - mean)^2 / K)``, how much
  the critics disagree.

``ensemble_score`` is a score function for ``ddjax.sampling.sampler`` over the mean or the vote, so
every sampler mode (MH, "until", hill-climbing to 1.0 or 0.0) runs against an ensemble.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from ddjax.core.batching import in_chunks
from ddjax.core.critic import CriticConfig, prob_like
from ddjax.core.loops import Loop
from ddjax.core.pipeline import Pipeline, ScoreParams, critic_features
from ddjax.errors import DdjaxError

REDUCTIONS = ("mean", "vote")


class EnsembleStats(NamedTuple):
    """The ensemble's verdict on each loop: ``mean``, ``vote``, ``std`` float32[...]."""

    mean: jax.Array
    vote: jax.Array
    std: jax.Array


def stack_critics(variables: Sequence[dict]) -> dict:
    """K critics' variables -> one pytree whose leaves are ``[K, ...]``."""
    if not variables:
        raise DdjaxError("an ensemble needs at least one critic")
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *variables)


def critic_probs(stacked: dict, features: jax.Array,
                 config: CriticConfig = CriticConfig(), groups: int = 1) -> jax.Array:
    """Every critic's P(like) of every clip.

    The critics run one after another (``lax.map``), each on the whole batch, so each
    keeps the single critic's cache-sized working set (a vmap over 64 critics multiplies
    it by 64 and runs ~1.6x slower on CPU). ``groups`` splits them into that many groups
    that run side by side (vmapped), which a mesh can shard over devices.

    Args:
      stacked: from ``stack_critics``, leaves ``[K, ...]``; ``groups`` must divide K.
      features: float32[..., n_mfcc, n_frames], shared by all critics.
      config: the critics' architecture.
      groups: groups of critics run side by side.

    Returns:
      float32[..., K].
    """
    k = jax.tree_util.tree_leaves(stacked)[0].shape[0]
    grouped = jax.tree_util.tree_map(
        lambda x: x.reshape((groups, k // groups) + x.shape[1:]), stacked)
    one = lambda variables: in_chunks(lambda f: prob_like(variables, f, config), features,
                                      features.ndim - 2)
    probs = jax.vmap(lambda group: jax.lax.map(one, group))(grouped)
    return jnp.moveaxis(probs.reshape((k,) + probs.shape[2:]), 0, -1)


def ensemble_stats(probs: jax.Array) -> EnsembleStats:
    """``probs: float32[..., K]`` -> mean, vote share (p > 0.5) and population std, [...]."""
    mean = jnp.mean(probs, axis=-1)
    vote = jnp.mean((probs > 0.5).astype(probs.dtype), axis=-1)
    std = jnp.sqrt(jnp.mean(jnp.square(probs - mean[..., None]), axis=-1))
    return EnsembleStats(mean, vote, std)


def reduce(probs: jax.Array, reduction: str) -> jax.Array:
    """``probs: float32[..., K]`` -> the sampler's target, float32[...]: "mean" or "vote"."""
    stats = ensemble_stats(probs)
    if reduction == "mean":
        return stats.mean
    if reduction == "vote":
        return stats.vote
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def ensemble_score(params: ScoreParams, loops: Loop, pipeline: Pipeline,
                   reduction: str = "mean") -> jax.Array:
    """The ensemble as a sampler target: float32[...] for loops batched over [...].

    Args:
      params: ``pipeline.ScoreParams`` whose ``critic`` holds stacked variables.
      loops: ``grid: bool[..., tracks, steps]``, ``samples: int32[..., tracks]``.
      pipeline: ``pipeline.Pipeline``, the settings of every stage.
      reduction: "mean" (the ensemble's P(like)) or "vote" (share of critics above 0.5).
    """
    features = critic_features(params.tables, loops, pipeline)
    return reduce(critic_probs(params.critic, features, pipeline.critic), reduction)

