"""The paper's learner (``--pretrained none``): its CNN trained from scratch.

``paper_cnn`` is a ``base.Learner`` whose model is the CNN and Adam's state
(``ddjax.learning.training.TrainState``); after each rating it runs a burst of minibatch
steps over every rating so far (``ddjax.learning.training.train_steps``). It has no
belief, so ``sample_critic`` is ``critic``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ddjax.core.critic import init_critic
from ddjax.core.features import mel_power
from ddjax.core.render import critic_view
from ddjax.learning.base import INITIAL_CAPACITY, Learner, LearnerState, append, empty_data
from ddjax.learning.training import Ratings, TrainConfig, init_train_state, train_steps


def paper_cnn(pipeline, train: TrainConfig = TrainConfig()) -> Learner:
    """The paper's learner: its CNN from scratch, ``train.steps_per_rating`` Adam steps on
    every rating so far after each new one (``ddjax.learning.training.train_steps``). With
    ``train.augmentation == "mel"``, each rated loop's mel power is computed once, when it
    is rated, and kept in ``data.inputs`` (flattened)."""
    frames = pipeline.features.n_frames(pipeline.render.bar_samples)
    mel_shape = (frames, pipeline.features.n_mels) if train.augmentation == "mel" else (0,)
    n_inputs = int(np.prod(mel_shape))

    def init(key, tables, allowed):
        del tables, allowed
        variables = init_critic(key, pipeline.critic)
        data = empty_data(INITIAL_CAPACITY, pipeline.loops.n_tracks, pipeline.loops.n_steps,
                          n_inputs)
        return LearnerState(init_train_state(variables, train), data, jnp.int32(0))

    def remember(state, tables, loop, liked):
        inputs = jnp.zeros((0,), jnp.float32)
        if n_inputs:
            audio = critic_view(tables, jax.tree_util.tree_map(lambda a: a[None], loop),
                                pipeline.render)
            inputs = mel_power(audio, pipeline.features).reshape(-1)
        data = append(state.data, state.count, loop, liked, inputs)
        return state._replace(data=data, count=state.count + 1)

    def update(key, state, tables, loop, liked):
        data, count = remember(state, tables, loop, liked)[1:]
        model, losses = state.model, jnp.zeros((1,), jnp.float32)
        if train.steps_per_rating:
            mel = data.inputs.reshape((-1,) + mel_shape) if n_inputs else None
            model, losses = train_steps(key, model, Ratings(data.loop, data.liked, count, mel),
                                        tables, n_steps=train.steps_per_rating,
                                        pipeline=pipeline, config=train)
        return LearnerState(model, data, count), losses[-1]

    def critic(state):
        return state.model.variables

    def sample_critic(key, state):
        del key
        return state.model.variables

    return Learner(init, update, remember, critic, sample_critic)
