"""Sampler stage, the drivers: the loops that run a kernel's step, all on device.

A driver takes ``step(keys, state) -> (state, info)`` (any kernel's step with its score
parameters bound) and runs it inside one jit with no host round-trip per iteration:

- ``run_fixed``: ``n_iters`` steps of every chain, one ``lax.scan``.
- ``run_until``: the paper's phase II, one ``lax.while_loop``: every chain runs at least
  ``min_iters`` steps, then stops as soon as its score reaches ``threshold``, and at most
  ``n_iters`` (the paper: at least 100, then until f >= 0.95, at most 500).

Each chain draws its random numbers from its own key (``chain_keys``), folded with the
iteration number, so a chain's path does not depend on which other chains run beside it:
the chains can be split across devices and give the same loops.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from ddjax.sampling import proposal
from ddjax.sampling.base import ChainState, StepInfo

BoundStepFn = Callable[[jax.Array, ChainState], tuple[ChainState, StepInfo]]
ReachedFn = Callable[[ChainState], jax.Array]


class RunInfo(NamedTuple):
    """A run's diagnostics, per chain.

    Attributes:
      acceptance_rate: float32[chains], accepted over iterations run.
      n_iters: int32[chains], iterations run (fewer than asked in ``run_until``).
      reached: bool[chains], score >= threshold (``run_until``), else ``reached_fn``'s
        verdict (all True without one).
    """

    acceptance_rate: jax.Array
    n_iters: jax.Array
    reached: jax.Array


def chain_keys(key: jax.Array, n_chains: int, first: int = 0) -> jax.Array:
    """The keys of chains ``first`` to ``first + n_chains - 1`` of a run seeded by ``key``:
    chain i's key is ``fold_in(key, i)``, whatever the number of chains."""
    return jax.vmap(jax.random.fold_in, (None, 0))(key, first + jnp.arange(n_chains))


def _keys_at(keys: jax.Array, it) -> jax.Array:
    """Every chain's keys for iteration ``it``."""
    return jax.vmap(jax.random.fold_in, (0, None))(keys, it)


def run_fixed(keys: jax.Array, state: ChainState, step: BoundStepFn, *, n_iters: int,
              reached_fn: ReachedFn | None = None) -> tuple[ChainState, RunInfo]:
    """Every chain for ``n_iters`` steps.

    Args:
      keys: one PRNG key per chain (``chain_keys``).
      state: from the kernel's ``init``, batched over chains.
      step: the kernel's step, score parameters bound.
      n_iters: steps per chain.
      reached_fn: ``state -> bool[chains]`` for ``RunInfo.reached``; None: all True.
    """
    n_chains = state.score.shape[0]

    def body(carry, it):
        new_state, info = step(_keys_at(keys, it), carry)
        return new_state, info.is_accepted

    state, accepted = jax.lax.scan(body, state, jnp.arange(n_iters))
    n_run = jnp.full((n_chains,), n_iters, jnp.int32)
    rate = jnp.sum(accepted, axis=0) / jnp.maximum(n_iters, 1)
    reached = jnp.ones((n_chains,), bool) if reached_fn is None else reached_fn(state)
    return state, RunInfo(rate.astype(jnp.float32), n_run, reached)


def run_until(keys: jax.Array, state: ChainState, step: BoundStepFn, *, n_iters: int,
              threshold: float, min_iters: int = 0) -> tuple[ChainState, RunInfo]:
    """Every chain until its score >= ``threshold`` once it has run ``min_iters`` steps,
    or for ``n_iters`` steps; arguments as ``run_fixed``'s. A stopped chain's state is
    frozen while the others run on."""
    n_chains = state.score.shape[0]

    def cond(carry):
        it, _, _, _, done = carry
        return (it < n_iters) & ~jnp.all(done)

    def body(carry):
        it, state, n_accepted, n_run, done = carry
        new_state, info = step(_keys_at(keys, it), state)
        state = proposal.select(~done, new_state, state)
        n_accepted = n_accepted + (info.is_accepted & ~done)
        n_run = n_run + ~done
        reached = (it + 1 >= min_iters) & (state.score >= threshold)
        return it + 1, state, n_accepted, n_run, done | reached

    zeros = jnp.zeros((n_chains,), jnp.int32)
    carry = (jnp.int32(0), state, zeros, zeros, (min_iters == 0) & (state.score >= threshold))
    _, state, n_accepted, n_run, _ = jax.lax.while_loop(cond, body, carry)
    rate = n_accepted / jnp.maximum(n_run, 1)
    return state, RunInfo(rate.astype(jnp.float32), n_run, state.score >= threshold)
