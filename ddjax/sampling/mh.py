"""Sampler stage, the Metropolis-Hastings kernel: the paper's sampler.

A random-walk step at temperature s: a candidate from the symmetric proposal is accepted
with probability ``min(1, (P(x') / P(x)) (f(x') / f(x)) ** (1 / s))``, so chains draw
loops in proportion to ``P(x) f(x) ** (1 / s)`` on the target's support, where P is the
loop prior (``Target.log_prior_fn``; uniform when None): the paper's P(x | like) at s = 1.
"""

from __future__ import annotations

import functools

import jax

from ddjax.sampling import proposal
from ddjax.sampling.base import ChainState, Kernel, Loops, ProposeFn, StepInfo, Target
from ddjax.sampling.base import init as _init


def init(loops: Loops, score_params, *, target: Target) -> ChainState:
    """Scores the starting loops of a batch of chains."""
    return _init(loops, score_params, target.score_fn)


def step(keys: jax.Array, state: ChainState, score_params, *, target: Target,
         propose_fn: ProposeFn, temperature: float) -> tuple[ChainState, StepInfo]:
    """One Metropolis-Hastings step of every chain; ``keys``: one key per chain.

    ``propose_fn``: ``(key, loop) -> loop`` for one chain, symmetric, so its densities
    cancel from the ratio.
    """
    candidate, candidate_score, accept_keys = proposal.propose_and_score(
        keys, state, score_params, target.score_fn, propose_fn)
    log_u = proposal.log_uniform(accept_keys)
    log_ratio = proposal.log_ratio_of_scores(candidate_score, state.score, temperature)
    if target.log_prior_fn is not None:
        log_ratio = log_ratio + target.log_prior_fn(candidate) - target.log_prior_fn(state.loop)
    accept = proposal.in_support(proposal.is_accepted(log_ratio, log_u), candidate,
                                 target.support_fn)
    new = proposal.select(accept, ChainState(candidate, candidate_score), state)
    return new, StepInfo(accept, candidate_score)


def kernel(target: Target, propose_fn: ProposeFn, *, temperature: float = 1.0) -> Kernel:
    """The kernel with its target, proposal and temperature s > 0 bound."""
    return Kernel(functools.partial(init, target=target),
                  functools.partial(step, target=target, propose_fn=propose_fn,
                                    temperature=temperature))
