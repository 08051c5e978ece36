"""Sampler stage, the greedy climbing kernel: toward a target score.

A candidate from the proposal is accepted when its score is at least as close to
``goal`` as the current one (1.0: the best loops, 0.0: the worst) and it is in the
target's support. The prior plays no part: climbing looks for extremes, not for likely
loops.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ddjax.sampling import proposal
from ddjax.sampling.base import ChainState, Kernel, Loops, ProposeFn, StepInfo, Target
from ddjax.sampling.base import init as _init


def init(loops: Loops, score_params, *, target: Target) -> ChainState:
    """Scores the starting loops of a batch of chains."""
    return _init(loops, score_params, target.score_fn)


def step(keys: jax.Array, state: ChainState, score_params, *, target: Target,
         propose_fn: ProposeFn, goal: float) -> tuple[ChainState, StepInfo]:
    """One greedy step of every chain toward ``goal``; ``keys``: one key per chain."""
    # The accept keys go unused, but the split is MH's, so a chain's candidates are the
    # same whichever kernel moves it.
    candidate, candidate_score, _ = proposal.propose_and_score(
        keys, state, score_params, target.score_fn, propose_fn)
    closer = jnp.abs(candidate_score - goal) <= jnp.abs(state.score - goal)
    accept = proposal.in_support(closer, candidate, target.support_fn)
    new = proposal.select(accept, ChainState(candidate, candidate_score), state)
    return new, StepInfo(accept, candidate_score)


def reached(state: ChainState, goal: float) -> jax.Array:
    """bool[chains]: at least halfway toward ``goal`` (f >= 0.5 for goal 1, f <= 0.5 for
    goal 0)."""
    return state.score >= 0.5 if goal >= 0.5 else state.score <= 0.5


def kernel(target: Target, propose_fn: ProposeFn, *, goal: float = 1.0) -> Kernel:
    """The kernel with its target, proposal and goal in [0, 1] bound."""
    return Kernel(functools.partial(init, target=target),
                  functools.partial(step, target=target, propose_fn=propose_fn, goal=goal))
