"""The engine's loudness: what people hear (``listen``, ``loop_bar``, ``audition``) is at
the target, as pyloudnorm's BS.1770 meter reads it, and what the critic scores is not
touched: the same scores with loudness on or off."""

import jax
import jax.numpy as jnp
import numpy as np
import pyloudnorm
import pytest

from ddjax.core.critic import init_critic
from ddjax.core.loops import Loop
from ddjax.core.pipeline import Pipeline
from ddjax.core.render import listening_render
from ddjax.sampling.engine import Engine


def test_people_hear_the_target_and_the_critic_hears_the_raw_mix(bundled_kit):
    pipeline = Pipeline.sized(prior="uniform")
    critic = init_critic(jax.random.key(0), pipeline.critic)
    loud = Engine(bundled_kit, critic, pipeline, loudness=-20.0)
    raw = Engine(bundled_kit, critic, pipeline)
    rng = np.random.default_rng(0)
    grid = rng.random((3, 4, 16)) < 0.4
    grid[:, :, 0] = True
    samples = np.stack([rng.choice(len(bundled_kit), 4, replace=False) for _ in range(3)])
    loops = Loop(jnp.asarray(grid), jnp.asarray(samples, jnp.int32),
                 jnp.full(grid.shape, 100, jnp.int32))
    np.testing.assert_array_equal(np.asarray(loud.score(loops)), np.asarray(raw.score(loops)))
    np.testing.assert_array_equal(raw.listen(loops), np.asarray(
        listening_render(bundled_kit.audio, loops, pipeline.render)))  # off: the raw mix
    meter = pyloudnorm.Meter(bundled_kit.sr, filter_class="DeMan")
    for audio in loud.listen(loops):
        assert meter.integrated_loudness(audio) == pytest.approx(-20.0, abs=0.1)
    for bar in loud.loop_bar(loops):
        assert meter.integrated_loudness(np.tile(bar, 4)) == pytest.approx(-20.0, abs=0.1)
    one = jax.tree_util.tree_map(lambda x: x[0], loops)
    heard = loud.audition(one, 100.0, 60.0, 2)
    assert meter.integrated_loudness(np.tile(heard, 2)) == pytest.approx(-20.0, abs=0.1)
