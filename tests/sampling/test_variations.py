"""Variations ("more like this", ``generate --from``) stay near their source, and the learned
prior's chains keep every track playing; counted with plain NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddjax.core import variations
from ddjax.core.critic import init_critic
from ddjax.core.loops import Loop, LoopConfig
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


def test_variations_change_2_to_distance_cells_and_keep_3_of_4_samples(bundled_kit):
    distance = 8
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


def test_a_narrower_distance_bounds_the_starts_and_the_support(bundled_kit):
    """``--distance 3``: the pure pieces the chains use, counted with plain loops."""
    config = LoopConfig(prior="learned", distance=3)
    source = source_loop(bundled_kit)
    source = Loop(jnp.asarray(source.grid), jnp.asarray(source.samples),
                  jnp.asarray(source.velocity))
    starts = jax.vmap(lambda k: variations.variation_start(k, source, config))(
        jax.random.split(jax.random.key(5), 200))
    changed = [sum(int(g[t, j] != source.grid[t, j]) for t in range(4) for j in range(16))
               for g in np.asarray(starts.grid)]
    assert set(changed) == {2, 3}
    assert np.asarray(starts.grid).any(axis=-1).all()
    assert (np.asarray(starts.samples) == np.asarray(source.samples)).all()
    inside = variations.near(source, config)
    grid = np.asarray(source.grid).copy()
    for cells, swaps, expected in [(1, 0, False), (2, 0, True), (3, 1, True), (4, 0, False),
                                   (2, 2, False)]:
        moved = grid.copy()
        for j in range(cells):  # off-beat cells of the timekeeper's row that are off
            moved[2, 2 * j + 1] = ~moved[2, 2 * j + 1]
        samples = np.asarray(source.samples).copy()
        free = [i for i in range(len(bundled_kit.names)) if i not in samples]
        samples[:swaps] = free[:swaps]
        loop = source._replace(grid=jnp.asarray(moved), samples=jnp.asarray(samples))
        assert bool(inside(loop)) is expected, (cells, swaps)
