"""Sessions: one person's ratings, a critic that learns from them, and nothing lost.

A ``Session`` owns the kit, the critic and its optimizer state, the PRNG key and the
rating history. ``next_loop`` gives a loop to listen to, ``rate`` records a like or a
dislike and trains, and ``run`` drives both from any callable.

Overlap. Training and sampling run on one background worker while the person listens:
after ``rate`` (rating k) the worker trains on rating k, and ``next_loop`` hands out the
loop it sampled meanwhile from the critic trained on ratings 1..k-1. So **the loop shown
after rating k comes from the critic trained on ratings 1..k-1** (``Loop.critic_version``
is that count), and the wait after a rating is only what is left of one training burst
and one sampling run once the person has listened.

On disk (``directory``), every rating is fsync'ed before ``rate`` returns:

- ``session.json``: the kit folder, seed and settings;
- ``ratings.jsonl``: append-only, one line per rating: the loop's JSON, the rating, the
  time, and the critic version that proposed it;
- ``wav/loop_NNNNN.wav``: every rated loop's listening render;
- ``checkpoint.msgpack``: the critic, optimizer state and the number of ratings it has
  trained on, written atomically after each training burst; ``latest.critic`` beside it
  is the same critic as a plain critic file, and ``initial.critic`` the untrained one.

Re-opening a directory resumes: same history, same critic. A checkpoint behind the log
catches up by training on the missing ratings; a torn last log line is reported and
skipped.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import functools
import json
import os
import pathlib
import threading
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from ddjax import loops as loops_lib
from ddjax.critic import init_critic, save_critic
from ddjax.engine import Engine, Pipeline
from ddjax.errors import DdjaxError
from ddjax.files import atomic_write_bytes, loop_record, write_wav
from ddjax.kit import Kit, load_kit
from ddjax.sampler import SamplerConfig
from ddjax.training import Ratings, TrainConfig, TrainState, init_train_state, train_steps

LOG_NAME = "ratings.jsonl"
CHECKPOINT_NAME = "checkpoint.msgpack"
CRITIC_NAME = "latest.critic"
INITIAL_CRITIC_NAME = "initial.critic"
META_NAME = "session.json"
CHECKPOINT_FORMAT = "ddjax-session-checkpoint"
CHECKPOINT_VERSION = 1
INITIAL_CAPACITY = 256


# Module-level, so every Session with the same settings shares one compiled function.
_train_jit = jax.jit(train_steps, static_argnames=("n_steps", "pipeline", "config"))


class SessionWarning(UserWarning):
    """Something in a session directory was repaired or skipped; the message says what."""


@dataclasses.dataclass(frozen=True)
class SessionConfig:
    """How a session picks loops.

    Attributes:
      n_chains: MH chains run per loop to show; one of them, picked at random, is shown.
        Any one chain's final loop has the same distribution, so 1 (the default) costs
        least; 8 took 0.5 s more per rating on a 2-core CPU, for the same loops in law.
      n_iters: MH iterations per chain.
      temperature: MH temperature.
      seed: seeds the critic's initialisation, the sampler and training.
    """

    n_chains: int = 1
    n_iters: int = 30
    temperature: float = 1.0
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Loop:
    """A loop as the person meets it.

    Attributes:
      id: unique within the session.
      audio: float32[samples], the listening render.
      grid: bool[tracks, steps].
      samples: int[tracks], kit indices.
      sample_paths: each track's sample, relative to the kit folder.
      score: the proposing critic's P(like).
      critic_version: how many ratings that critic had trained on.
      bpm: tempo.
    """

    id: int
    audio: np.ndarray
    grid: np.ndarray
    samples: np.ndarray
    sample_paths: tuple[str, ...]
    score: float
    critic_version: int
    bpm: float

    def record(self) -> dict:
        """The loop's JSON object (``files.loop_record``)."""
        return loop_record(self.grid, list(self.sample_paths), bpm=self.bpm, score=self.score)


class Rating(NamedTuple):
    loop_id: int
    grid: np.ndarray
    samples: np.ndarray
    liked: bool
    critic_version: int


def _read_log(path: pathlib.Path, kit: Kit) -> list[Rating]:
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    ratings, missing = [], set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            loop = entry["loop"]
            grid = np.array(loop["grid"], dtype=bool)
            names = loop["samples"]
            liked = bool(entry["liked"])
        except (ValueError, KeyError, TypeError):
            if number >= len(lines) - 1:  # the last line: a write cut short by a crash
                warnings.warn(SessionWarning(
                    f"{path}: skipped a torn last line ({len(line)} bytes), the rating being"
                    " written when the session stopped"), stacklevel=3)
                continue
            raise DdjaxError(f"{path}: line {number} is not a rating record; fix or delete that"
                             " line to resume") from None
        missing.update(n for n in names if n not in kit.names)
        if not missing:
            ratings.append(Rating(int(entry["id"]), grid,
                                  np.array([kit.names.index(n) for n in names], np.int32),
                                  liked, int(entry.get("critic_version", 0))))
    if missing:
        raise DdjaxError(f"the session's ratings use samples missing from the kit {kit.root}: "
                         + ", ".join(sorted(missing)) + "; pass the session's kit with --kit")
    return ratings


class Session:
    """One person's rating session. Use ``Session.open`` for an on-disk session.

    Args:
      kit: the loaded kit.
      directory: where to keep everything, or None for a throw-away session.
      pipeline: every stage's settings.
      train: training settings.
      config: sampling settings and the seed.
    """

    def __init__(self, kit: Kit, directory: str | os.PathLike | None = None, *,
                 pipeline: Pipeline = Pipeline(), train: TrainConfig = TrainConfig(),
                 config: SessionConfig = SessionConfig()):
        self.kit, self.pipeline, self.train_config, self.config = kit, pipeline, train, config
        self.directory = None if directory is None else pathlib.Path(directory)
        self._key = jax.random.key(config.seed)
        self.initial_critic = init_critic(jax.random.fold_in(self._key, 0), pipeline.critic)
        self.engine = Engine(kit, self.initial_critic, pipeline)
        self._sampler = SamplerConfig("mh", config.n_iters, config.temperature)
        self._state = init_train_state(self.initial_critic, train)
        self._n_trained = 0
        self.history: list[Rating] = []
        self._ratings = self._empty_ratings(INITIAL_CAPACITY)
        self._train = functools.partial(_train_jit, tables=self.engine.params.tables,
                                        n_steps=train.steps_per_rating, pipeline=pipeline,
                                        config=train)
        self._next_id = 0
        self._n_candidates = 0
        self._lock = threading.Lock()
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._pending: list[concurrent.futures.Future] = []
        if self.directory is not None:
            self._open_directory()
        self._prepared = self._worker.submit(self._candidate)
        # Training compiles before the first loop is shown, so no wait after a rating
        # ever includes compilation.
        self._warm = self._worker.submit(self._warm_up) if train.steps_per_rating else None

    @classmethod
    def open(cls, directory: str | os.PathLike, kit_dir: str | os.PathLike | None = None,
             **settings) -> "Session":
        """Opens (resumes) or creates the session in ``directory``.

        The kit defaults to the one recorded in the directory's ``session.json``.
        """
        directory = pathlib.Path(directory)
        meta_path = directory / META_NAME
        pipeline = settings.get("pipeline", Pipeline())
        if kit_dir is None:
            if not meta_path.exists():
                raise DdjaxError(f"{directory} is not a ddjax session; pass the kit to start one")
            kit_dir = json.loads(meta_path.read_text())["kit"]
        kit = load_kit(kit_dir, pipeline.render.bar_samples, sr=pipeline.render.sr,
                       min_samples=pipeline.loops.n_tracks)
        return cls(kit, directory, **settings)

    # -- the person's side -------------------------------------------------------------

    def next_loop(self) -> Loop:
        """The next loop to listen to (waits for the worker if it is still sampling)."""
        candidate = self._prepared.result()
        if self._warm is not None:
            self._warm.result()
            self._warm = None
        self._prepared = self._worker.submit(self._candidate)
        return candidate

    def rate(self, loop: Loop, liked: bool) -> None:
        """Records a rating on disk (fsync'ed), then trains on it in the background."""
        with self._lock:
            rating = Rating(loop.id, loop.grid, loop.samples, bool(liked), loop.critic_version)
            if self.directory is not None:
                self._append(loop, rating)
            self.history.append(rating)
            index = len(self.history) - 1
        self._pending.append(self._worker.submit(self._train_on, index))

    def run(self, rate_fn: Callable[[Loop], bool | None], n: int) -> list[tuple[Loop, bool]]:
        """Shows loops to ``rate_fn`` until it has rated ``n`` (None skips a loop)."""
        rated = []
        while len(rated) < n:
            loop = self.next_loop()
            liked = rate_fn(loop)
            if liked is None:
                continue
            self.rate(loop, bool(liked))
            rated.append((loop, bool(liked)))
        return rated

    def wav_path(self, loop_id: int) -> pathlib.Path:
        """Where a rated loop's listening render is kept (on-disk sessions)."""
        return self.directory / "wav" / f"loop_{loop_id:05d}.wav"

    @property
    def n_ratings(self) -> int:
        return len(self.history)

    @property
    def like_rate(self) -> float:
        """Share of ratings so far that were likes (0 before any)."""
        return float(np.mean([r.liked for r in self.history])) if self.history else 0.0

    def critic(self) -> dict:
        """The critic after training on every rating so far (waits for training)."""
        self.wait()
        return self._state.variables

    def wait(self) -> None:
        """Blocks until every submitted training burst has finished."""
        for future in self._pending:
            future.result()
        self._pending.clear()

    def close(self) -> None:
        """Finishes training, then stops the worker."""
        self.wait()
        self._worker.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the worker's side -------------------------------------------------------------

    def _empty_ratings(self, capacity: int) -> Ratings:
        c = self.pipeline.loops
        return Ratings(loops_lib.Loop(jnp.zeros((capacity, c.n_tracks, c.n_steps), bool),
                                      jnp.zeros((capacity, c.n_tracks), jnp.int32)),
                       jnp.zeros((capacity,), bool), jnp.int32(0))

    def _add_to_data(self, index: int) -> None:
        """Puts rating ``index`` into the device data set, doubling its capacity if full
        (a recompile per doubling, not per rating)."""
        rating = self.history[index]
        capacity = self._ratings.liked.shape[0]
        if index >= capacity:
            bigger = self._empty_ratings(2 * capacity)
            self._ratings = jax.tree_util.tree_map(
                lambda big, small: big.at[:capacity].set(small) if small.ndim else small,
                bigger, self._ratings)
        r = self._ratings
        self._ratings = Ratings(
            loops_lib.Loop(r.loops.grid.at[index].set(rating.grid),
                           r.loops.samples.at[index].set(rating.samples)),
            r.liked.at[index].set(rating.liked), jnp.int32(index + 1))

    def _train_on(self, index: int) -> None:
        """Adds rating ``index`` to the data and runs one training burst (on the worker)."""
        self._add_to_data(index)
        if self.train_config.steps_per_rating:
            key = jax.random.fold_in(jax.random.fold_in(self._key, 1), index)
            self._state, _ = self._train(key, self._state, self._ratings)
        self._n_trained = index + 1
        if self.directory is not None:
            self._checkpoint()

    def _warm_up(self) -> None:
        """Compiles the training burst on throw-away data; the state is left as it was."""
        dummy = self._ratings._replace(count=jnp.int32(1))
        jax.block_until_ready(self._train(jax.random.key(0), self._state, dummy))

    def _candidate(self) -> Loop:
        """Samples one loop from the current critic (runs on the worker)."""
        key = jax.random.fold_in(jax.random.fold_in(self._key, 2), self._n_candidates)
        self._n_candidates += 1
        version, critic = self._n_trained, self._state.variables
        state, _ = self.engine.sample(key, self.config.n_chains, self._sampler, critic=critic)
        chain = int(jax.random.randint(jax.random.fold_in(key, 1), (), 0, self.config.n_chains))
        loop = jax.tree_util.tree_map(lambda x: x[chain:chain + 1], state.loop)
        audio = self.engine.listen(loop)[0]
        grid, samples = np.asarray(loop.grid[0]), np.asarray(loop.samples[0])
        with self._lock:
            loop_id = self._next_id
            self._next_id += 1
        return Loop(loop_id, audio, grid, samples,
                    tuple(self.kit.names[i] for i in samples), float(state.score[chain]),
                    version, self.pipeline.render.bpm)

    # -- the disk ------------------------------------------------------------------------

    def _open_directory(self) -> None:
        d = self.directory
        # Every check first (the log, the checkpoint): nothing on disk changes unless the
        # resume can succeed.
        self.history = _read_log(d / LOG_NAME, self.kit)
        n_done = self._restore_checkpoint()
        d.mkdir(parents=True, exist_ok=True)
        (d / "wav").mkdir(exist_ok=True)
        meta = {"kit": str(self.kit.root), "seed": self.config.seed,
                "session": dataclasses.asdict(self.config),
                "train": dataclasses.asdict(self.train_config), "bpm": self.pipeline.render.bpm}
        if not (d / META_NAME).exists():
            atomic_write_bytes(d / META_NAME, (json.dumps(meta, indent=1) + "\n").encode())
        self._repair_log()
        self._next_id = max((r.loop_id for r in self.history), default=-1) + 1
        self._n_candidates = self._next_id
        if not (d / INITIAL_CRITIC_NAME).exists():
            save_critic(d / INITIAL_CRITIC_NAME, self.initial_critic, self.pipeline.critic)
        for index in range(len(self.history)):
            if index < n_done:  # already learnt by the checkpoint's critic
                self._add_to_data(index)
                self._n_trained = index + 1
            else:  # the checkpoint is behind the log: catch up
                self._train_on(index)

    def _repair_log(self) -> None:
        """Rewrites the log without a torn last line, so appends start on a fresh line.
        Runs only once the log and the checkpoint are known to be usable."""
        path = self.directory / LOG_NAME
        if not path.exists():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data[: data.rfind(b"\n") + 1]
            atomic_write_bytes(path, keep)

    def _append(self, loop: Loop, rating: Rating) -> None:
        write_wav(self.wav_path(loop.id), loop.audio, self.kit.sr)
        entry = {"id": loop.id, "loop": loop.record(), "liked": rating.liked,
                 "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                 "critic_version": loop.critic_version}
        with open(self.directory / LOG_NAME, "ab") as f:
            f.write((json.dumps(entry) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())

    def _checkpoint(self) -> None:
        state = jax.device_get(self._state)
        payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                   "n_trained": self._n_trained,
                   "variables": serialization.to_state_dict(state.variables),
                   "opt_state": serialization.to_state_dict(state.opt_state)}
        atomic_write_bytes(self.directory / CHECKPOINT_NAME,
                           serialization.msgpack_serialize(payload))
        save_critic(self.directory / CRITIC_NAME, state.variables, self.pipeline.critic)

    def _restore_checkpoint(self) -> int:
        path = self.directory / CHECKPOINT_NAME
        if not path.exists():
            return 0
        try:
            payload = serialization.msgpack_restore(path.read_bytes())
            if payload.get("format") != CHECKPOINT_FORMAT:
                raise ValueError("not a session checkpoint")
            if payload.get("version") != CHECKPOINT_VERSION:
                raise ValueError(f"version {payload.get('version')}")
            variables = serialization.from_state_dict(self._state.variables,
                                                      payload["variables"])
            opt_state = serialization.from_state_dict(self._state.opt_state,
                                                      payload["opt_state"])
            n_trained = int(payload["n_trained"])
        except Exception as err:  # msgpack/flax raise many types on a bad file
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DdjaxError(f"{path} is not a usable session checkpoint ({reason}); move"
                             f" {CHECKPOINT_NAME} away to retrain from the log"
                             f" ({len(self.history)} ratings)") from None
        if n_trained > len(self.history):
            raise DdjaxError(f"{path} has trained on {n_trained} ratings but {LOG_NAME} holds"
                             f" {len(self.history)}; nothing was changed. Restore the full"
                             f" log, or move {CHECKPOINT_NAME} away to retrain from the log"
                             f" ({len(self.history)} ratings)")
        self._state = TrainState(jax.tree_util.tree_map(jnp.asarray, variables),
                                 jax.tree_util.tree_map(jnp.asarray, opt_state))
        return n_trained
