"""Sampler stage, accept/reject: written once, in log space, for every kernel.

A kernel draws a candidate per chain (``propose_and_score``), decides which chains take
it (``is_accepted``, or its own rule, as ``climb``'s) and keeps new or old per chain
(``select``). The order of the random draws is part of the contract: the same keys give
the same loops, whatever kernel module the step lives in.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ddjax.sampling.base import ChainState, Loops, ProposeFn, ScoreFn, SupportFn

# Floors a score before its log and is the uniform draw's minval, so neither log is -inf.
TINY = 1e-30


def propose_and_score(keys: jax.Array, state: ChainState, score_params, score_fn: ScoreFn,
                      propose_fn: ProposeFn) -> tuple[Loops, jax.Array, jax.Array]:
    """Every chain's candidate, its score float32[chains], and one key per chain for the
    draws that decide whether to take it."""
    pairs = jax.vmap(jax.random.split)(keys)
    propose_keys, accept_keys = pairs[:, 0], pairs[:, 1]
    candidate = jax.vmap(propose_fn)(propose_keys, state.loop)
    return candidate, score_fn(score_params, candidate), accept_keys


def log_uniform(keys: jax.Array) -> jax.Array:
    """log u, u ~ U[TINY, 1) per chain: float32[chains]."""
    return jnp.log(jax.vmap(lambda k: jax.random.uniform(k, minval=TINY))(keys))


def log_ratio_of_scores(candidate_score: jax.Array, score: jax.Array,
                        temperature: float) -> jax.Array:
    """``(log f(x') - log f(x)) / s``, scores floored at TINY: float32[chains]."""
    return (jnp.log(jnp.maximum(candidate_score, TINY))
            - jnp.log(jnp.maximum(score, TINY))) / temperature


def is_accepted(log_ratio: jax.Array, log_u: jax.Array) -> jax.Array:
    """Metropolis-Hastings: accept with probability min(1, exp(log_ratio)); bool[chains]."""
    return log_u < log_ratio


def in_support(accept: jax.Array, candidate: Loops, support_fn: SupportFn | None) -> jax.Array:
    """``accept`` where the candidate is in the target's support (P(x') = 0 is never
    entered, whatever its score)."""
    return accept if support_fn is None else accept & support_fn(candidate)


def select(accept: jax.Array, new, old):
    """Per chain, ``new`` where ``accept`` (bool[chains]) else ``old``; any pytree whose
    leaves have a leading chain axis."""
    pick = lambda n, o: jnp.where(accept.reshape(accept.shape + (1,) * (n.ndim - 1)), n, o)
    return jax.tree_util.tree_map(pick, new, old)
