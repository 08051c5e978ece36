"""The pipeline: every stage's settings, and the one chain loops -> audio -> features ->
score that the sampler, ensembles and learners all read (``critic_features``,
``critic_score``). Pure: nothing here touches a file or the host.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax

from ddjax.core.batching import in_chunks
from ddjax.core.critic import CriticConfig, prob_like
from ddjax.core.features import FeatureConfig, mfcc
from ddjax.core.groove import STRAIGHT, Humanize
from ddjax.core.loops import Loop, LoopConfig
from ddjax.core.patterns import PatternPrior
from ddjax.core.render import RenderConfig, critic_view


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """Every stage's settings, in data-flow order."""

    loops: LoopConfig = LoopConfig()
    render: RenderConfig = RenderConfig()
    features: FeatureConfig = FeatureConfig()
    critic: CriticConfig = CriticConfig()

    @classmethod
    def sized(cls, bpm: float | None = None, n_tracks: int | None = None,
              swing: float = STRAIGHT, humanize: Humanize = Humanize(), **loops) -> "Pipeline":
        """The default pipeline at ``bpm`` (120 when None), ``swing`` (percent, MPC scale) and
        ``humanize``, with ``n_tracks`` (4 when None) and other ``LoopConfig`` settings, its
        critic fitted to that tempo's bar."""
        render = RenderConfig(bpm=120.0 if bpm is None else bpm, swing=swing,
                              humanize=humanize)
        features = FeatureConfig()
        return cls(loops=LoopConfig(n_tracks=4 if n_tracks is None else n_tracks, **loops),
                   render=render, features=features,
                   critic=CriticConfig(n_frames=features.n_frames(render.bar_samples)))


class LoopSpace(NamedTuple):
    """What the loop prior and proposal read about the kit: ``allowed``: bool[tracks, kit]
    (``loops.allowed_samples``); ``kinds``: int32[kit] (``kinds.kind_ids``); ``patterns``:
    the learned prior's arrays for the session's style (``core.patterns``), or None under
    another prior."""

    allowed: jax.Array
    kinds: jax.Array
    patterns: PatternPrior | None = None


class ScoreParams(NamedTuple):
    """The arrays the score function reads: the kit's render tables and the critic."""

    tables: jax.Array
    critic: dict


def critic_features(tables: jax.Array, loops: Loop, pipeline: Pipeline) -> jax.Array:
    """What the critic hears of each loop: the MFCC of its critic view (``render.critic_view``),
    float32[..., n_mfcc, n_frames] for loops batched over [...]."""
    return mfcc(critic_view(tables, loops, pipeline.render), pipeline.features)


def critic_score(params: ScoreParams, loops: Loop, pipeline: Pipeline) -> jax.Array:
    """P(like) of each loop: float32[...] for loops batched over [...]."""
    def chain(batch: Loop) -> jax.Array:
        return prob_like(params.critic, critic_features(params.tables, batch, pipeline),
                         pipeline.critic)

    # The critic's activations are memory bound when batched whole: keep them in cache.
    return in_chunks(chain, loops, loops.grid.ndim - 2)
