"""Sampler stage, its public face: many Markov chains over loops, all on device.

Shaped like BlackJAX: a kernel per module (``mh``, ``climb``) with pure ``init`` and
``step`` on a batch of chains, accept/reject written once (``proposal``), and drivers
apart (``drivers``) that run any kernel inside one jit. ``SamplerConfig.mode`` names a
kernel and a driver through ``REGISTRY``:

- ``"mh"``: Metropolis-Hastings at temperature s (``mh``) for ``n_iters`` steps: chains
  draw loops in proportion to ``P(x) f(x) ** (1 / s)``, the paper's P(x | like) at s = 1.
- ``"until"``: the same chains, each stopped as soon as ``f >= threshold`` once it has run
  ``min_iters`` iterations, or after ``n_iters`` (``drivers.run_until``, the paper's
  phase II); ``reached`` says which got there.
- ``"climb"``: greedy hill-climbing toward ``target`` (``climb``) for ``n_iters`` steps;
  ``reached``: at least halfway there.

The score function ``score_fn(score_params, loops) -> float32[chains]`` in (0, 1] is the
target: the critic, an ensemble, or any function of loops. Other layers import this
module only; the names they use are re-exported here.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax

from ddjax.core.loops import is_valid
from ddjax.errors import DdjaxError
from ddjax.sampling import climb, drivers, mh
from ddjax.sampling.base import (
    ChainState,
    Kernel,
    LogPriorFn,
    ProposeFn,
    ScoreFn,
    StepInfo,
    SupportFn,
    Target,
    init,
)
from ddjax.sampling.drivers import RunInfo, chain_keys

__all__ = ["ChainState", "StepInfo", "RunInfo", "Target", "Kernel", "SamplerConfig",
           "MODES", "REGISTRY", "build", "chain_keys", "init", "run"]

Driver = Callable[..., tuple[ChainState, RunInfo]]  # (keys, state, bound step)


class Mode(NamedTuple):
    """How a mode builds its kernel and its driver from a ``SamplerConfig``."""

    kernel: Callable[["SamplerConfig", Target, ProposeFn], Kernel]
    driver: Callable[["SamplerConfig"], Driver]


def _mh(config, target, propose_fn):
    return mh.kernel(target, propose_fn, temperature=config.temperature)


def _climb(config, target, propose_fn):
    return climb.kernel(target, propose_fn, goal=config.target)


def _fixed(config):
    return lambda keys, state, step: drivers.run_fixed(keys, state, step,
                                                       n_iters=config.n_iters)


def _until(config):
    return lambda keys, state, step: drivers.run_until(
        keys, state, step, n_iters=config.n_iters, threshold=config.threshold,
        min_iters=config.min_iters)


def _fixed_toward_target(config):
    return lambda keys, state, step: drivers.run_fixed(
        keys, state, step, n_iters=config.n_iters,
        reached_fn=lambda s: climb.reached(s, config.target))


REGISTRY = {
    "mh": Mode(_mh, _fixed),
    "until": Mode(_mh, _until),
    "climb": Mode(_climb, _fixed_toward_target),
}
MODES = tuple(REGISTRY)


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


def build(config: SamplerConfig, target: Target,
          propose_fn: ProposeFn) -> tuple[Kernel, Driver]:
    """The kernel and the driver of ``config.mode``, settings bound. Run them as
    ``driver(keys, kernel.init(loops, params), lambda k, s: kernel.step(k, s, params))``."""
    mode = REGISTRY[config.mode]
    return mode.kernel(config, target, propose_fn), mode.driver(config)


def run(keys: jax.Array, state: ChainState, score_params, *, score_fn: ScoreFn,
        propose_fn: ProposeFn, config: SamplerConfig,
        log_prior_fn: LogPriorFn | None = None,
        support_fn: SupportFn | None = is_valid) -> tuple[ChainState, RunInfo]:
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
      support_fn: ``loops[chains] -> bool[chains]``, the loops chains may enter; by
        default ddjax loops with no sample on two tracks (``loops.is_valid``), None for all.

    Returns:
      The final states and per-chain diagnostics. Pure: jit it, settings bound.
    """
    kernel, driver = build(config, Target(score_fn, log_prior_fn, support_fn), propose_fn)
    return driver(keys, state, lambda k, s: kernel.step(k, s, score_params))
