"""The learner's shape: ratings -> a critic, as one small set of pure functions.

A ``Learner`` is shaped like an Optax transform or a BlackJAX kernel: a NamedTuple of
pure functions with its settings bound in a factory (``bayes_head.bayes_head``,
``paper_cnn.paper_cnn``), and a pytree state. Each function's type is a Protocol below,
so a learner says what it promises:

- ``init(key, tables, allowed) -> LearnerState``: the critic before any rating.
- ``update(key, state, tables, loop, liked) -> (LearnerState, info)``: learn one more
  rating (the loop is unbatched; ``info`` is a float32 scalar: the last loss).
- ``remember(state, tables, loop, liked) -> LearnerState``: add a rating to the data
  without learning it (a resumed session whose checkpoint has learned it already).
- ``critic(state) -> variables``: the critic to score loops with (``critic.prob_like``).
- ``sample_critic(key, state) -> variables``: one draw of the critic from the learner's
  belief, for Thompson sampling; the same as ``critic`` for a learner with no belief.

Rated loops live in ``state.data`` rows ``[capacity]`` with ``state.count`` real ones, so
shapes stay put under jit; ``grow`` doubles the capacity when it is full.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from ddjax.core.loops import Loop, with_velocity

INITIAL_CAPACITY = 128  # rows of rated loops before the first doubling


class Rated(NamedTuple):
    """Rated loops, rows [capacity]: the loop, the rating, and what the learner caches of
    each (float32[capacity, d]): the head's descriptors, or the CNN's mel power
    spectrogram (d = 0 when the CNN augments the audio at every step)."""

    loop: Loop  # grid bool[capacity, tracks, steps], samples int32[capacity, tracks], ...
    liked: jax.Array  # bool[capacity]
    inputs: jax.Array  # float32[capacity, d]


class LearnerState(NamedTuple):
    """``model``: what the learner learns (head variables, or the CNN and Adam's state);
    ``data``: the rated loops; ``count``: int32, how many rows of ``data`` are real."""

    model: Any  # a pytree; what a checkpoint saves
    data: Rated
    count: jax.Array  # int32[]


class InitFn(Protocol):
    def __call__(self, key: jax.Array, tables: jax.Array, allowed: jax.Array
                 ) -> LearnerState: ...


class UpdateFn(Protocol):
    def __call__(self, key: jax.Array, state: LearnerState, tables: jax.Array, loop: Loop,
                 liked: jax.Array) -> tuple[LearnerState, jax.Array]: ...


class RememberFn(Protocol):
    def __call__(self, state: LearnerState, tables: jax.Array, loop: Loop,
                 liked: jax.Array) -> LearnerState: ...


class CriticFn(Protocol):
    def __call__(self, state: LearnerState) -> dict: ...


class SampleCriticFn(Protocol):
    def __call__(self, key: jax.Array, state: LearnerState) -> dict: ...


class Learner(NamedTuple):
    init: InitFn
    update: UpdateFn
    remember: RememberFn
    critic: CriticFn
    sample_critic: SampleCriticFn


def empty_data(capacity: int, n_tracks: int, n_steps: int, n_inputs: int) -> Rated:
    return Rated(Loop(jnp.zeros((capacity, n_tracks, n_steps), bool),
                      jnp.zeros((capacity, n_tracks), jnp.int32),
                      jnp.zeros((capacity, n_tracks, n_steps), jnp.int32)),
                 jnp.zeros((capacity,), bool), jnp.zeros((capacity, n_inputs), jnp.float32))


def append(data: Rated, count: jax.Array, loop: Loop, liked, inputs) -> Rated:
    """``data`` with row ``count`` set to one more rated loop."""
    put = lambda rows, row: rows.at[count].set(row)
    return Rated(jax.tree_util.tree_map(put, data.loop, with_velocity(loop)), put(data.liked, liked),
                 put(data.inputs, inputs))


def grow(state: LearnerState) -> LearnerState:
    """The same state with twice the rows (one recompile per doubling, not per rating)."""
    pad = lambda x: jnp.concatenate([x, jnp.zeros_like(x)])
    return state._replace(data=jax.tree_util.tree_map(pad, state.data))


def capacity(state: LearnerState) -> int:
    return int(state.data.liked.shape[0])


@functools.lru_cache(maxsize=None)
def compiled(learner: Learner) -> Learner:
    """The learner with each function jit-compiled once (learners are cached by
    ``ddjax.learning.registry.make_learner``, so every session with the same settings
    shares them)."""
    return Learner(*(jax.jit(fn) for fn in learner))
