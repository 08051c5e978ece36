"""Variations ("more like this", ``generate --from``) stay near their source, and the learned
prior's chains keep every track playing; counted with plain NumPy."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ddjax.core.critic import init_critic
from ddjax.core.loops import Loop
from ddjax.core.pipeline import Pipeline
from ddjax.errors import DdjaxError
from ddjax.sampling.engine import Engine
from ddjax.sampling.sampler import SamplerConfig


def engine_for(kit, **loops) -> Engine:
    return Engine(kit, init_critic(jax.random.key(0)), Pipeline.sized(prior="learned", **loops))


def source_loop(kit) -> Loop:
    names = ["kick", "snare", "closed_hat", "open_hat"]
    samples = np.array([kit.kinds.index(k) for k in names], np.int32)
    grid = np.zeros((4, 16), bool)
    grid[0, [0, 6, 8]] = grid[1, [4, 12]] = grid[2, ::2] = grid[3, [2, 10]] = True
    return Loop(grid, samples, np.full((4, 16), 100, np.int32))


@pytest.mark.parametrize("distance", [8, 3])
def test_variations_change_2_to_distance_cells_and_keep_3_of_4_samples(bundled_kit, distance):
    engine = engine_for(bundled_kit, distance=distance)
    source = source_loop(bundled_kit)
    state, _ = engine.sample(jax.random.key(1), 64, SamplerConfig("mh", 60, 1.0),
                             start=source)
    grids, samples = np.asarray(state.loop.grid), np.asarray(state.loop.samples)
    for grid, chosen in zip(grids, samples):
        changed = sum(int(grid[t, j] != source.grid[t, j])
                      for t in range(4) for j in range(16))
        kept = sum(int(a == b) for a, b in zip(chosen, source.samples))
        assert 2 <= changed <= distance
        assert kept >= 3
        assert len(set(chosen.tolist())) == 4
        assert grid.any(axis=1).all()
    # They are not all one loop: the chains spread within the ball.
    assert len({g.tobytes() for g in grids}) > 16


def test_learned_chains_keep_every_track_playing(bundled_kit):
    engine = engine_for(bundled_kit)
    state, _ = engine.sample(jax.random.key(2), 64, SamplerConfig("mh", 50, 1.0))
    grids = np.asarray(state.loop.grid)
    assert grids.any(axis=-1).all()
    kinds = [[bundled_kit.kinds[i] for i in row] for row in np.asarray(state.loop.samples)]
    # Soft roles: most loops have a kick, a backbeat voice and a timekeeper.
    with_roles = [("kick" in k) and bool({"snare", "clap", "rim"} & set(k))
                  and bool({"closed_hat", "ride", "shaker"} & set(k)) for k in kinds]
    assert np.mean(with_roles) > 0.6


def test_a_style_conditions_the_prior(bundled_kit):
    engine = engine_for(bundled_kit)
    with pytest.raises(DdjaxError, match="no style 'polka'; the styles are"):
        engine.set_style("polka")
    engine.set_style("house")
    state, _ = engine.sample(jax.random.key(3), 64, SamplerConfig("mh", 30, 1.0))
    grids = np.asarray(state.loop.grid)
    samples = np.asarray(state.loop.samples)
    kicks = [grid[list(row).index(i)] for grid, row in zip(grids, samples)
             for i in row if bundled_kit.kinds[i] == "kick"]
    # House: the kick on all four beats in most loops.
    four = np.mean([k[[0, 4, 8, 12]].all() for k in kicks])
    assert four > 0.6
