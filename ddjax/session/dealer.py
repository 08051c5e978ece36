"""Which loop a session shows next (``Dealer``): a draw of the critic from the learner's
belief, chains toward it (the session's own, or batched with other sessions' on a
``hub.Hub``), one of them shown, rendered; and a loop shown before, rendered again.

It holds the session's engine and its sampling settings; ``ddjax.session.session`` calls
it from its worker and numbers the loops.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from ddjax.core.loops import Loop as LoopArrays
from ddjax.core.pipeline import Pipeline
from ddjax.errors import DdjaxError
from ddjax.io.kit import Kit
from ddjax.io.patterns import load_loop_prior
from ddjax.sampling.engine import Engine
from ddjax.sampling.sampler import ChainState, RunInfo, SamplerConfig, chain_keys
from ddjax.session.belief import Belief, rated_loop
from ddjax.session.config import SessionConfig
from ddjax.session.hub import Hub
from ddjax.session.journal import Rating
from ddjax.session.session_loop import SessionLoop

__all__ = ["Dealer"]


def _one(tree):
    return jax.tree_util.tree_map(lambda x: x[None], tree)


class Dealer:
    """A session's engine and how it picks loops.

    Args:
      kit: the loaded kit.
      pipeline: the session's pipeline (its critic the learner's).
      config: the session's settings (``n_chains``, ``sampler``, ``query``, ``style``,
        ``loudness``).
      key: the session's key; candidate i samples with ``fold_in(fold_in(key, 2), i)``.
      hub: shares the engine and batches the chains with other sessions; None: alone.
    """

    def __init__(self, kit: Kit, pipeline: Pipeline, config: SessionConfig, key: jax.Array,
                 hub: Hub | None = None):
        self.kit, self.pipeline, self.config, self.hub = kit, pipeline, config, hub
        self._key = jax.random.fold_in(key, 2)
        self.engine = self._engine(config.style)

    def _engine(self, style: str | None) -> Engine:
        if self.hub is None:
            return Engine(self.kit, None, self.pipeline, style=style,
                          loudness=self.config.loudness)
        return self.hub.engine(self.kit, self.pipeline, style, self.config.loudness)

    def set_style(self, style: str | None) -> None:
        """Draws from ``style`` of the learned prior from here on (a DdjaxError where it
        has none)."""
        if self.hub is None:
            self.engine.set_style(style)
        else:  # the hub's engines are shared: take the style's
            load_loop_prior().for_style(style)  # the DdjaxError of an unknown style
            self.engine = self._engine(style)

    def candidate(self, index: int, belief: Belief, new_id: Callable[[], int],
                  start: LoopArrays | None = None) -> SessionLoop:
        """Candidate ``index``: chains from the prior (or near ``start``) toward a draw of
        the critic (``query="thompson"``) or the critic itself, one of them picked,
        scored by the critic, rendered, and numbered by ``new_id()``."""
        key = jax.random.fold_in(self._key, index)
        n_chains, config = self.config.n_chains, self.config.sampler
        version = belief.n_trained
        thompson = self.config.query == "thompson"
        critic = belief.sample_critic(jax.random.fold_in(key, 2)) if thompson \
            else belief.critic()
        if self.hub is None or start is not None:
            state, _ = self.engine.sample(key, n_chains, config, critic=critic, start=start)
        else:  # the same chains, batched with other sessions'
            state, _ = self.hub.sample(self.engine, chain_keys(key, n_chains), critic, config)
        chain = int(jax.random.randint(jax.random.fold_in(key, 1), (), 0, n_chains))
        loop = jax.tree_util.tree_map(lambda x: x[chain:chain + 1], state.loop)
        score = float(state.score[chain])
        if thompson:  # the chain's score is the draw's: show the mean's
            score = float(self.engine.score(loop, critic=belief.critic())[0])
        audio = self.engine.listen(loop)[0]
        arrays = LoopArrays(np.asarray(loop.grid[0]), np.asarray(loop.samples[0]),
                            np.asarray(loop.velocity[0]))
        return SessionLoop.of(new_id(), arrays, audio, kit_names=self.kit.names, score=score,
                              critic_version=version, render=self.pipeline.render)

    def again(self, dealt: dict) -> SessionLoop | None:
        """The loop shown when the session stopped (``journal.read_dealt``), rendered
        again; None where it does not fit this session's loops any more."""
        try:
            arrays = self.engine.check_start(
                LoopArrays(dealt["grid"], dealt["samples"], dealt["velocity"]))
        except DdjaxError:
            return None
        return SessionLoop.of(
            dealt["id"], jax.tree_util.tree_map(np.asarray, arrays),
            self.engine.listen(_one(arrays))[0], kit_names=self.kit.names,
            score=dealt["score"], critic_version=dealt["critic_version"],
            render=self.pipeline.render)

    def replay(self, rating: Rating) -> SessionLoop:
        """A rated loop as it was shown: its audio rendered again, its score as logged."""
        return SessionLoop.of(
            rating.loop_id, LoopArrays(rating.grid, rating.samples, rating.velocity),
            self.engine.listen(_one(rated_loop(rating)))[0], kit_names=self.kit.names,
            score=float("nan") if rating.score is None else rating.score,
            critic_version=rating.critic_version, render=self.pipeline.render)

    def sample_pool(self, key: jax.Array, n_chains: int, config: SamplerConfig,
                    critic: dict, progress: Callable[[int], None] | None = None
                    ) -> tuple[ChainState, RunInfo]:
        """``Engine.sample`` from the prior, for a long run (a study's phase II pool): with
        a hub, in chunks, each in its turn among the sessions' (``Hub.sample_pool``);
        ``progress`` hears the chains done."""
        if self.hub is None:
            out = self.engine.sample(key, n_chains, config, critic=critic)
            if progress is not None:
                progress(n_chains)
            return out
        return self.hub.sample_pool(self.engine, key, n_chains, critic, config, progress)
