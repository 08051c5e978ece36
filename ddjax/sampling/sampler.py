"""Sampler stage: many Markov chains over loops, all on device.

Shaped like BlackJAX: the state and diagnostics are NamedTuples, a step is a pure
``step(keys, state, score_params) -> (state, info)`` on a batch of chains, and a whole run
of ``n_iters`` iterations is one ``lax.scan`` (or ``lax.while_loop`` for "until") inside
one jit, with no host round-trip per iteration.

Each chain draws its random numbers from its own key (``chain_keys``), folded with the
iteration number, so a chain's path does not depend on which other chains run beside it:
the chains can be split across devices and give the same loops.

A score function ``score_fn(score_params, loops) -> float32[chains]`` in (0, 1] is the
target: the critic, an ensemble, or any function of loops. Modes:

- ``"mh"``: Metropolis-Hastings at temperature s. A candidate from the symmetric proposal
  is accepted with probability ``min(1, (P(x') / P(x)) (f(x') / f(x)) ** (1 / s))``, so
  chains draw loops in proportion to ``P(x) f(x) ** (1 / s)``, where P is the loop prior
  (``log_prior_fn``; uniform when None): the paper's P(x | like) at s = 1.
- ``"until"``: the same chains, each stopped as soon as ``f >= threshold`` once it has run
  ``min_iters`` iterations, or after ``n_iters`` (the paper's phase II: at least 100, then
  until f >= 0.95, at most 500); ``reached`` says which got there.
- ``"climb"``: greedy hill-climbing toward ``target``: a candidate is accepted when its
  score is at least as close to the target (1.0: the best loops, 0.0: the worst). The
  prior plays no part.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from ddjax.errors import DdjaxError
from ddjax.core.loops import Loop, is_valid

ScoreFn = Callable[[object, Loop], jax.Array]
ProposeFn = Callable[[jax.Array, Loop], Loop]
LogPriorFn = Callable[[Loop], jax.Array]
MODES = ("mh", "until", "climb")
_TINY = 1e-30


class ChainState(NamedTuple):
    """Chains' current loops and scores: ``loop`` [chains, ...], ``score`` float32[chains]."""

    loop: Loop
    score: jax.Array


class StepInfo(NamedTuple):
    """One step's diagnostics: ``is_accepted`` bool[chains], ``proposal_score`` float32[chains]."""

    is_accepted: jax.Array
    proposal_score: jax.Array


class RunInfo(NamedTuple):
    """A run's diagnostics, per chain.

    Attributes:
      acceptance_rate: float32[chains], accepted over iterations run.
      n_iters: int32[chains], iterations run (fewer than asked in "until" mode).
      reached: bool[chains], score >= threshold ("until"), or >= 0.5 toward the target
        ("climb": f >= 0.5 for target 1, f <= 0.5 for target 0), else True ("mh").
    """

    acceptance_rate: jax.Array
    n_iters: jax.Array
    reached: jax.Array


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """How chains move.

    Attributes:
      mode: "mh", "until" or "climb" (see the module docstring).
      n_iters: iterations per chain (the maximum, in "until" mode).
      temperature: s > 0 in the MH acceptance ratio; s -> 0 is pure optimisation.
      threshold: score that ends a chain in "until" mode.
      min_iters: "until" mode: iterations every chain runs before the threshold counts.
      target: score that "climb" moves toward, in [0, 1].
    """

    mode: str = "mh"
    n_iters: int = 100
    temperature: float = 1.0
    threshold: float = 0.95
    target: float = 1.0
    min_iters: int = 0

    def __post_init__(self):
        if self.mode not in MODES:
            raise DdjaxError(f"sampler mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.n_iters < 0 or not 0 <= self.min_iters <= self.n_iters:
            raise DdjaxError("the numbers of iterations must be 0 <= min_iters <= n_iters")
        if not self.temperature > 0:
            raise DdjaxError("the temperature must be > 0")
        if not (0.0 <= self.threshold <= 1.0 and 0.0 <= self.target <= 1.0):
            raise DdjaxError("threshold and target are scores, in [0, 1]")


def init(loops: Loop, score_params, score_fn: ScoreFn) -> ChainState:
    """Scores the starting loops of a batch of chains."""
    return ChainState(loop=loops, score=score_fn(score_params, loops))


def chain_keys(key: jax.Array, n_chains: int, first: int = 0) -> jax.Array:
    """The keys of chains ``first`` to ``first + n_chains - 1`` of a run seeded by ``key``:
    chain i's key is ``fold_in(key, i)``, whatever the number of chains."""
    return jax.vmap(jax.random.fold_in, (None, 0))(key, first + jnp.arange(n_chains))


def _candidates(keys, state, score_params, score_fn, propose_fn):
    pairs = jax.vmap(jax.random.split)(keys)
    propose_keys, accept_keys = pairs[:, 0], pairs[:, 1]
    candidate = jax.vmap(propose_fn)(propose_keys, state.loop)
    candidate_score = score_fn(score_params, candidate)
    log_u = jnp.log(jax.vmap(lambda k: jax.random.uniform(k, minval=_TINY))(accept_keys))
    return candidate, candidate_score, log_u


def _select(accept, state, candidate, candidate_score):
    pick = lambda new, old: jnp.where(
        accept.reshape(accept.shape + (1,) * (new.ndim - 1)), new, old)
    loop = jax.tree_util.tree_map(pick, candidate, state.loop)
    return ChainState(loop, jnp.where(accept, candidate_score, state.score))


def mh_step(keys, state: ChainState, score_params, *, score_fn: ScoreFn,
            propose_fn: ProposeFn, temperature: float,
            log_prior_fn: LogPriorFn | None = None) -> tuple[ChainState, StepInfo]:
    """One Metropolis-Hastings step of every chain; ``keys``: one key per chain."""
    candidate, candidate_score, log_u = _candidates(keys, state, score_params, score_fn,
                                                    propose_fn)
    log_ratio = (jnp.log(jnp.maximum(candidate_score, _TINY))
                 - jnp.log(jnp.maximum(state.score, _TINY))) / temperature
    if log_prior_fn is not None:
        log_ratio = log_ratio + log_prior_fn(candidate) - log_prior_fn(state.loop)
    accept = (log_u < log_ratio) & is_valid(candidate)
    return _select(accept, state, candidate, candidate_score), StepInfo(accept, candidate_score)


def climb_step(keys, state: ChainState, score_params, *, score_fn: ScoreFn,
               propose_fn: ProposeFn, target: float) -> tuple[ChainState, StepInfo]:
    """One greedy step of every chain toward ``target``; ``keys``: one key per chain."""
    candidate, candidate_score, _ = _candidates(keys, state, score_params, score_fn,
                                                propose_fn)
    closer = jnp.abs(candidate_score - target) <= jnp.abs(state.score - target)
    accept = closer & is_valid(candidate)
    return _select(accept, state, candidate, candidate_score), StepInfo(accept, candidate_score)


def run(keys: jax.Array, state: ChainState, score_params, *, score_fn: ScoreFn,
        propose_fn: ProposeFn, config: SamplerConfig,
        log_prior_fn: LogPriorFn | None = None) -> tuple[ChainState, RunInfo]:
    """Runs every chain for ``config.n_iters`` iterations (or until the threshold).

    Args:
      keys: one PRNG key per chain (``chain_keys``); the same keys and inputs give the
        same loops on the same device.
      state: from ``init``, batched over chains.
      score_params: pytree passed to ``score_fn`` (kit tables, critic variables, ...).
      score_fn: ``(score_params, loops[chains]) -> float32[chains]`` in (0, 1].
      propose_fn: ``(key, loop) -> loop`` for one chain; symmetric.
      config: the mode and its settings.
      log_prior_fn: ``loops[chains] -> float32[chains]``, log P(x) up to a constant, for
        "mh" and "until"; None for the uniform prior.

    Returns:
      The final states and per-chain diagnostics. Pure: jit it, settings bound.
    """
    n_chains = state.score.shape[0]
    if config.mode == "climb":
        step = lambda k, s: climb_step(k, s, score_params, score_fn=score_fn,
                                       propose_fn=propose_fn, target=config.target)
    else:
        step = lambda k, s: mh_step(k, s, score_params, score_fn=score_fn,
                                    propose_fn=propose_fn, temperature=config.temperature,
                                    log_prior_fn=log_prior_fn)
    at = lambda it: jax.vmap(jax.random.fold_in, (0, None))(keys, it)  # every chain's keys
    if config.mode != "until":
        def body(carry, it):
            new_state, info = step(at(it), carry)
            return new_state, info.is_accepted
        state, accepted = jax.lax.scan(body, state, jnp.arange(config.n_iters))
        n_iters = jnp.full((n_chains,), config.n_iters, jnp.int32)
        rate = jnp.sum(accepted, axis=0) / jnp.maximum(config.n_iters, 1)
        if config.mode == "climb":
            reached = state.score >= 0.5 if config.target >= 0.5 else state.score <= 0.5
        else:
            reached = jnp.ones((n_chains,), bool)
        return state, RunInfo(rate.astype(jnp.float32), n_iters, reached)

    def cond(carry):
        it, _, _, _, done = carry
        return (it < config.n_iters) & ~jnp.all(done)

    def body(carry):
        it, state, n_accepted, n_iters, done = carry
        new_state, info = step(at(it), state)
        keep = lambda new, old: jnp.where(
            done.reshape(done.shape + (1,) * (new.ndim - 1)), old, new)
        state = jax.tree_util.tree_map(keep, new_state, state)
        n_accepted = n_accepted + (info.is_accepted & ~done)
        n_iters = n_iters + ~done
        reached = (it + 1 >= config.min_iters) & (state.score >= config.threshold)
        return it + 1, state, n_accepted, n_iters, done | reached

    zeros = jnp.zeros((n_chains,), jnp.int32)
    carry = (jnp.int32(0), state, zeros, zeros,
             (config.min_iters == 0) & (state.score >= config.threshold))
    _, state, n_accepted, n_iters, done = jax.lax.while_loop(cond, body, carry)
    rate = n_accepted / jnp.maximum(n_iters, 1)
    return state, RunInfo(rate.astype(jnp.float32), n_iters, state.score >= config.threshold)
