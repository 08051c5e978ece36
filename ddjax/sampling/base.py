"""Sampler stage, the contract: what a kernel promises and what it is given.

Every kernel here (``mh``, ``climb``) is a pair of pure functions on a batch of chains,
``init(loops, score_params) -> ChainState`` and ``step(keys, state, score_params) ->
(ChainState, StepInfo)``, and any driver (``drivers``) runs any of them. The target
reaches a kernel from outside, as functions (``Target``): its score, its prior and its
support, so a kernel knows nothing of what a loop is beyond a pytree with a leading chain
axis.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Protocol

import jax

Loops = object  # a pytree of arrays with a leading chain axis (a batch of ddjax loops)
ScoreFn = Callable[[object, Loops], jax.Array]
ProposeFn = Callable[[jax.Array, Loops], Loops]
LogPriorFn = Callable[[Loops], jax.Array]
SupportFn = Callable[[Loops], jax.Array]


class ChainState(NamedTuple):
    """Chains' current loops and scores; the state every kernel here keeps.

    Attributes:
      loop: the loops, every leaf [chains, ...].
      score: float32[chains], the target's score of ``loop``.
    """

    loop: Loops
    score: jax.Array


class StepInfo(NamedTuple):
    """One step's diagnostics.

    Attributes:
      is_accepted: bool[chains], whether each chain moved to its candidate.
      proposal_score: float32[chains], the candidate's score.
    """

    is_accepted: jax.Array
    proposal_score: jax.Array


class Target(NamedTuple):
    """What the chains are drawn toward, bound by the engine.

    Attributes:
      score_fn: ``(score_params, loops[chains]) -> float32[chains]`` in (0, 1]: the
        critic, an ensemble, or any function of loops.
      log_prior_fn: ``loops[chains] -> float32[chains]``, log P(x) up to a constant; None
        for the uniform prior.
      support_fn: ``loops[chains] -> bool[chains]``, False where P(x) = 0 (a loop that
        uses a sample on two tracks, say); None when every loop is in the support.
    """

    score_fn: ScoreFn
    log_prior_fn: LogPriorFn | None = None
    support_fn: SupportFn | None = None


class InitFn(Protocol):
    def __call__(self, loops: Loops, score_params) -> ChainState: ...


class StepFn(Protocol):
    def __call__(self, keys: jax.Array, state: ChainState,
                 score_params) -> tuple[ChainState, StepInfo]: ...


class Kernel(NamedTuple):
    """A kernel with its settings bound: ``init`` and ``step`` (``keys``: one per chain)."""

    init: InitFn
    step: StepFn


def init(loops: Loops, score_params, score_fn: ScoreFn) -> ChainState:
    """Scores the starting loops of a batch of chains."""
    return ChainState(loop=loops, score=score_fn(score_params, loops))
