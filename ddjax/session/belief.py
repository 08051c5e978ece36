"""What a session believes of one person's taste: the learner's state after the ratings
in force, and the way back from the last ones (undo).

A ``Belief`` holds a ``learner.Learner``'s state and learns ratings one at a time, in
order. Before each update it keeps the model it had (``MAX_SNAPSHOTS`` of them), so taking
the last rating back restores exactly the model from before it; further back than that
(or after a resume, which starts with none), it learns the remaining ratings again from
the start, with the same keys, which gives the same model. It does no I/O and starts no
thread: ``ddjax.session.session`` calls it from its worker and writes what it returns.
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp

from ddjax.core.loops import Loop, with_velocity
from ddjax.learning.base import Learner, LearnerState, UpdateFn, capacity, grow
from ddjax.session.journal import Rating

MAX_SNAPSHOTS = 2  # models kept for undo (each up to a few MB: the CNN and Adam's; the
# head's 0.4 MB); an undo further back learns the ratings again


def rated_loop(rating: Rating) -> Loop:
    """A rating's loop as device arrays, with its velocities (127 where it has none)."""
    return with_velocity(Loop(jnp.asarray(rating.grid), jnp.asarray(rating.samples, jnp.int32),
                              None if rating.velocity is None
                              else jnp.asarray(rating.velocity, jnp.int32)))


class Belief:
    """The learner's state over the ratings learned so far.

    Args:
      learner: the session's learner.
      key: the session's key; rating i is learned with ``fold_in(fold_in(key, 1), i)``.
      tables: the render tables (``Engine.params.tables``).
      allowed: the loop space's allowed samples (``Engine.allowed``).
      initial: the learner's initial state where it is known already (shared by many
        sessions, ``hub.Hub.initial_state``); None: ``learner.init`` with the key.
      update: ``learner.update`` or a stand-in that computes the same (batched with other
        sessions', ``hub.Hub.update``).
    """

    def __init__(self, learner: Learner, key: jax.Array, tables, allowed, *,
                 initial: LearnerState | None = None, update: UpdateFn | None = None):
        self.learner, self._key, self._tables, self._allowed = learner, key, tables, allowed
        self._update = learner.update if update is None else update
        self._initial = initial
        self.state: LearnerState = self._init()
        self.initial_critic = learner.critic(self.state)
        self.learned: list[int] = []  # the loop ids of the ratings learned, in order
        self._snapshots: collections.deque = collections.deque(maxlen=MAX_SNAPSHOTS)

    def _init(self) -> LearnerState:
        if self._initial is not None:
            return self._initial
        return self.learner.init(jax.random.fold_in(self._key, 0), self._tables, self._allowed)

    @property
    def n_trained(self) -> int:
        return len(self.learned)

    def critic(self) -> dict:
        return self.learner.critic(self.state)

    def sample_critic(self, key: jax.Array) -> dict:
        return self.learner.sample_critic(key, self.state)

    def _room_for(self, index: int) -> None:
        while index >= capacity(self.state):  # rows 0..index-1 hold the earlier ratings
            self.state = grow(self.state)

    def learn(self, rating: Rating) -> None:
        """Learns the next rating."""
        index = self.n_trained
        self._room_for(index)
        self._snapshots.append(self.state.model)
        key = jax.random.fold_in(jax.random.fold_in(self._key, 1), index)
        self.state, _ = self._update(key, self.state, self._tables, rated_loop(rating),
                                     jnp.bool_(rating.liked))
        self.learned.append(rating.loop_id)

    def remember(self, rating: Rating) -> None:
        """Adds the next rating to the data without learning it (a restored model has)."""
        self._room_for(self.n_trained)
        self.state = self.learner.remember(self.state, self._tables, rated_loop(rating),
                                           jnp.bool_(rating.liked))
        self.learned.append(rating.loop_id)
        self._snapshots.clear()  # the models before this one are not known

    def restore(self, model) -> None:
        """Puts back a checkpoint's model (before ``remember`` adds its ratings)."""
        self.state = self.state._replace(model=jax.tree_util.tree_map(jnp.asarray, model))

    def take_back(self, history: list[Rating]) -> None:
        """Forgets the last learned rating; ``history`` is the ratings still in force.

        Restores the model from before it when one is kept, else learns ``history`` again.
        """
        if not self.learned:
            raise ValueError("no rating learned to take back")
        if self._snapshots:
            self.state = self.state._replace(model=self._snapshots.pop(),
                                             count=self.state.count - 1)
            self.learned.pop()
            return
        self.state = self._init()
        self.learned = []
        for rating in history:
            self.learn(rating)

    def warm_up(self, n_tracks: int, n_steps: int) -> None:
        """Compiles the update on throw-away data; the state is left as it was."""
        loop = with_velocity(Loop(jnp.zeros((n_tracks, n_steps), bool),
                                  jnp.zeros((n_tracks,), jnp.int32)))
        jax.block_until_ready(self.learner.update(jax.random.key(0), self.state, self._tables,
                                                  loop, jnp.bool_(True)))
