"""The assembled pipeline: kit -> loops -> audio -> features -> critic -> sampler.

``critic_score`` chains the pure stages into one score function; ``Engine`` binds a
loaded kit and a critic to it and holds the jit-compiled sampler, built once per shape
and setting, for the thin Python shell (the CLI, sessions, benchmarks) to call.
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
    audio = critic_view(params.tables, loops, pipeline.render)
    return prob_like(params.critic, mfcc(audio, pipeline.features), pipeline.critic)


def _sample(key, params, allowed, *, n_chains, pipeline, config):
    init_key, run_key = jax.random.split(key)
    starts = jax.vmap(lambda k: loops_lib.random_loop(k, allowed, pipeline.loops))(
        jax.random.split(init_key, n_chains))
    score_fn = functools.partial(critic_score, pipeline=pipeline)
    propose_fn = functools.partial(loops_lib.propose, allowed=allowed, config=pipeline.loops)
    state = sampler.init(starts, params, score_fn)
    return sampler.run(run_key, state, params, score_fn=score_fn, propose_fn=propose_fn,
                       config=config)


class Engine:
    """A kit and a critic, ready to sample and render.

    Args:
      kit: from ``load_kit`` (loaded with ``pipeline.render.bar_samples``).
      critic: critic variables (``init_critic`` or ``load_critic``).
      pipeline: the settings of every stage.
    """

    def __init__(self, kit: Kit, critic: dict, pipeline: Pipeline = Pipeline()):
        self.kit = kit
        self.pipeline = pipeline
        self.allowed = jnp.asarray(loops_lib.allowed_samples(pipeline.loops, kit.is_kick))
        self.params = ScoreParams(render_tables(kit.audio, pipeline.render), critic)
        self._sample = jax.jit(functools.partial(_sample, pipeline=pipeline),
                               static_argnames=("n_chains", "config"))
        self._score = jax.jit(functools.partial(critic_score, pipeline=pipeline))
        self._listen = jax.jit(functools.partial(listening_render, config=pipeline.render))

    def sample(self, key: jax.Array, n_chains: int, config: sampler.SamplerConfig
               ) -> tuple[sampler.ChainState, sampler.RunInfo]:
        """Starts ``n_chains`` chains from the prior and runs them; all on device."""
        return self._sample(key, self.params, self.allowed, n_chains=n_chains, config=config)

    def score(self, loops: Loop) -> jax.Array:
        """P(like) of a batch of loops."""
        return self._score(self.params, loops)

    def listen(self, loops: Loop) -> np.ndarray:
        """The listening render of a batch of loops, on the host: float32[batch, samples]."""
        return np.asarray(self._listen(self.kit.audio, loops))
