"""Loops stage, the learned loop prior: what real drum patterns look like, per style.

A mixture of components s (``PatternPrior.log_weight``), a few per style: the ways of
playing it (a ``--style`` keeps that style's). Within a component, each track's role r
(its sample's kind folded into ``ROLES``) sets the probability that it plays each step,
``on[s, r, step]``, and the accent of each hit it plays, ``level[s, r, step, level]``. The
tracks play independently given the component, so what the kinds do together (the kick
against the snare, the hats keeping time) is carried by the mixture. Fitted on real
patterns by ``ddjax.io.patterns.fit`` (``scripts/fit_loop_prior.py``), shipped as
``ddjax/pretrained/loop-prior.json``.

The prior of a loop x whose tracks have roles r_t:

    P(x) ∝ Σ_s π_s R_s(roles) Π_t Π_j on[s,r_t,j]^g_tj (1 - on[s,r_t,j])^(1-g_tj)
                                 Π_{hits} level[s, r_t, j, v_tj]

The grid-and-accent part is a normalised distribution over grids and velocities given the
kinds (``log_grid_prob``: a loop's likelihood, as ``bench/musicality.py`` scores held-out
patterns). ``R_s`` are the soft roles, a weight and not a distribution: each role the
style usually has (``presence``) makes a loop likelier where its tracks include it
(something low, a backbeat voice, a timekeeper), and each track that repeats a kind another
track already has weighs ``repeat[s, kind]`` (and each further track of a role
``role_repeat[s, role]``), near 1 only where the style has two such
voices (two toms). Nothing is ruled out.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ddjax.core.drums import KINDS

# The roles, and each kind's; unknown kinds (-1) are "other".
ROLES = ("low", "backbeat", "timekeeper", "open", "tom", "other")
ROLE_OF_KIND = {"kick": "low", "snare": "backbeat", "clap": "backbeat", "rim": "backbeat",
                "closed_hat": "timekeeper", "shaker": "timekeeper", "ride": "timekeeper",
                "open_hat": "open", "tom": "tom", "crash": "other", "cowbell": "other",
                "fx": "other"}
CORE_ROLES = ("low", "backbeat", "timekeeper")  # what a loop has by default, in track order
LEVELS = 3  # ghost, normal, accent: ``loops.VELOCITY_LEVELS``


def role_ids(kind_ids: np.ndarray | jax.Array) -> jax.Array:
    """int32[...]: the role of each kind id (an index into ``drums.KINDS``; -1: other)."""
    table = jnp.array([ROLES.index(ROLE_OF_KIND[k]) for k in KINDS] + [ROLES.index("other")],
                      jnp.int32)
    return table[jnp.where(kind_ids < 0, len(KINDS), kind_ids)]


class PatternPrior(NamedTuple):
    """The learned prior's arrays (S styles, R = len(ROLES) roles, N steps, K kinds).

    Attributes:
      log_weight: float32[S], log π_s of each component (S: components of every style);
        -inf for those of a style left out (``ddjax.io.patterns.LoopPrior.for_style``).
      log_on, log_off: float32[S, R, N], log on[s, r, j] and log(1 - on[s, r, j]).
      log_level: float32[S, R, N, LEVELS], log P(accent | hit).
      log_presence, log_absence: float32[S, R], the soft role weights of a role that is,
        or is not, among a loop's tracks.
      log_repeat: float32[S, K], each repeat of a kind's weight (0 where the style repeats
        it freely).
      log_role_repeat: float32[S, R], each further track of a role's weight (a second
        backbeat voice, a second low voice).
      log_track_role: float32[S, T0, R], how chain starts fill tracks 0..T0-1 with roles
        (the core roles first, then the style's other voices); tracks past T0 use the
        last row.
    """

    log_weight: jax.Array
    log_on: jax.Array
    log_off: jax.Array
    log_level: jax.Array
    log_presence: jax.Array
    log_absence: jax.Array
    log_repeat: jax.Array
    log_role_repeat: jax.Array
    log_track_role: jax.Array


def _per_style_grid(prior: PatternPrior, grid: jax.Array, roles: jax.Array,
                    level: jax.Array | None) -> jax.Array:
    # float32[S, ...]: log P(grid, accents | roles, s) for loops batched over [...].
    on = jnp.asarray(prior.log_on)[:, roles]  # [S, ..., T, N]
    off = jnp.asarray(prior.log_off)[:, roles]
    term = jnp.where(grid, on, off)
    if level is not None:
        by_level = jnp.asarray(prior.log_level)[:, roles]  # [S, ..., T, N, L]
        picked = jnp.take_along_axis(by_level, jnp.maximum(level, 0)[None, ..., None],
                                     axis=-1)[..., 0]
        term = term + jnp.where(grid & (level >= 0), picked, 0.0)
    return jnp.sum(term, axis=(-2, -1))


def log_grid_prob(prior: PatternPrior, grid: jax.Array, roles: jax.Array,
                  level: jax.Array | None = None) -> jax.Array:
    """log P(grid, accents | the tracks' roles): the normalised part of the prior.

    Args:
      prior: the arrays.
      grid: bool[..., T, N].
      roles: int32[..., T], each track's role (``role_ids``).
      level: int32[..., T, N], each hit's accent index (0 ghost, 1 normal, 2 accent; -1
        for a velocity that is none of ``VELOCITY_LEVELS``, which adds nothing), or None
        for the grid alone.

    Returns:
      float32[...].
    """
    per_style = _per_style_grid(prior, grid, roles, level)
    weight = jnp.reshape(prior.log_weight, prior.log_weight.shape + (1,) * (per_style.ndim - 1))
    return jax.nn.logsumexp(weight + per_style, axis=0)


def _role_weight(prior: PatternPrior, roles: jax.Array, kinds: jax.Array) -> jax.Array:
    # float32[S, ...]: log R_s of loops whose tracks have these roles and kind ids.
    n_roles = prior.log_presence.shape[-1]
    present = jnp.any(roles[..., :, None] == jnp.arange(n_roles), axis=-2)  # [..., R]
    roles_term = jnp.sum(jnp.where(present[None], _expand(prior.log_presence, present),
                                   _expand(prior.log_absence, present)), axis=-1)
    n_kinds = prior.log_repeat.shape[-1]
    count = jnp.sum(kinds[..., :, None] == jnp.arange(n_kinds), axis=-2)  # [..., K]
    repeats = jnp.maximum(count - 1, 0).astype(jnp.float32)
    repeat_term = jnp.sum(repeats[None] * _expand(prior.log_repeat, repeats), axis=-1)
    per_role = jnp.sum(roles[..., :, None] == jnp.arange(n_roles), axis=-2)  # [..., R]
    role_repeats = jnp.maximum(per_role - 1, 0).astype(jnp.float32)
    role_repeat_term = jnp.sum(role_repeats[None] * _expand(prior.log_role_repeat,
                                                            role_repeats), axis=-1)
    return roles_term + repeat_term + role_repeat_term


def _expand(table: jax.Array, like: jax.Array) -> jax.Array:
    # table[S, X] -> [S, 1, ..., 1, X] to broadcast against like[..., X].
    return jnp.reshape(table, (table.shape[0],) + (1,) * (like.ndim - 1) + table.shape[-1:])


def log_prob(prior: PatternPrior, grid: jax.Array, kinds: jax.Array,
             level: jax.Array | None = None) -> jax.Array:
    """log P(x) up to a constant: the grid and accents with the soft roles (module doc).

    Args:
      prior: the arrays.
      grid: bool[..., T, N].
      kinds: int32[..., T], each track's kind id (-1 unknown).
      level: int32[..., T, N] accent indices as in ``log_grid_prob``, or None.

    Returns:
      float32[...].
    """
    roles = role_ids(kinds)
    per_style = _per_style_grid(prior, grid, roles, level) + _role_weight(prior, roles, kinds)
    weight = jnp.reshape(prior.log_weight, prior.log_weight.shape + (1,) * (per_style.ndim - 1))
    return jax.nn.logsumexp(weight + per_style, axis=0)


def log_role_count(kit_kinds: jax.Array, kinds: jax.Array) -> jax.Array:
    """float32[...]: Σ_t log(how many kit samples share track t's role), for ``kinds``
    int32[..., T] of a kit whose samples have ``kit_kinds`` int32[kit]. Subtracted from
    the prior, it makes a role as likely on a kit with many samples of it as on one with
    few: the prior picks roles, then a sample of the role uniformly."""
    kit_roles = role_ids(kit_kinds)
    count = jnp.sum(kit_roles[:, None] == jnp.arange(len(ROLES)), axis=0)  # [R]
    return jnp.sum(jnp.log(jnp.maximum(count[role_ids(kinds)], 1).astype(jnp.float32)),
                   axis=-1)


def sample_roles_logits(prior: PatternPrior, style: jax.Array, n_tracks: int) -> jax.Array:
    """float32[T, R]: the log-probabilities with which a chain start gives each track a
    role in style ``style`` (int32 scalar)."""
    rows = jnp.asarray(prior.log_track_role)[style]  # [T0, R]
    index = jnp.minimum(jnp.arange(n_tracks), rows.shape[0] - 1)
    return rows[index]


def draw(key: jax.Array, prior: PatternPrior, roles: jax.Array, style: jax.Array,
         n_steps: int) -> tuple[jax.Array, jax.Array]:
    """A grid and its accents from style ``style`` for tracks with ``roles`` (int32[T]).

    Every track plays: a row drawn empty gets one hit, on a step drawn in proportion to
    how often the role plays there. Returns (bool[T, N], int32[T, N] accent indices).
    """
    grid_key, rescue_key, level_key = jax.random.split(key, 3)
    log_on = jnp.asarray(prior.log_on)[style, roles][..., :n_steps]  # [T, N]
    grid = jnp.log(jax.random.uniform(grid_key, log_on.shape)) < log_on
    rescue = jax.random.categorical(rescue_key, log_on, axis=-1)  # [T]
    empty = ~jnp.any(grid, axis=-1)
    grid = grid | (empty[:, None] & (jnp.arange(n_steps) == rescue[:, None]))
    level = jax.random.categorical(level_key,
                                   jnp.asarray(prior.log_level)[style, roles][..., :n_steps, :],
                                   axis=-1)
    return grid, level.astype(jnp.int32)
