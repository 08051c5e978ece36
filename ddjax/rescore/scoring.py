"""Rescoring, stage 2 (device): a batch of items -> every critic's score.

The batch is split over a ``jax.sharding.Mesh`` of axes ``("loops", "critics")``: loops
are sharded over ``"loops"`` and the stacked critics over ``"critics"``. Each loop is
rendered and its MFCC computed once, then scored by the K critics (vmapped).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ddjax.core.ensemble import EnsembleStats, critic_probs, ensemble_stats
from ddjax.core.features import mfcc
from ddjax.core.loops import FULL_VELOCITY, Loop
from ddjax.core.pipeline import Pipeline
from ddjax.core.render import critic_view, render_tables
from ddjax.errors import DdjaxError
from ddjax.io.critics import Ensemble
from ddjax.io.kit import Kit
from ddjax.rescore.inputs import Item


class Batch(NamedTuple):
    """One batch on device: ``grid`` bool[B, tracks, steps], ``samples`` int32[B, tracks],
    ``velocity`` int32[B, tracks, steps]; ``audio`` float32[B, bar_samples] and
    ``is_audio`` bool[B], or None for loops only."""

    grid: jax.Array
    samples: jax.Array
    velocity: jax.Array
    audio: jax.Array | None
    is_audio: jax.Array | None


class BatchScores(NamedTuple):
    """``probs`` float32[B, K] and the ensemble's ``stats`` (each float32[B])."""

    probs: jax.Array
    stats: EnsembleStats


def score_batch(tables: jax.Array, critics: dict, batch: Batch, *, pipeline: Pipeline,
                n_critics: int, groups: int = 1) -> BatchScores:
    """Every critic's score of every input of a batch.

    Args:
      tables: ``render_tables`` of the kit.
      critics: stacked critic variables, leaves [K', ...] with K' >= n_critics (padding
        critics, so that K' divides the critics axis, are dropped here).
      batch: the inputs.
      pipeline: the settings of every stage.
      n_critics: K.
      groups: groups of critics run side by side: the devices on the critics axis.
    """
    views = critic_view(tables, Loop(batch.grid, batch.samples, batch.velocity),
                        pipeline.render)
    if batch.audio is not None:
        views = jnp.where(batch.is_audio[:, None], batch.audio, views)
    features = mfcc(views, pipeline.features)  # once per loop, shared by the K critics
    probs = critic_probs(critics, features, pipeline.critic, groups)[:, :n_critics]
    return BatchScores(probs, ensemble_stats(probs))


class Layout(NamedTuple):
    """Where arrays live: a mesh of local devices with axes ("loops", "critics")."""

    mesh: Mesh
    loops: NamedSharding
    critics: NamedSharding
    replicated: NamedSharding

    @property
    def n_loop_devices(self) -> int:
        return self.mesh.shape["loops"]

    @property
    def n_model_devices(self) -> int:
        return self.mesh.shape["critics"]


def make_layout(devices: Sequence[jax.Device], model_shards: int = 1) -> Layout:
    """Loops sharded over ``len(devices) // model_shards`` devices, critics over
    ``model_shards`` (replicated when 1).

    Raises:
      DdjaxError: ``model_shards`` does not divide the number of devices.
    """
    n = len(devices)
    if n % model_shards:
        raise DdjaxError(f"--model-shards {model_shards} must divide the {n} local devices")
    mesh = Mesh(np.array(devices).reshape(n // model_shards, model_shards),
                ("loops", "critics"))
    return Layout(mesh, NamedSharding(mesh, P("loops")), NamedSharding(mesh, P("critics")),
                  NamedSharding(mesh, P()))


@functools.lru_cache(maxsize=8)
def _scorer(pipeline: Pipeline, n_critics: int, mesh: Mesh):
    out = NamedSharding(mesh, P("loops"))
    return jax.jit(functools.partial(score_batch, pipeline=pipeline, n_critics=n_critics,
                                     groups=mesh.shape["critics"]),
                   out_shardings=BatchScores(out, EnsembleStats(out, out, out)))


def pad_critics(stacked: dict, multiple: int) -> dict:
    """Repeats the last critic so that K is a multiple of ``multiple`` (its scores are
    dropped by ``score_batch``)."""
    k = jax.tree_util.tree_leaves(stacked)[0].shape[0]
    extra = -k % multiple
    if not extra:
        return stacked
    return jax.tree_util.tree_map(
        lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)]), stacked)


class Scorer:
    """An ensemble and a kit placed on a layout; scores host batches."""

    def __init__(self, ensemble: Ensemble, kit: Kit, pipeline: Pipeline, layout: Layout):
        self.layout, self.pipeline, self.n_critics = layout, pipeline, len(ensemble)
        self.tables = jax.device_put(render_tables(kit.audio, pipeline.render),
                                     layout.replicated)
        self.critics = jax.device_put(pad_critics(ensemble.variables,
                                                  layout.n_model_devices), layout.critics)
        self._fn = _scorer(pipeline, self.n_critics, layout.mesh)

    def padded_size(self, n: int) -> int:
        d = self.layout.n_loop_devices
        return -(-n // d) * d

    def __call__(self, items: Sequence[Item | None]) -> BatchScores:
        """Dispatches one batch (asynchronously); rows follow ``items``, padded."""
        return self._fn(self.tables, self.critics, self.batch_arrays(items))

    def batch_arrays(self, items: Sequence[Item | None]) -> Batch:
        """The items as a ``Batch`` on the layout, padded to the loop devices."""
        loops = self.pipeline.loops
        size = self.padded_size(len(items))
        grid = np.zeros((size, loops.n_tracks, loops.n_steps), bool)
        samples = np.tile(np.arange(loops.n_tracks, dtype=np.int32), (size, 1))
        velocity = np.full(grid.shape, FULL_VELOCITY, np.int32)
        has_audio = any(it is not None and it.audio is not None for it in items)
        audio = np.zeros((size, self.pipeline.render.bar_samples), np.float32) \
            if has_audio else None
        is_audio = np.zeros(size, bool) if has_audio else None
        for row, item in enumerate(items):
            if item is None:
                continue
            if item.audio is not None:
                audio[row], is_audio[row] = item.audio, True
            else:
                grid[row], samples[row] = item.grid, item.samples
                if item.velocity is not None:
                    velocity[row] = item.velocity
        put = lambda x: None if x is None else jax.device_put(x, self.layout.loops)
        return Batch(put(grid), put(samples), put(velocity), put(audio), put(is_audio))
