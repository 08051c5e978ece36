"""Sampler stage, the engine: a kit and a critic bound to the pipeline, on device, for the
thin Python shell (the CLI, sessions, benchmarks). It builds the target (the critic's
score, the loop prior, the loops' support) and runs ``SamplerConfig``'s kernel and driver.

The jit-compiled sampler is module-level, compiled once per shape and setting and shared
by every Engine.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ddjax.core import loops as loops_lib
from ddjax.core import variations
from ddjax.core.drums import kind_ids
from ddjax.core.ensemble import REDUCTIONS, ensemble_score
from ddjax.core.loops import Loop
from ddjax.core.pipeline import LoopSpace, Pipeline, ScoreParams, critic_score
from ddjax.core.render import (
    host_listening_render,
    listening_render,
    loop_render,
    render_tables,
)
from ddjax.errors import DdjaxError
from ddjax.io.kit import Kit, cut
from ddjax.io.loudness import normalize
from ddjax.io.patterns import load_loop_prior
from ddjax.sampling import sampler


def _score_fn(pipeline: Pipeline, reduction: str | None):
    if reduction is None:
        return functools.partial(critic_score, pipeline=pipeline)
    return functools.partial(ensemble_score, pipeline=pipeline, reduction=reduction)


def _chains(keys, params, space, start, *, pipeline, config, reduction):
    """Chains, one per key, from ``start`` (one loop) or from the prior (None), run to the
    end: pure, on one device."""
    pairs = jax.vmap(jax.random.split)(keys)
    config_loops = pipeline.loops
    if start is None:
        starts = jax.vmap(lambda k: loops_lib.random_loop(
            k, space.allowed, config_loops, space.kinds, space.patterns))(pairs[:, 0])
        support_fn = loops_lib.support(config_loops)
    else:  # variations: chains start near ``start`` and stay near it
        starts = jax.vmap(lambda k: variations.variation_start(k, start, config_loops))(
            pairs[:, 0])
        support_fn = variations.near(start, config_loops)
    log_prior_fn = None if config_loops.prior == "uniform" else functools.partial(
        loops_lib.log_prior, kinds=space.kinds, config=config_loops, patterns=space.patterns)
    # The loops' rules reach the kernels from here: the target's support (no sample on two
    # tracks; every track playing, under the learned prior; near the source, for
    # variations) and the proposal that respects the allowed samples.
    target = sampler.Target(_score_fn(pipeline, reduction), log_prior_fn, support_fn)
    propose_fn = functools.partial(loops_lib.propose, allowed=space.allowed,
                                   config=pipeline.loops)
    kernel, driver = sampler.build(config, target, propose_fn)
    state = kernel.init(starts, params)
    return driver(pairs[:, 1], state, lambda k, s: kernel.step(k, s, params))


def loop_prior_arrays(config: loops_lib.LoopConfig, style: str | None):
    """The learned prior's arrays for ``style`` (None: every style) on device, or None
    under another prior."""
    if config.prior != "learned":
        return None
    arrays = load_loop_prior().for_style(style)
    return jax.tree_util.tree_map(jnp.asarray, arrays)


def _mesh(n_chains: int) -> Mesh:
    """The default backend's devices that the chains are split over: all of them, or one
    per chain when there are fewer chains (``hardware.use_all_cores`` makes one per CPU
    core)."""
    devices = jax.devices()
    return Mesh(np.array(devices[:max(1, min(len(devices), n_chains))]), ("chains",))


# Module-level and keyed on hashable settings, so every Engine (one per Session, say)
# with the same pipeline and shapes shares one compiled program.
@functools.partial(jax.jit, static_argnames=("n_chains", "pipeline", "config", "reduction",
                                             "mesh"))
def _sample(key, params, space, start, *, n_chains, pipeline, config, reduction, mesh):
    # Each device runs its own chains with no communication; a chain's path depends on its
    # key only (``sampler.chain_keys``), so the loops do not depend on the device count.
    n_devices = mesh.devices.size
    per_device = -(-n_chains // n_devices)
    keys = sampler.chain_keys(key, per_device * n_devices)
    keys = keys.at[n_chains:].set(keys[n_chains - 1])  # padding repeats the last chain
    run = jax.shard_map(
        functools.partial(_chains, pipeline=pipeline, config=config, reduction=reduction),
        mesh=mesh, in_specs=(P("chains"), P(), P(), P()), out_specs=P("chains"),
        check_vma=False)
    out = run(keys, params, space, start)
    return jax.tree_util.tree_map(lambda x: x[:n_chains], out)


@functools.partial(jax.jit, static_argnames=("pipeline", "config", "reduction", "mesh"))
def _sample_batch(keys, tables, critics, space, *, pipeline, config, reduction, mesh):
    # keys [groups, chains], critics stacked over groups: group g's chains target critic g.
    # Groups split over the devices (padded by repeating the last); a chain's path depends
    # on its key and its critic only.
    n_groups, n_devices = keys.shape[0], mesh.devices.size
    padded = -(-n_groups // n_devices) * n_devices
    pad = lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], padded - n_groups, axis=0)])
    keys, critics = pad(keys), jax.tree_util.tree_map(pad, critics)

    def groups(keys, critics):
        def group(chain_keys, critic):
            return _chains(chain_keys, ScoreParams(tables, critic), space, None,
                           pipeline=pipeline, config=config, reduction=reduction)
        return jax.vmap(group)(keys, critics)

    run = jax.shard_map(groups, mesh=mesh, in_specs=(P("chains"), P("chains")),
                        out_specs=P("chains"), check_vma=False)
    return jax.tree_util.tree_map(lambda x: x[:n_groups], run(keys, critics))


@functools.partial(jax.jit, static_argnames=("pipeline", "reduction"))
def _score(params, loops, *, pipeline, reduction):
    return _score_fn(pipeline, reduction)(params, loops)


_listen = jax.jit(listening_render, static_argnames=("config",))
_loop_bar = jax.jit(loop_render, static_argnames=("config",))


class Engine:
    """A kit and a critic, ready to sample and render.

    Args:
      kit: from ``load_kit`` (loaded with ``pipeline.render.bar_samples``).
      critic: critic variables (``init_critic`` or ``load_critic``), or with
        ``reduction``, K critics' variables stacked on a leading axis
        (``ensemble.stack_critics``).
      pipeline: the settings of every stage.
      reduction: None for one critic; "mean" or "vote" to target an ensemble's mean
        P(like) or its share of critics voting like (see ``ddjax.core.ensemble``).
      style: the learned loop prior's style (``ddjax.io.patterns``), None for its mixture
        of every style.
      loudness: the integrated loudness, in LUFS, of the audio ``listen``, ``audition``
        and ``loop_bar`` give (``ddjax.io.loudness``; the CLI's default is
        ``DEFAULT_LUFS``), or None for the raw mix, as simulated raters hear it. The critic
        never hears it: scores come from the render's own levels.
    """

    def __init__(self, kit: Kit, critic: dict, pipeline: Pipeline = Pipeline(),
                 reduction: str | None = None, style: str | None = None,
                 loudness: float | None = None):
        if reduction is not None and reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be None or one of {REDUCTIONS}")
        self.kit = kit
        self.pipeline = pipeline
        self.reduction = reduction
        self.loudness = loudness
        self.allowed = jnp.asarray(loops_lib.allowed_samples(pipeline.loops, kit.is_kick))
        self.space = LoopSpace(self.allowed, jnp.asarray(kind_ids(kit.kinds)),
                               loop_prior_arrays(pipeline.loops, style))
        self.style = style
        self.params = ScoreParams(render_tables(kit.audio, pipeline.render), critic)

    def set_style(self, style: str | None) -> None:
        """Samples from the learned prior's ``style`` (None: every style) from here on;
        the same shapes, so nothing compiles again. A DdjaxError where there is no such
        style; nothing to do under another prior."""
        self.space = self.space._replace(patterns=loop_prior_arrays(self.pipeline.loops, style))
        self.style = style

    def _params(self, critic: dict | None) -> ScoreParams:
        return self.params if critic is None else self.params._replace(critic=critic)

    def sample(self, key: jax.Array, n_chains: int, config: sampler.SamplerConfig,
               critic: dict | None = None, start: Loop | None = None
               ) -> tuple[sampler.ChainState, sampler.RunInfo]:
        """Starts ``n_chains`` chains from the prior and runs them; all on device, split
        over the backend's devices. The result is on the first device.

        ``critic`` replaces the engine's critic variables for this call (same shapes, so no
        recompilation): a critic in training, say. ``start`` (one loop: ``grid``
        bool[tracks, steps], ``samples`` int32[tracks], no sample twice) starts every chain
        near it instead of from the prior: variations on a loop ("more like this", within
        ``LoopConfig.distance`` cells and ``variations.variation_swaps`` samples).
        """
        if start is not None:
            start = self.check_start(start)
        out = _sample(key, self._params(critic), self.space, start, n_chains=n_chains,
                      pipeline=self.pipeline, config=config, reduction=self.reduction,
                      mesh=_mesh(n_chains))
        return jax.device_put(out, jax.devices()[0])

    def sample_batch(self, keys: jax.Array, critics: dict, config: sampler.SamplerConfig
                     ) -> tuple[sampler.ChainState, sampler.RunInfo]:
        """Many groups of chains from the prior in one call, each group with its own critic
        (many people's sessions at once, say): ``keys`` [groups, chains] are each chain's
        key (``sampler.chain_keys``), ``critics`` the groups' critic variables stacked on a
        leading axis. Every leaf of the result is [groups, chains, ...]; group g is what
        ``sample`` gives for its critic and keys, up to float rounding. Groups split over
        the backend's devices."""
        out = _sample_batch(keys, self.params.tables, critics, self.space,
                            pipeline=self.pipeline, config=config, reduction=self.reduction,
                            mesh=_mesh(keys.shape[0]))
        return jax.device_put(out, jax.devices()[0])

    def check_start(self, start: Loop) -> Loop:
        """``start`` as device arrays, or a DdjaxError naming what does not fit this
        engine's loop space (its shape, a sample used twice, a sample a track may not use,
        the four-on-the-floor row)."""
        config = self.pipeline.loops
        grid = np.asarray(start.grid, bool)
        samples = np.asarray(start.samples, np.int32)
        velocity = None if start.velocity is None else np.asarray(start.velocity, np.int32)
        if velocity is not None and velocity.shape != grid.shape:
            raise DdjaxError("the loop to start from has velocities of another shape than its"
                             " grid")
        if (grid.shape != (config.n_tracks, config.n_steps)
                or samples.shape != (config.n_tracks,)):
            raise DdjaxError(f"the loop to start from has a {grid.shape[0]}x{grid.shape[-1]}"
                             f" grid; this engine's loops are {config.n_tracks} tracks x"
                             f" {config.n_steps} steps")
        if len(set(samples.tolist())) != samples.size:
            raise DdjaxError("the loop to start from uses a sample on two tracks")
        allowed = np.asarray(self.allowed)
        if not allowed[np.arange(samples.size), samples].all() or (
                config.four_on_the_floor
                and not np.array_equal(grid[0], loops_lib.fixed_row(config))):
            raise DdjaxError("the loop to start from breaks --four-on-floor (track 0: a kick"
                             " on steps 0, 4, 8 and 12 only)")
        return loops_lib.with_velocity(Loop(
            jnp.asarray(grid), jnp.asarray(samples),
            None if velocity is None else jnp.asarray(velocity)))

    def score(self, loops: Loop, critic: dict | None = None) -> jax.Array:
        """P(like) of a batch of loops (the ensemble's mean or vote with ``reduction``)."""
        return _score(self._params(critic), loops, pipeline=self.pipeline,
                      reduction=self.reduction)

    def lower_sample(self, key: jax.Array, n_chains: int, config: sampler.SamplerConfig):
        """``sample`` lowered for these settings (for compile-time measurements)."""
        return _sample.lower(key, self.params, self.space, None, n_chains=n_chains,
                             pipeline=self.pipeline, config=config, reduction=self.reduction,
                             mesh=_mesh(n_chains))

    def lower_score(self, loops: Loop):
        """The score function lowered for ``loops`` (for XLA's cost analysis)."""
        return _score.lower(self.params, loops, pipeline=self.pipeline,
                            reduction=self.reduction)

    def listen(self, loops: Loop) -> np.ndarray:
        """The listening render of a batch of loops, on the host, at ``loudness``:
        float32[batch, samples]."""
        audio = np.asarray(_listen(self.kit.audio, loops, config=self.pipeline.render))
        return normalize(audio, self.kit.sr, self.loudness)

    def audition(self, loop: Loop, bpm: float, swing: float, bars: int) -> np.ndarray:
        """The first ``bars`` bars of one loop's listening render at any tempo and swing,
        on the host with nothing to compile (``render.host_listening_render``):
        float32[bars * bar_samples] at that tempo. Each of the loop's samples is cut to one
        bar of that tempo as the kit stage would cut it, so a faster tempo needs no other
        kit."""
        config = dataclasses.replace(self.pipeline.render, bpm=bpm, swing=swing,
                                     repeats=bars, tail_seconds=0.0)
        rows = cut(np.asarray(jnp.take(self.kit.audio, jnp.asarray(loop.samples), axis=0)),
                   config.bar_samples, self.kit.sr)
        audio = host_listening_render(
            rows, np.asarray(loop.grid, bool),
            None if loop.velocity is None else np.asarray(loop.velocity),
            config)[:bars * config.bar_samples]
        return normalize(audio, self.kit.sr, self.loudness, looping=True)

    def loop_bar(self, loops: Loop) -> np.ndarray:
        """One seamless bar of each loop (``render.loop_render``), on the host:
        float32[batch, bar_samples], each at ``loudness`` as it loops."""
        bars = np.asarray(_loop_bar(self.kit.audio, loops, config=self.pipeline.render))
        return normalize(bars, self.kit.sr, self.loudness, looping=True)
