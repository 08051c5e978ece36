"""The assembled pipeline: kit -> loops -> audio -> features -> critic -> sampler.

``critic_score`` chains the pure stages into one score function; ``Engine`` binds a
loaded kit and a critic to it for the thin Python shell (the CLI, sessions, benchmarks).
The jit-compiled sampler is module-level, compiled once per shape and setting and shared
by every Engine.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ddjax import loops as loops_lib
from ddjax import sampler
from ddjax.batching import in_chunks
from ddjax.ensemble import REDUCTIONS, ensemble_score
from ddjax.critic import CriticConfig, prob_like
from ddjax.features import FeatureConfig, mfcc
from ddjax.kit import Kit
from ddjax.loops import Loop, LoopConfig
from ddjax.render import RenderConfig, critic_view, listening_render, render_tables


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """Every stage's settings, in data-flow order."""

    loops: LoopConfig = LoopConfig()
    render: RenderConfig = RenderConfig()
    features: FeatureConfig = FeatureConfig()
    critic: CriticConfig = CriticConfig()


class ScoreParams(NamedTuple):
    """The arrays the score function reads: the kit's render tables and the critic."""

    tables: jax.Array
    critic: dict


def critic_score(params: ScoreParams, loops: Loop, pipeline: Pipeline) -> jax.Array:
    """P(like) of each loop: float32[...] for loops batched over [...]."""
    def chain(batch: Loop) -> jax.Array:
        audio = critic_view(params.tables, batch, pipeline.render)
        return prob_like(params.critic, mfcc(audio, pipeline.features), pipeline.critic)

    # The critic's activations are memory bound when batched whole: keep them in cache.
    return in_chunks(chain, loops, loops.grid.ndim - 2)


def _score_fn(pipeline: Pipeline, reduction: str | None):
    if reduction is None:
        return functools.partial(critic_score, pipeline=pipeline)
    return functools.partial(ensemble_score, pipeline=pipeline, reduction=reduction)


# Module-level and keyed on hashable settings, so every Engine (one per Session, say)
# with the same pipeline and shapes shares one compiled program.
@functools.partial(jax.jit, static_argnames=("n_chains", "pipeline", "config", "reduction"))
def _sample(key, params, allowed, *, n_chains, pipeline, config, reduction):
    init_key, run_key = jax.random.split(key)
    starts = jax.vmap(lambda k: loops_lib.random_loop(k, allowed, pipeline.loops))(
        jax.random.split(init_key, n_chains))
    score_fn = _score_fn(pipeline, reduction)
    propose_fn = functools.partial(loops_lib.propose, allowed=allowed, config=pipeline.loops)
    state = sampler.init(starts, params, score_fn)
    return sampler.run(run_key, state, params, score_fn=score_fn, propose_fn=propose_fn,
                       config=config)


@functools.partial(jax.jit, static_argnames=("pipeline", "reduction"))
def _score(params, loops, *, pipeline, reduction):
    return _score_fn(pipeline, reduction)(params, loops)


_listen = jax.jit(listening_render, static_argnames=("config",))


class Engine:
    """A kit and a critic, ready to sample and render.

    Args:
      kit: from ``load_kit`` (loaded with ``pipeline.render.bar_samples``).
      critic: critic variables (``init_critic`` or ``load_critic``), or with
        ``reduction``, K critics' variables stacked on a leading axis
        (``ensemble.stack_critics``).
      pipeline: the settings of every stage.
      reduction: None for one critic; "mean" or "vote" to target an ensemble's mean
        P(like) or its share of critics voting like (see ``ddjax.ensemble``).
    """

    def __init__(self, kit: Kit, critic: dict, pipeline: Pipeline = Pipeline(),
                 reduction: str | None = None):
        if reduction is not None and reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be None or one of {REDUCTIONS}")
        self.kit = kit
        self.pipeline = pipeline
        self.reduction = reduction
        self.allowed = jnp.asarray(loops_lib.allowed_samples(pipeline.loops, kit.is_kick))
        self.params = ScoreParams(render_tables(kit.audio, pipeline.render), critic)

    def _params(self, critic: dict | None) -> ScoreParams:
        return self.params if critic is None else self.params._replace(critic=critic)

    def sample(self, key: jax.Array, n_chains: int, config: sampler.SamplerConfig,
               critic: dict | None = None) -> tuple[sampler.ChainState, sampler.RunInfo]:
        """Starts ``n_chains`` chains from the prior and runs them; all on device.

        ``critic`` replaces the engine's critic variables for this call (same shapes, so no
        recompilation): a critic in training, say.
        """
        return _sample(key, self._params(critic), self.allowed, n_chains=n_chains,
                       pipeline=self.pipeline, config=config, reduction=self.reduction)

    def score(self, loops: Loop, critic: dict | None = None) -> jax.Array:
        """P(like) of a batch of loops (the ensemble's mean or vote with ``reduction``)."""
        return _score(self._params(critic), loops, pipeline=self.pipeline,
                      reduction=self.reduction)

    def lower_sample(self, key: jax.Array, n_chains: int, config: sampler.SamplerConfig):
        """``sample`` lowered for these settings (for compile-time measurements)."""
        return _sample.lower(key, self.params, self.allowed, n_chains=n_chains,
                             pipeline=self.pipeline, config=config, reduction=self.reduction)

    def lower_score(self, loops: Loop):
        """The score function lowered for ``loops`` (for XLA's cost analysis)."""
        return _score.lower(self.params, loops, pipeline=self.pipeline,
                            reduction=self.reduction)

    def listen(self, loops: Loop) -> np.ndarray:
        """The listening render of a batch of loops, on the host: float32[batch, samples]."""
        return np.asarray(_listen(self.kit.audio, loops, config=self.pipeline.render))
