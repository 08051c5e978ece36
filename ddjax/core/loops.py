"""Loops stage: the symbolic drum loop, its random prior and its proposal.

A loop is a step-sequencer grid plus one kit sample per track (the paper's generator,
with no learned parameters). Everything here is a pure function of a PRNG key and arrays,
batched over any leading axes with ``jax.vmap``.

The proposal is symmetric, as the paper's Metropolis-Hastings needs: every cell flips
independently with probability ``p_flip``, every track independently re-draws its
sample uniformly from the samples allowed on that track with probability ``p_swap``, and
(musical prior) every cell re-draws its velocity uniformly from ``VELOCITY_LEVELS`` with
probability ``p_velocity``.
A proposal that repeats a sample across tracks is outside the support of the target
(``is_valid``) and the sampler rejects it, which keeps detailed balance.

The loop prior P(x) (``log_prior``), in the paper's P(x | like) ∝ P(like | x) P(x):

- ``"learned"`` (``ddjax generate``'s default; sessions' with ``--style``): learned
  from real drum patterns, by style (``ddjax.core.patterns``), its arrays in
  ``LoopSpace.patterns``.
  Chains start from its exact draws; every track plays (``support``); the roles' weights
  count roles, not samples, so a kit with 88 kicks is not 88 times likelier to put one
  on a track (``patterns.log_role_count``).
- ``"uniform"``: the paper's generator, every grid and sample choice alike (cells on with
  ``p_on`` = 0.5 in a random loop).
- ``"musical"`` (``LoopConfig``'s default, and sessions'): each track's hit density has a
  Beta hyperprior with mean ``density_mean`` (0.25) and concentration
  ``density_concentration`` (4, so a track may be sparse or busy), and the grid's prior is that Beta-binomial. Soft roles change
  the weight, never rule anything out: a loop with a kick that plays is ``kick_weight``
  times likelier, one whose snare, clap or rim plays beats 2 and 4 ``backbeat_weight``
  times, and each track that repeats a kind another track already has (three claps) is
  ``repeat_weight`` times as likely. Each cell's velocity (its accent) is ghost, normal or
  accent (``VELOCITY_LEVELS``) with prior probabilities ``velocity_weights``.

Variations on a loop (``ddjax.core.variations``) are chains that start a few cells from
it and stay within ``LoopConfig.distance`` cells.

The sampler adds the prior's log ratio to the critic's in the acceptance step, so chains
draw loops in proportion to P(x) f(x)^(1/s). The critic still decides what is liked; the
prior says what a drum loop usually looks like before any rating.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betaln

from ddjax import limits
from ddjax.core import patterns as patterns_lib
from ddjax.core.drums import BACKBEAT_KINDS, KINDS
from ddjax.core.loop_space import (  # re-exported: their home is JAX-free
    DEFAULT_DISTANCE,
    FULL_VELOCITY,
    LOOP_PRIORS,
    VELOCITY_LEVELS,
)
from ddjax.core.patterns import PatternPrior
from ddjax.errors import DdjaxError

FOUR_ON_THE_FLOOR_STEPS = (0, 4, 8, 12)


class Loop(NamedTuple):
    """A drum loop.

    Attributes:
      grid: bool[..., tracks, steps], True where the track's sample is hit.
      samples: int32[..., tracks], kit index of each track's sample.
      velocity: int32[..., tracks, steps], each cell's MIDI velocity, 1 to 127 (read where
        the cell is on; a hit's gain is velocity / 127), or None: every hit at 127.
    """

    grid: jax.Array
    samples: jax.Array
    velocity: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """The loop space and its proposal.

    Attributes:
      n_tracks: rows of the grid, one kit sample each.
      n_steps: 16th-note steps in the bar.
      p_on: probability that a cell is on in a random loop.
      p_flip: probability that the proposal flips a cell.
      p_swap: probability that the proposal re-draws a track's sample.
      four_on_the_floor: track 0 is a kick hit on steps 0, 4, 8 and 12 and stays so.
      prior: "learned", "musical" or "uniform" (see the module docstring).
      distance: the most grid cells a variation changes from its source (at least
        ``min(2, distance)``); it keeps all but ``variation_swaps`` of its samples.
      density_mean, density_concentration: the Beta hyperprior of a track's hit density
        (musical prior).
      kick_weight, backbeat_weight, repeat_weight: the soft roles' prior odds (musical).
      velocity_weights: prior probabilities of ``VELOCITY_LEVELS`` (musical).
      p_velocity: probability that the proposal re-draws a cell's velocity (musical).
    """

    n_tracks: int = 4
    n_steps: int = 16
    p_on: float = 0.5
    p_flip: float = 0.05
    p_swap: float = 0.15
    four_on_the_floor: bool = False
    prior: str = "musical"
    distance: int = DEFAULT_DISTANCE
    density_mean: float = 0.25
    density_concentration: float = 4.0
    kick_weight: float = 3.0
    backbeat_weight: float = 2.0
    repeat_weight: float = 1.0 / 3.0
    velocity_weights: tuple[float, ...] = (0.2, 0.6, 0.2)
    p_velocity: float = 0.05

    def __post_init__(self):
        if self.prior not in LOOP_PRIORS:
            raise DdjaxError(f"the loop prior must be one of {', '.join(LOOP_PRIORS)},"
                             f" got {self.prior!r}")
        if not 0.0 < self.density_mean < 1.0 or not self.density_concentration > 0.0:
            raise DdjaxError("the density hyperprior needs a mean in (0, 1) and a positive"
                             " concentration")
        if min(self.kick_weight, self.backbeat_weight, self.repeat_weight) <= 0.0:
            raise DdjaxError("the roles' prior weights must be positive")
        if not 1 <= self.n_tracks <= limits.MAX_TRACKS or self.n_steps < 1:
            raise DdjaxError(f"a loop has 1 to {limits.MAX_TRACKS} tracks and at least one"
                             f" step, not {self.n_tracks} x {self.n_steps}")
        if (len(self.velocity_weights) != len(VELOCITY_LEVELS)
                or min(self.velocity_weights) <= 0.0):
            raise DdjaxError(f"velocity_weights needs {len(VELOCITY_LEVELS)} positive weights")
        for name in ("p_on", "p_flip", "p_swap", "p_velocity"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise DdjaxError(f"{name} must be a probability in [0, 1]")
        if self.distance < 1:
            raise DdjaxError(f"--distance must be at least 1 cell, got {self.distance}")
        if self.four_on_the_floor and self.n_steps != 16:
            raise DdjaxError("--four-on-floor needs 16 steps")


def allowed_samples(config: LoopConfig, is_kick: np.ndarray) -> np.ndarray:
    """Which kit samples each track may use.

    Args:
      config: the loop space.
      is_kick: bool[kit] from ``Kit.is_kick``.

    Returns:
      bool[tracks, kit]; track 0 is limited to kicks under four-on-the-floor.

    Raises:
      DdjaxError: too few samples to fill the tracks without repeats.
    """
    n_kit = is_kick.shape[0]
    allowed = np.ones((config.n_tracks, n_kit), dtype=bool)
    if config.four_on_the_floor:
        if not is_kick.any():
            raise DdjaxError("--four-on-floor needs a kick, and no sample in the kit sounds"
                             " like one (low and short); add one or drop the flag")
        allowed[0] = is_kick
    if n_kit < config.n_tracks or (
            config.four_on_the_floor and n_kit - 1 < config.n_tracks - 1):
        raise DdjaxError(f"the kit has {n_kit} samples; {config.n_tracks} tracks need as many")
    return allowed


def fixed_row(config: LoopConfig) -> np.ndarray:
    """Track 0's row under four-on-the-floor: bool[n_steps]."""
    row = np.zeros(config.n_steps, dtype=bool)
    row[list(FOUR_ON_THE_FLOOR_STEPS)] = True
    return row


def _density_beta(config: LoopConfig) -> tuple[float, float]:
    return (config.density_mean * config.density_concentration,
            (1.0 - config.density_mean) * config.density_concentration)


def random_loop(key: jax.Array, allowed: jax.Array, config: LoopConfig,
                kinds: jax.Array | None = None, patterns: PatternPrior | None = None) -> Loop:
    """One loop from the generator: a chain's start.

    Cells are on with probability ``p_on`` (uniform prior), or with each track's density
    drawn from the Beta hyperprior (musical prior: this is the prior's grid exactly);
    samples are uniform over the allowed ones, without repeats across tracks. Velocities
    are 127 (uniform prior) or drawn from ``velocity_weights`` (musical). The roles act
    through the chains' acceptance step only.

    The learned prior draws exactly from its style mixture's grid and accents
    (``patterns.draw``: every track plays), after filling the tracks with roles
    (``learned_samples``); its soft roles act through the acceptance step.

    Args:
      key: PRNG key.
      allowed: bool[tracks, kit] from ``allowed_samples``.
      config: the loop space.
      kinds: int32[kit] kind ids, for the learned prior.
      patterns: the learned prior's arrays (``ddjax.io.patterns.load_loop_prior``).

    Returns:
      A ``Loop`` with ``grid: bool[tracks, steps]``, ``samples: int32[tracks]`` and
      ``velocity: int32[tracks, steps]``.
    """
    if config.prior == "learned":
        if patterns is None or kinds is None:
            raise ValueError("the learned loop prior draws with its arrays and the kit's"
                             " kinds")
        return _learned_loop(key, allowed, config, kinds, patterns)
    grid_key, sample_key, velocity_key = jax.random.split(key, 3)
    shape = (config.n_tracks, config.n_steps)
    if config.prior == "uniform":
        grid = jax.random.bernoulli(grid_key, config.p_on, shape)
        velocity = jnp.full(shape, FULL_VELOCITY, jnp.int32)
    else:
        level = jax.random.categorical(velocity_key, jnp.log(jnp.array(
            config.velocity_weights, jnp.float32)), shape=shape)
        velocity = jnp.array(VELOCITY_LEVELS, jnp.int32)[level]
        density_key, cell_key = jax.random.split(grid_key)
        density = jax.random.beta(density_key, *_density_beta(config), (config.n_tracks, 1))
        grid = jax.random.uniform(cell_key, shape) < density
    if config.four_on_the_floor:
        grid = grid.at[0].set(jnp.asarray(fixed_row(config)))
    # Uniform without repeats: per track, the arg-max of Gumbel noise over the samples
    # still free; tracks are filled in order.
    gumbel = jax.random.gumbel(sample_key, allowed.shape)
    taken = jnp.zeros(allowed.shape[1], dtype=bool)
    samples = []
    for track in range(config.n_tracks):
        free = allowed[track] & ~taken
        choice = jnp.argmax(jnp.where(free, gumbel[track], -jnp.inf))
        samples.append(choice)
        taken = taken.at[choice].set(True)
    return Loop(grid=grid, samples=jnp.stack(samples).astype(jnp.int32), velocity=velocity)


def _free_choice(free: jax.Array, logits: jax.Array) -> jax.Array:
    return jnp.argmax(jnp.where(free, logits, -jnp.inf))


def learned_samples(key: jax.Array, allowed: jax.Array, kinds: jax.Array,
                    role_logits: jax.Array, log_repeat: jax.Array) -> jax.Array:
    """One sample per track, no sample twice: track t takes role r with probability
    ``exp(role_logits[t, r])`` among the roles its allowed samples offer, then a sample of
    that role uniformly, each sample of a kind an earlier track has weighed by
    ``exp(log_repeat[kind])``. int32[tracks]."""
    sample_roles = patterns_lib.role_ids(kinds)  # [kit]
    n_roles = role_logits.shape[-1]
    of_role = sample_roles[None, :] == jnp.arange(n_roles)[:, None]  # [R, kit]
    repeat_weight = jnp.where(kinds >= 0, log_repeat[jnp.maximum(kinds, 0)], 0.0)  # [kit]
    gumbel = jax.random.gumbel(key, allowed.shape)
    taken = jnp.zeros(allowed.shape[1], dtype=bool)
    kind_taken = jnp.zeros(allowed.shape[1], dtype=bool)  # samples of a kind in the loop
    samples = []
    for track in range(allowed.shape[0]):
        count = jnp.sum(of_role & allowed[track], axis=-1)  # [R]
        per_sample = (role_logits[track] - jnp.log(jnp.maximum(count, 1)))[sample_roles]
        per_sample = per_sample + jnp.where(kind_taken, repeat_weight, 0.0)
        choice = _free_choice(allowed[track] & ~taken, per_sample + gumbel[track])
        samples.append(choice)
        taken = taken.at[choice].set(True)
        kind_taken = kind_taken | ((kinds == kinds[choice]) & (kinds >= 0))
    return jnp.stack(samples).astype(jnp.int32)


def _learned_loop(key, allowed, config, kinds, patterns):
    style_key, sample_key, grid_key = jax.random.split(key, 3)
    style = jax.random.categorical(style_key, patterns.log_weight)
    role_logits = patterns_lib.sample_roles_logits(patterns, style, config.n_tracks)
    samples = learned_samples(sample_key, allowed, kinds, role_logits,
                              jnp.asarray(patterns.log_repeat)[style])
    roles = patterns_lib.role_ids(kinds[samples])
    grid, level = patterns_lib.draw(grid_key, patterns, roles, style, config.n_steps)
    if config.four_on_the_floor:
        grid = grid.at[0].set(jnp.asarray(fixed_row(config)))
    velocity = jnp.array(VELOCITY_LEVELS, jnp.int32)[level]
    return Loop(grid=grid, samples=samples, velocity=velocity)


def propose(key: jax.Array, loop: Loop, allowed: jax.Array, config: LoopConfig) -> Loop:
    """The symmetric perturbation of one loop (see the module docstring).

    Args:
      key: PRNG key.
      loop: the current loop, ``grid: bool[tracks, steps]``, ``samples: int32[tracks]``.
      allowed: bool[tracks, kit] from ``allowed_samples``.
      config: the loop space and proposal probabilities.

    Returns:
      The candidate loop. It may repeat a sample; see ``is_valid``.
    """
    flip_key, swap_key, draw_key, velocity_key = jax.random.split(key, 4)
    flips = jax.random.bernoulli(flip_key, config.p_flip, loop.grid.shape)
    if config.four_on_the_floor:
        flips = flips.at[0].set(False)
    swaps = jax.random.bernoulli(swap_key, config.p_swap, loop.samples.shape)
    draws = jax.random.categorical(draw_key, jnp.where(allowed, 0.0, -jnp.inf), axis=-1)
    velocity = loop.velocity
    if velocity is not None and config.prior != "uniform":
        redraw_key, level_key = jax.random.split(velocity_key)
        redraw = jax.random.bernoulli(redraw_key, config.p_velocity, velocity.shape)
        level = jax.random.randint(level_key, velocity.shape, 0, len(VELOCITY_LEVELS))
        velocity = jnp.where(redraw, jnp.array(VELOCITY_LEVELS, jnp.int32)[level], velocity)
    return Loop(grid=loop.grid ^ flips,
                samples=jnp.where(swaps, draws, loop.samples).astype(jnp.int32),
                velocity=velocity)


def is_valid(loop: Loop) -> jax.Array:
    """True where no two tracks of a loop share a sample. bool[...]."""
    same = loop.samples[..., :, None] == loop.samples[..., None, :]
    n_tracks = loop.samples.shape[-1]
    return jnp.sum(same, axis=(-2, -1)) == n_tracks


def all_play(loop: Loop) -> jax.Array:
    """True where every track of a loop plays at least once. bool[...]."""
    return jnp.all(jnp.any(loop.grid, axis=-1), axis=-1)


def support(config: LoopConfig):
    """The loops the target allows, ``loop -> bool[...]``: no sample twice
    (``is_valid``) and, under the learned prior, no silent track."""
    if config.prior != "learned":
        return is_valid
    return lambda loop: is_valid(loop) & all_play(loop)


def level_index(velocity: jax.Array | None) -> jax.Array | None:
    """int32[...]: each velocity's index in ``VELOCITY_LEVELS``, -1 for any other."""
    if velocity is None:
        return None
    match = velocity[..., None] == jnp.array(VELOCITY_LEVELS)
    return jnp.where(jnp.any(match, axis=-1), jnp.argmax(match, axis=-1), -1).astype(jnp.int32)


def musical_grid_log_prob(grid: jax.Array, config: LoopConfig) -> jax.Array:
    """log P(grid) under the musical prior's density hyperprior (a Beta-binomial per
    track), normalised over grids: float32[...] for grid bool[..., tracks, steps]."""
    a, b = _density_beta(config)
    hits = jnp.sum(grid, axis=-1).astype(jnp.float32)
    n_steps = grid.shape[-1]
    return jnp.sum(betaln(a + hits, b + n_steps - hits) - betaln(a, b), axis=-1)


def log_prior(loop: Loop, kinds: jax.Array, config: LoopConfig,
              patterns: PatternPrior | None = None) -> jax.Array:
    """log P(x) of loops under ``config.prior``, up to a constant.

    Args:
      loop: ``grid: bool[..., tracks, steps]``, ``samples: int32[..., tracks]``.
      kinds: int32[kit], each kit sample's kind as an index into ``kinds.KINDS``, -1 where
        unknown (``kinds.kind_ids``).
      config: the prior and its settings.
      patterns: the learned prior's arrays (``config.prior == "learned"``).

    Returns:
      float32[...]; 0 under the uniform prior.
    """
    if config.prior == "uniform":
        return jnp.zeros(loop.grid.shape[:-2], jnp.float32)
    if config.prior == "learned":
        return (patterns_lib.log_prob(patterns, loop.grid, kinds[loop.samples],
                                      level_index(loop.velocity))
                - patterns_lib.log_role_count(kinds, kinds[loop.samples]))
    hits = jnp.sum(loop.grid, axis=-1).astype(jnp.float32)  # [..., tracks]
    n_steps = loop.grid.shape[-1]
    grid_term = musical_grid_log_prob(loop.grid, config)
    kind = kinds[loop.samples]  # [..., tracks]
    plays = hits > 0
    has_kick = jnp.any(plays & (kind == KINDS.index("kick")), axis=-1)
    backbeat = jnp.zeros(loop.grid.shape[:-1], bool)
    if n_steps % 4 == 0:  # beats 2 and 4
        is_backbeat_kind = jnp.isin(kind, jnp.array([KINDS.index(k) for k in BACKBEAT_KINDS]))
        backbeat = (is_backbeat_kind & loop.grid[..., n_steps // 4]
                    & loop.grid[..., 3 * n_steps // 4])
    same = (kind[..., :, None] == kind[..., None, :]) & (kind[..., :, None] >= 0)
    earlier = jnp.tril(jnp.ones(same.shape[-2:], bool), k=-1)  # [t, u]: u < t
    repeats = jnp.sum(jnp.any(same & earlier, axis=-1), axis=-1)
    velocity_term = 0.0
    if loop.velocity is not None:  # cells at other velocities (a loop from a file) add 0
        levels = loop.velocity[..., None] == jnp.array(VELOCITY_LEVELS)
        velocity_term = jnp.sum(levels * jnp.log(jnp.array(config.velocity_weights)),
                                axis=(-3, -2, -1))
    return (grid_term + velocity_term + has_kick * np.log(config.kick_weight)
            + jnp.any(backbeat, axis=-1) * np.log(config.backbeat_weight)
            + repeats * np.log(config.repeat_weight)).astype(jnp.float32)


def with_velocity(loop: Loop) -> Loop:
    """``loop`` with its velocities as an array: every hit at 127 where they are None."""
    if loop.velocity is not None:
        return loop
    return loop._replace(velocity=jnp.full(jnp.shape(loop.grid), FULL_VELOCITY, jnp.int32))
