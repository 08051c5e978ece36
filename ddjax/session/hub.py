"""One engine for many sessions: their device work batched into shared calls.

A server with many people rating at once (``ddjax serve --study``) gives every session
the same ``Hub``. Sessions share its engines (one per kit, pipeline, style and loudness:
the render tables and the compiled programs exist once) and the learner's initial state
where it does not depend on the person (``initial_state``). Their device work goes
through the hub's one worker thread, which runs what many sessions ask for at once as one
call:

- ``sample``: a session's next loop. Requests for the same engine and sampler run as the
  groups of one ``Engine.sample_batch`` call, each group with its session's critic (its
  Thompson draw), so 8 people's chains cost about what one person's cost alone on a
  2-core CPU (``bench/study_load.py``).
- ``update``: a session's learner update, the same way: ``vmap`` of ``Learner.update``
  over the sessions' states (those of one capacity).
- ``sample_pool``: long runs (a study's phase II pool) cut into chunks of chains, each
  run in its turn, so a participant's pause holds up another's next loop by one chunk at
  most.

Requests are served oldest first; the requests queued behind the oldest that can share
its call go with it, up to ``max_batch`` (batches are cut into powers of two, so a few
programs serve every count). A chain's loop depends on its key and its critic only, so a
session draws the same loops in law whatever else is in its batch (the exact floats, and
so rarely a loop, can differ with the batch's size).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import threading
from typing import Any, Callable

import jax
import jax.numpy as jnp

from ddjax.core.pipeline import Pipeline
from ddjax.io.kit import Kit
from ddjax.learning.base import Learner, LearnerState, capacity
from ddjax.sampling import sampler
from ddjax.sampling.engine import Engine

__all__ = ["Hub", "DEFAULT_MAX_BATCH", "POOL_CHUNK"]

DEFAULT_MAX_BATCH = 8  # sessions per call: 16 at once ran slower than two calls of 8
POOL_CHUNK = 2  # chains per chunk of a long run: at most ~0.3 s of another's wait


def _powers_of_two(n: int, most: int) -> list[int]:
    """``n`` cut into powers of two, largest first, none above ``most``."""
    sizes = []
    while n:
        size = min(most, 1 << (n.bit_length() - 1))
        sizes.append(size)
        n -= size
    return sizes


def _stack(trees: list) -> Any:
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def _row(tree: Any, index: int) -> Any:
    return jax.tree_util.tree_map(lambda x: x[index], tree)


@dataclasses.dataclass
class _Request:
    """One session's call: ``group`` says which calls it may share; ``args`` are its
    batched arguments; ``background``: a chunk of a long run, which goes alone."""

    group: tuple
    args: tuple
    future: concurrent.futures.Future
    background: bool = False


class Hub:
    """Engines, initial states and one device worker, shared by many sessions.

    Args:
      max_batch: the most sessions in one call.
    """

    def __init__(self, max_batch: int = DEFAULT_MAX_BATCH):
        self.max_batch = max_batch
        self._engines: dict[tuple, Engine] = {}
        self._initial: dict[tuple, LearnerState] = {}
        self._batched_updates: dict[Learner, Callable] = {}
        self._queue: collections.deque[_Request] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._context: dict[tuple, dict] = {}  # each group's engine, learner, settings
        self.calls = collections.Counter()  # calls run, by kind and batch size
        self._thread = threading.Thread(target=self._serve, name="ddjax-hub", daemon=True)
        self._thread.start()

    # -- what sessions share -----------------------------------------------------------

    def engine(self, kit: Kit, pipeline: Pipeline, style: str | None,
               loudness: float | None) -> Engine:
        """The one engine of these settings (built on first use)."""
        key = (id(kit), pipeline, style, loudness)
        with self._lock:
            engine = self._engines.get(key)
        if engine is None:
            built = Engine(kit, None, pipeline, style=style, loudness=loudness)
            with self._lock:
                engine = self._engines.setdefault(key, built)
        return engine

    def initial_state(self, learner: Learner, key: jax.Array, engine: Engine,
                      shared: bool) -> LearnerState:
        """``learner.init`` on ``engine``'s tables; computed once per learner and engine
        where the learner's initial state does not depend on the key (``shared``)."""
        if not shared:
            return learner.init(key, engine.params.tables, engine.allowed)
        cache_key = (learner, id(engine))
        with self._lock:
            state = self._initial.get(cache_key)
        if state is None:
            built = learner.init(key, engine.params.tables, engine.allowed)
            with self._lock:
                state = self._initial.setdefault(cache_key, built)
        return state

    # -- batched device work -----------------------------------------------------------

    def sample(self, engine: Engine, keys: jax.Array, critic: dict,
               config: sampler.SamplerConfig) -> tuple[sampler.ChainState, sampler.RunInfo]:
        """One session's chains (``keys``: one per chain) targeting ``critic``, from the
        prior, run with every other session's that asks meanwhile (``Engine.sample``'s
        result for those keys)."""
        return self._call(("sample", id(engine), keys.shape[0], config),
                          (keys, critic), engine=engine, config=config)

    def update(self, learner: Learner, key: jax.Array, state: LearnerState, tables,
               loop, liked) -> tuple[LearnerState, jax.Array]:
        """``learner.update`` of one session, batched with others' of the same capacity."""
        return self._call(("update", learner, capacity(state), id(tables)),
                          (key, state, loop, liked), learner=learner, tables=tables)

    def sample_pool(self, engine: Engine, key: jax.Array, n_chains: int, critic: dict,
                    config: sampler.SamplerConfig,
                    progress: Callable[[int], None] | None = None
                    ) -> tuple[sampler.ChainState, sampler.RunInfo]:
        """``Engine.sample(key, n_chains, config, critic)``'s chains (the same keys), run in
        chunks of ``POOL_CHUNK``, each in its turn among the sessions' calls; ``progress``
        hears the chains done after each chunk."""
        keys = sampler.chain_keys(key, n_chains)
        parts = []
        for first in range(0, n_chains, POOL_CHUNK):
            chunk = keys[first:first + POOL_CHUNK]
            group = ("pool", id(engine), config, chunk.shape[0])
            parts.append(self._call(group, (chunk[:, None], critic), background=True,
                                    engine=engine, config=config))
            if progress is not None:
                progress(min(n_chains, first + POOL_CHUNK))
        return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *parts)

    def warm_up(self, engine: Engine, learner: Learner, state: LearnerState, tables, loop,
                critic: dict, n_chains: int, config: sampler.SamplerConfig,
                pool_config: sampler.SamplerConfig | None = None) -> None:
        """Compiles (or loads from JAX's cache) every program the worker may run for these
        settings: each batch size of ``sample`` and ``update`` up to ``max_batch``, and the
        chunks of ``sample_pool`` under ``pool_config``; before anyone waits on them. Runs
        in the caller's thread."""
        sizes = _powers_of_two(2 * self.max_batch - 1, self.max_batch)  # 8, 4, 2, 1
        for size in sizes:
            keys = jnp.stack([sampler.chain_keys(jax.random.key(i), n_chains)
                              for i in range(size)])
            jax.block_until_ready(engine.sample_batch(keys, _stack([critic] * size), config))
            self._run_update([_Request((), (jax.random.key(i), state, loop, True), None)
                              for i in range(size)], learner, tables)
        if pool_config is not None:
            for size in range(1, POOL_CHUNK + 1):
                keys = sampler.chain_keys(jax.random.key(0), size)[:, None]
                jax.block_until_ready(
                    engine.sample_batch(keys, _stack([critic] * size), pool_config))

    def close(self) -> None:
        """Stops the worker once the queued calls are done."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    # -- the worker --------------------------------------------------------------------

    def _call(self, group: tuple, args: tuple, background: bool = False, **context):
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the hub is closed")
            self._queue.append(_Request(group, args, future, background))
            self._context[group] = context
            self._wake.notify()
        return future.result()

    def _next_batch(self) -> list[_Request] | None:
        """The oldest request and the queued ones that share its call (a chunk of a long
        run goes alone); None once closed and empty. Oldest first, so a long run gets a
        chunk in each round of the sessions' calls: it neither starves nor holds anyone
        up by more than a chunk."""
        with self._wake:
            while not self._queue and not self._closed:
                self._wake.wait()
            if not self._queue:
                return None
            first = self._queue[0]
            batch = [first] if first.background else [
                r for r in self._queue if r.group == first.group][:self.max_batch]
            for request in batch:
                self._queue.remove(request)
            return batch

    def _serve(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                results = self._run(batch)
            except BaseException as err:  # noqa: B036 - each waiting session raises it
                for request in batch:
                    request.future.set_exception(err)
                continue
            for request, result in zip(batch, results):
                request.future.set_result(result)

    def _run(self, batch: list[_Request]) -> list:
        kind = batch[0].group[0]
        context = self._context[batch[0].group]
        results = []
        start = 0
        for size in _powers_of_two(len(batch), self.max_batch):
            part = batch[start:start + size]
            start += size
            self.calls[(kind, size)] += 1
            if kind == "update":
                results += self._run_update(part, **context)
            else:
                results += self._run_sample(part, kind == "pool", **context)
        return results

    def _run_sample(self, part: list[_Request], pool: bool, engine: Engine,
                    config: sampler.SamplerConfig) -> list:
        if pool:  # one critic, one chain per group: the chunk's chains over the devices
            keys, critic = part[0].args
            out = engine.sample_batch(keys, _stack([critic] * keys.shape[0]), config)
            return [jax.tree_util.tree_map(lambda x: x[:, 0], out)]
        keys = jnp.stack([r.args[0] for r in part])
        out = engine.sample_batch(keys, _stack([r.args[1] for r in part]), config)
        jax.block_until_ready(out)
        return [_row(out, i) for i in range(len(part))]

    def _run_update(self, part: list[_Request], learner: Learner, tables) -> list:
        batched = self._batched_updates.get(learner)
        if batched is None:
            batched = jax.jit(jax.vmap(learner.update, in_axes=(0, 0, None, 0, 0)))
            self._batched_updates[learner] = batched
        keys, states, loops, liked = (_stack([r.args[i] for r in part]) for i in range(4))
        liked = jnp.asarray(liked, bool)
        out = jax.block_until_ready(batched(keys, states, tables, loops, liked))
        return [_row(out, i) for i in range(len(part))]
