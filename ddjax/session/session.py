"""Sessions: one person's ratings, a critic that learns from them, and nothing lost.

A ``Session`` is the person's side of the pipeline: ``next_loop`` gives a loop to listen
to, ``rate`` records a like or a dislike and learns from it, ``undo`` takes the last
rating back, ``skip`` passes a loop over, and ``run`` drives them from any callable. What
it learns with is a ``learning.base.Learner`` (``ddjax.learning.registry`` picks it: the pretrained Bayesian
head by default, the paper's CNN with ``pretrained="none"``), held by a
``belief.Belief``; what it keeps on disk is ``ddjax.session.journal``'s. The session itself is
the thread between them.

Overlap. Learning and sampling run on one background worker while the person listens:
after ``rate`` (rating k) the worker learns rating k, and ``next_loop`` hands out a loop
it sampled meanwhile. The worker keeps ``ahead`` loops prepared (1 by default; the
rating page keeps 2), each from the critic of its time, so **the loop shown after rating
k comes from the critic trained on ratings 1..k-ahead** (``SessionLoop.critic_version``
is that count), and the wait after a rating is only what is left of one update and one
sampling run once the person has listened; with 2 ahead, a quick rating does not wait
for a slow sampling run.

Which loop. With ``query="thompson"`` (the default) each loop's chain targets one draw
of the critic from the learner's belief (Thompson sampling), so the session keeps asking
about loops the critic is unsure of; ``"mean"`` targets the critic itself. The paper's
CNN has no belief, so both are the same there.

Re-opening a directory resumes: same history, same critic. A checkpoint behind the log
catches up by learning the missing ratings; a torn last log line is reported and
skipped.

Starting takes seconds (tens with a cold compile cache): a session names each of its
``STARTUP_STEPS`` to its ``progress`` callback as the step begins, the last two on the
worker; ``wait_started`` returns once the first loop is drawn and learning is compiled.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import os
import pathlib
import threading
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ddjax.core.loops import Loop as LoopArrays
from ddjax.core.pipeline import Pipeline
from ddjax.errors import DdjaxError
from ddjax.io.kit import Kit
from ddjax.learning.registry import (
    NONE,
    choose_learner,
    learner_pipeline,
    make_learner,
    shares_initial_state,
)
from ddjax.learning.training import TrainConfig
from ddjax.sampling.engine import Engine
from ddjax.sampling.sampler import ChainState, RunInfo, SamplerConfig
from ddjax.session import journal
from ddjax.session.belief import Belief, rated_loop
from ddjax.session.config import SessionConfig
from ddjax.session.dealer import Dealer
from ddjax.session.hub import Hub
from ddjax.session.journal import (
    CHECKPOINT_NAME,
    CRITIC_NAME,
    INITIAL_CRITIC_NAME,
    LOG_NAME,
    META_NAME,
    Rating,
    SessionWarning,
    check_sizes,
    session_kit,
)
from ddjax.session.session_loop import SessionLoop

__all__ = ["Session", "SessionConfig", "SessionLoop", "Rating", "SessionWarning", "LOG_NAME",
           "CHECKPOINT_NAME", "CRITIC_NAME", "INITIAL_CRITIC_NAME", "META_NAME", "rated_loop",
           "STARTUP_STEPS"]
# What a session does before its first loop can be heard, in order (``progress``).
STARTUP_STEPS = ("building the engine", "preparing the critic", "reading the ratings",
                 "drawing the first loop", "compiling the learner")


class Session:
    """One person's rating session. Use ``Session.open`` for an on-disk session.

    Args:
      kit: the loaded kit.
      directory: where to keep everything, or None for a throw-away session.
      pipeline: every stage's settings (its critic is the learner's).
      train: the CNN's training settings (``pretrained="none"``).
      config: how the session learns and picks loops, and the seed.
      progress: called with each of ``STARTUP_STEPS`` as it begins (the last two from the
        worker thread), or None.
      ahead: loops kept prepared (see "Overlap" above), at least 1.
      hub: shares the engine and batches the device work with other sessions (a server
        with many people, ``ddjax.session.hub``); None: the session's own.
    """

    def __init__(self, kit: Kit, directory: str | os.PathLike | None = None, *,
                 pipeline: Pipeline = Pipeline(), train: TrainConfig = TrainConfig(),
                 config: SessionConfig = SessionConfig(),
                 progress: Callable[[str], None] | None = None, ahead: int = 1,
                 hub: Hub | None = None):
        if ahead < 1:
            raise ValueError("a session keeps at least one loop prepared")
        self._progress, self._ahead = progress, ahead
        self._announce(STARTUP_STEPS[0])
        meta = None if directory is None else journal.read_meta(pathlib.Path(directory))
        if meta is not None:  # resuming: learn with what the session learned with
            check_sizes(directory, meta, pipeline)
            # Sessions from before the pretrained prior had the paper's CNN, and from before
            # the loop prior the paper's generator.
            recorded = meta.get("session", {})
            config = dataclasses.replace(config,
                                         pretrained=recorded.get("pretrained", NONE),
                                         loop_prior=recorded.get("loop_prior", "uniform"))
        # The session's settings are final from here: the loop prior and the learner's
        # critic are set once, and everything below reads them.
        choice = choose_learner(config.pretrained)
        pipeline = learner_pipeline(choice, dataclasses.replace(
            pipeline, loops=dataclasses.replace(pipeline.loops, prior=config.loop_prior,
                                                distance=config.distance)))
        self.learner = make_learner(choice, pipeline, train)
        self.kit, self.pipeline, self.train_config, self.config = kit, pipeline, train, config
        self.directory = None if directory is None else pathlib.Path(directory)
        self._key = jax.random.key(config.seed)
        self.dealer = Dealer(kit, pipeline, config, self._key, hub)
        self._announce(STARTUP_STEPS[1])
        self.belief = Belief(
            self.learner, self._key, self.engine.params.tables, self.engine.allowed,
            initial=None if hub is None else hub.initial_state(
                self.learner, jax.random.fold_in(self._key, 0), self.engine,
                shares_initial_state(choice)),
            update=None if hub is None else functools.partial(hub.update, self.learner))
        self.initial_critic = self.belief.initial_critic
        self.history: list[Rating] = []
        self.skipped: list[int] = []
        self._next_id = 0
        self._n_candidates = 0
        self._lock = threading.Lock()
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._pending: list[concurrent.futures.Future] = []
        self._announce(STARTUP_STEPS[2])
        dealt = None
        if self.directory is not None:
            dealt = self._open_directory()
        first = self._worker.submit(self._announced, STARTUP_STEPS[3],
                                    functools.partial(self._candidate, dealt=dealt))
        # Learning compiles before the first loop is shown, so no wait after a rating
        # ever includes compilation.
        self._warm = self._worker.submit(self._announced, STARTUP_STEPS[4], self._warm_up)
        self._started = (first, self._warm)
        self._prepared = collections.deque([first])  # the loops to show next, in order
        self._prepare()

    @classmethod
    def open(cls, directory: str | os.PathLike, kit_dir: str | os.PathLike | None = None,
             **settings) -> "Session":
        """Opens (resumes) or creates the session in ``directory``.

        The kit defaults to the one recorded in the directory's ``session.json``.
        """
        kit = session_kit(directory, kit_dir, settings.get("pipeline", Pipeline()))
        return cls(kit, directory, **settings)

    @property
    def engine(self) -> Engine:
        """The session's engine (its kit, pipeline and style: ``Dealer.engine``)."""
        return self.dealer.engine

    def wait_started(self) -> None:
        """Blocks until the first loop is drawn and learning is compiled (raises what
        either raised)."""
        for future in self._started:
            future.result()

    # -- the person's side -------------------------------------------------------------

    def next_loop(self) -> SessionLoop:
        """The next loop to listen to (waits for the worker if it is still sampling)."""
        candidate = self._prepared.popleft().result()
        if self._warm is not None:
            self._warm.result()
            self._warm = None
            self._started = ()  # started: keep no reference to the first loop's audio
        self._prepare()
        if self.directory is not None:  # shown again after a restart until rated
            journal.save_dealt(self.directory, candidate)
        return candidate

    def set_style(self, style: str | None) -> None:
        """Draws the loops after those already prepared from ``style`` (None: the mixture
        of every style): a DdjaxError where the loop prior has no such style."""
        self.dealer.set_style(style)
        self.config = dataclasses.replace(self.config, style=style)

    def more_like(self, loop_id: int) -> None:
        """Makes the next loop a variation on the rated loop ``loop_id``: its chain starts
        from that loop instead of from the prior ("more like this")."""
        rating = next((r for r in self.history if r.loop_id == loop_id), None)
        if rating is None:
            raise DdjaxError(f"no rated loop {loop_id} in this session")
        start = self.engine.check_start(rated_loop(rating))
        self._prepared.appendleft(self._worker.submit(self._candidate, start))

    def edited(self, loop: SessionLoop, grid: np.ndarray,
               velocity: np.ndarray | None) -> SessionLoop:
        """``loop`` with the person's changes (``ddjax.web.edit``): same id and samples, the
        new grid and velocities, its audio rendered again and its score from the current
        critic. Raises a DdjaxError when the grid does not fit the loop space."""
        arrays = self.engine.check_start(LoopArrays(grid, loop.samples, velocity))
        score, _ = self.score_of(arrays)
        return dataclasses.replace(
            loop, audio=self.engine.listen(jax.tree_util.tree_map(lambda x: x[None], arrays))[0],
            grid=np.asarray(arrays.grid),
            velocity=np.asarray(arrays.velocity), score=score,
            proposed=loop.proposed or loop)

    def score_of(self, loop: LoopArrays) -> tuple[float, int]:
        """The current critic's P(like) of one loop (at the session's tempo and swing), and
        how many ratings that critic has learned."""
        version = self.belief.n_trained
        batch = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], loop)
        return float(self.engine.score(batch, critic=self.belief.critic())[0]), version

    def checked_score_of(self, loop: LoopArrays) -> tuple[float, int]:
        """``score_of`` a loop from outside the session (an edit), checked against the loop
        space first: a DdjaxError where it does not fit (``Engine.check_start``)."""
        return self.score_of(self.engine.check_start(loop))

    @property
    def n_trained(self) -> int:
        """How many ratings the current critic has learned."""
        return self.belief.n_trained

    def audition(self, loop: LoopArrays, bpm: float, swing: float, bars: int) -> np.ndarray:
        """The first ``bars`` bars of one loop's listening render at any tempo and swing
        (``Engine.audition``)."""
        return self.engine.audition(loop, bpm, swing, bars)

    def loop_bar(self, loop: LoopArrays) -> np.ndarray:
        """One seamless bar of one (unbatched) loop at the session's render settings."""
        batch = jax.tree_util.tree_map(lambda x: x[None], loop)
        return self.engine.loop_bar(batch)[0]

    def rate(self, loop: SessionLoop, liked: bool) -> None:
        """Records a rating on disk (fsync'ed), then learns from it in the background."""
        with self._lock:
            rating = Rating(loop.id, loop.grid, loop.samples, bool(liked), loop.critic_version,
                            loop.velocity, loop.score)
            if self.directory is not None:
                journal.append(self.directory, loop, rating.liked, self.kit.sr)
            self.history.append(rating)
        self._pending.append(self._worker.submit(self._learn, rating))

    def undo(self) -> SessionLoop:
        """Takes the last rating back: logs the undo (fsync'ed), then the critic forgets it
        in the background. Returns that loop, to be rated again."""
        with self._lock:
            if not self.history:
                raise DdjaxError("nothing to undo: there is no rating yet")
            rating = self.history.pop()
            if self.directory is not None:
                journal.append_undo(self.directory, rating.loop_id)
            remaining = list(self.history)
        self._pending.append(self._worker.submit(self._take_back, remaining))
        return self.dealer.replay(rating)

    def skip(self, loop: SessionLoop) -> None:
        """Passes ``loop`` over, unrated; the log keeps it, so it is never shown again."""
        with self._lock:
            if self.directory is not None:
                journal.append_skip(self.directory, loop)
            self.skipped.append(loop.id)

    def run(self, rate_fn: Callable[[SessionLoop], bool | None],
            n: int) -> list[tuple[SessionLoop, bool]]:
        """Shows loops to ``rate_fn`` until it has rated ``n`` (None skips a loop)."""
        rated = []
        while len(rated) < n:
            loop = self.next_loop()
            liked = rate_fn(loop)
            if liked is None:
                self.skip(loop)
                continue
            self.rate(loop, bool(liked))
            rated.append((loop, bool(liked)))
        return rated

    def wav_path(self, loop_id: int) -> pathlib.Path:
        """Where a rated loop's listening render is kept (on-disk sessions)."""
        return journal.wav_path(self.directory, loop_id)

    @property
    def n_ratings(self) -> int:
        return len(self.history)

    @property
    def like_rate(self) -> float:
        """Share of ratings so far that were likes (0 before any)."""
        return float(np.mean([r.liked for r in self.history])) if self.history else 0.0

    def critic(self) -> dict:
        """The critic after learning every rating so far (waits for learning)."""
        self.wait()
        return self.belief.critic()

    def wait(self) -> None:
        """Blocks until every submitted update has finished."""
        for future in self._pending:
            future.result()
        self._pending.clear()

    def close(self) -> None:
        """Finishes learning, then stops the worker."""
        self.wait()
        self._worker.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the worker's side -------------------------------------------------------------

    def sample_pool(self, key: jax.Array, n_chains: int, config: SamplerConfig,
                    critic: dict, progress: Callable[[int], None] | None = None
                    ) -> tuple[ChainState, RunInfo]:
        """``Dealer.sample_pool``: a long run from the prior (a study's phase II pool)."""
        return self.dealer.sample_pool(key, n_chains, config, critic, progress)

    def _prepare(self) -> None:
        """Queues sampling runs until ``ahead`` loops are prepared or being prepared."""
        while len(self._prepared) < self._ahead:
            self._prepared.append(self._worker.submit(self._candidate))

    def _announce(self, step: str) -> None:
        if self._progress is not None:
            self._progress(step)

    def _announced(self, step: str,
                   work: Callable[[], SessionLoop | None]) -> SessionLoop | None:
        """``work()``, named to ``progress`` first (on the worker)."""
        self._announce(step)
        return work()

    def _learn(self, rating: Rating) -> None:
        """Learns ``rating`` (on the worker), then checkpoints."""
        self.belief.learn(rating)
        self._checkpoint()

    def _take_back(self, remaining: list[Rating]) -> None:
        """Forgets the last rating learned (on the worker), then checkpoints."""
        self.belief.take_back(remaining)
        self._checkpoint()

    def _checkpoint(self) -> None:
        if self.directory is not None:
            journal.save_checkpoint(self.directory, jax.device_get(self.belief.state.model),
                                    self.belief.learned, self.belief.critic(), self.pipeline)

    def _warm_up(self) -> None:
        """Compiles the update and both critics on throw-away data."""
        self.belief.warm_up(self.pipeline.loops.n_tracks, self.pipeline.loops.n_steps)

    def _candidate(self, start: LoopArrays | None = None,
                   dealt: dict | None = None) -> SessionLoop:
        """The next loop (on the worker): ``dealt`` again where given and it still fits
        (``journal.read_dealt``), else a new candidate from the prior or near ``start``."""
        if dealt is not None and (again := self.dealer.again(dealt)) is not None:
            return again
        index, self._n_candidates = self._n_candidates, self._n_candidates + 1
        return self.dealer.candidate(index, self.belief, self._new_id, start)

    def _new_id(self) -> int:
        with self._lock:
            loop_id, self._next_id = self._next_id, self._next_id + 1
        return loop_id

    # -- the disk ------------------------------------------------------------------------

    def _open_directory(self) -> dict | None:
        """Resumes from the folder; returns the loop shown when it stopped, unrated
        (``journal.read_dealt``), or None."""
        d = self.directory
        # Every check first (the log, the checkpoint): nothing on disk changes unless the
        # resume can succeed.
        log = journal.read_log(d, self.kit, (self.pipeline.loops.n_tracks,
                                             self.pipeline.loops.n_steps))
        history = log.ratings
        restored = journal.load_checkpoint(d, jax.device_get(self.belief.state.model),
                                           self.pipeline.critic,
                                           [r.loop_id for r in history], log.undone,
                                           log.damaged)
        journal.create(d, {"kit": str(self.kit.root), "seed": self.config.seed,
                           "session": dataclasses.asdict(self.config),
                           "train": dataclasses.asdict(self.train_config),
                           "bpm": self.pipeline.render.bpm,
                           "tracks": self.pipeline.loops.n_tracks,
                           **journal.swing_meta(self.pipeline.render.swing),
                           **journal.humanize_meta(self.pipeline.render.humanize)})
        journal.repair_log(d, log.damaged)  # only now: every check has passed
        journal.remove_stale_temp_files(d)
        self.history, self.skipped = history, log.skipped
        self._next_id = log.last_id + 1  # no logged loop, rated or skipped, comes back
        dealt = journal.read_dealt(d, self.kit, log.last_id)
        if dealt is not None:  # shown first again; ids go on after it
            self._next_id = dealt["id"] + 1
        self._n_candidates = self._next_id
        if not (d / INITIAL_CRITIC_NAME).exists():
            journal.save_critic_file(d / INITIAL_CRITIC_NAME, self.initial_critic, self.pipeline)
        n_done = 0
        if restored is not None:
            model, n_done = restored
            self.belief.restore(model)
        for index, rating in enumerate(history):
            if index < n_done:  # already learnt by the checkpoint's model: data only
                self.belief.remember(rating)
            else:  # the checkpoint is behind the log: catch up
                self._learn(rating)
        return dealt
