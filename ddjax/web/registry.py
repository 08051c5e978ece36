"""The desks a server serves: one session rated alone, or a study's participants.

``open_desks`` opens them from a ``ServeConfig``; ``Desks`` finds a desk by its id; every
desk is a ``desks_protocol.RatingDesk``. Its refusals are ``ddjax.web.http_errors``'.

A study's participants share one ``ddjax.session.hub.Hub``: one engine, and their
sampling and learning batched into shared calls. Before anyone joins, the server
compiles every program the hub may run (``Desks.warm_up``); then it opens every
participant on disk in the background (``open_known``), so after a restart all are ready
within seconds. At most ``max_participants`` rate at once; newcomers past that wait in a
``ddjax.web.admission.Line`` and see their place.

Opening takes seconds of JAX work, so a server opens its desks in two parts:
``desks_kit`` (the cheap checks, before it listens) and ``Opening`` (the rest, in a
background thread, while the page already answers and ``Starting`` refuses the desks'
routes with the step under way).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import pathlib
import re
import secrets
import threading
import time
from typing import Callable

import numpy as np

from ddjax.core.pipeline import Pipeline
from ddjax.errors import DdjaxError
from ddjax.io.kit import Kit, load_kit
from ddjax.learning.training import TrainConfig
from ddjax.session.experiment import ExperimentConfig
from ddjax.session.hub import Hub
from ddjax.session.journal import session_kit
from ddjax.session.session import LOG_NAME, Rating, Session, SessionConfig, rated_loop
from ddjax.session.startup import RECORD_NAME, Startup, read_record, save_record
from ddjax.web.admission import Line, Ticket
from ddjax.web.consent import load_consent
from ddjax.web.desk import Desk
from ddjax.web.desks_protocol import RatingDesk
from ddjax.web.http_errors import HttpError, Starting
from ddjax.web.study import PHASE2_DIR, RESULT_NAME, STUDY_NAME, Study

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAIN = "main"
LOOPS_AHEAD = 2  # loops a rating page keeps prepared (``Session``'s ``ahead``)
PARTICIPANTS_DIR = "participants"
# Participants rating at once by default: the most at which the next loop's p95 stayed
# within 2 s on a 2-core CPU (bench/study_load.py, bench/README.md).
DEFAULT_MAX_PARTICIPANTS = 16
OPEN_WORKERS = 16  # participants opened at once after a restart
ENDED = ("done", "error")  # a participant's phases that free their place
IDLE_S = 600.0  # a participant not heard from for this long frees their place
# What a study's server does before its page lets anyone join, in order (``progress``).
STUDY_STEPS = ("compiling for many participants at once",)


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """What the server runs.

    Attributes:
      kit_dir: the kit folder (None: the session's recorded kit; a study needs one).
      directory: the session folder (alone) or the study folder (``study``).
      study: run the paper's protocol for any number of participants.
      experiment: the study's sizes; its seed is the first participant's.
      session: sampling settings.
      train: training settings.
      pipeline: the tempo and loop size (``Pipeline.sized``) of new sessions; a resumed one
        must match it.
      resume_by_id: a study lets a participant type an existing id to resume it (and see
        that person's results); without it, an id that exists is refused, and a
        participant resumes through their own page's address only.
      max_participants: participants rating at once (a study); past it, newcomers wait in
        line. None: ``DEFAULT_MAX_PARTICIPANTS``.
      consent: a consent page (Markdown or HTML) a participant agrees to first, or None.
      archive_audio: "flac" (a participant's archive keeps audio as FLAC) or "none".
      warm_up: a study compiles, before anyone joins, every program its participants may
        run (``Desks.warm_up``: ``ddjax serve`` does); else each compiles on first use.
    """

    kit_dir: pathlib.Path | None
    directory: pathlib.Path
    study: bool = False
    experiment: ExperimentConfig = ExperimentConfig()
    session: SessionConfig = SessionConfig()
    train: TrainConfig = TrainConfig()
    pipeline: Pipeline = Pipeline()
    resume_by_id: bool = False
    max_participants: int | None = None
    consent: pathlib.Path | None = None
    archive_audio: str = "flac"
    warm_up: bool = False


class Desks:
    """Every open desk by id. A study's participants share one ``Hub`` (one engine, their
    device work batched); those on disk are opened in the background as soon as the
    desks are (``open_known``), and admission keeps at most ``capacity`` rating at once,
    the rest waiting in line (``join``, ``queue_place``).

    Args:
      config: what the server runs.
      kit: the kit of every desk.
      session: the session to rate alone (its desk is ``main``); None in a study.
    """

    def __init__(self, config: ServeConfig, kit: Kit, session: Session | None = None):
        self.config, self.kit = config, kit
        self.kinds, self.notes = list(kit.kinds), list(kit.notes)
        self._desks: dict[str, RatingDesk] = (
            {} if session is None else {MAIN: Desk(session, self.notes)})
        self._opening: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.hub = Hub() if config.study else None
        self.consent = load_consent(config.consent) if config.study else None
        self.capacity = config.max_participants or DEFAULT_MAX_PARTICIPANTS
        self.line = Line()
        self._known: list[str] = []
        self._reserved: set[str] = set()  # admitted, being opened
        self._seen: dict[str, float] = {}  # each participant's last request (monotonic)

    @property
    def root(self) -> pathlib.Path:
        return self.config.directory / PARTICIPANTS_DIR

    def known(self) -> list[str]:
        """The ids of the participants on disk."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if ID_PATTERN.fullmatch(p.name) and (p / "study.json").is_file())

    def open_known(self, workers: int = OPEN_WORKERS) -> None:
        """Opens every participant on disk, ``workers`` at a time (their first loops and
        catching up batch in the hub); returns when all are open. One that fails to open
        is left to answer its error on first use."""
        ids = self.known()
        with self._lock:
            self._known = ids
        with concurrent.futures.ThreadPoolExecutor(max(1, workers),
                                                   thread_name_prefix="ddjax-open") as pool:
            for future in [pool.submit(self._open_once, sid) for sid in ids]:
                try:
                    future.result()
                except HttpError:
                    pass

    def studies(self) -> list[Study]:
        """Every open participant."""
        with self._lock:
            return [d for d in self._desks.values() if isinstance(d, Study)]

    def rating(self) -> list[str]:
        """The participants rating now: not finished, and heard from (any request of
        theirs) in the last ``IDLE_S``; one who left mid-study frees their place."""
        now = time.monotonic()
        with self._lock:
            desks = [(sid, d) for sid, d in self._desks.items()
                     if now - self._seen.get(sid, -IDLE_S) < IDLE_S]
        return [sid for sid, d in desks if isinstance(d, Study) and d.phase not in ENDED]

    def status(self) -> dict:
        """Participants on disk, opened, rating now, waiting, and the capacity."""
        with self._lock:
            ready = sum(isinstance(d, Study) for d in self._desks.values())
            known = max(len(self._known), ready)
        return {"known": known, "ready": ready, "rating": len(self.rating()),
                "waiting": len(self.line), "capacity": self.capacity}

    def wait_estimate(self, place: int) -> float | None:
        """Seconds until the participant at ``place`` in line is let in: ``place`` turns
        of the median participant's whole study (from the folders of those done), over
        ``capacity`` places; None before anyone is done."""
        durations = []
        for sid in self.known():
            folder = self.root / sid
            last = folder / PHASE2_DIR / LOG_NAME  # its last line: the last rating
            if (folder / RESULT_NAME).is_file() and last.is_file():
                durations.append(last.stat().st_mtime - (folder / STUDY_NAME).stat().st_mtime)
        if not durations:
            return None
        return float(np.median(durations)) * place / self.capacity

    def get(self, sid: str) -> RatingDesk:
        """The desk ``sid``; a known participant is opened (resumed) if need be."""
        sid = sid.lower() if self.config.study else sid
        if not ID_PATTERN.fullmatch(sid):
            raise HttpError(404, f"no session {sid!r}")
        with self._lock:
            if sid in self._desks:
                self._seen[sid] = time.monotonic()
                return self._desks[sid]
            if not self.config.study or not (self.root / sid / "study.json").is_file():
                raise HttpError(404, f"no session {sid!r}")
        return self._open_once(sid)

    def join(self, requested: str | None) -> str | Ticket:
        """A participant's id (``requested``, lower-cased, or a fresh one), or their place
        in line while ``capacity`` participants are rating. An existing ``requested`` id
        is resumed only with ``resume_by_id`` (and never waits in line)."""
        if requested is not None and not ID_PATTERN.fullmatch(requested):
            raise HttpError(422, "an id is 1 to 64 letters, digits, '-' or '_'")
        sid = (requested or f"p-{secrets.token_hex(3)}").lower()
        if sid == MAIN:
            raise HttpError(422, f"{MAIN!r} is reserved; pick another id")
        exists = (self.root / sid / "study.json").exists()
        if requested is not None and not self.config.resume_by_id and exists:
            raise HttpError(409, f"the id {sid!r} is taken; ask the researcher for yours (a"
                                 " participant resumes from their own page's address)")
        if not exists:
            ticket = self.line.admit(sid, lambda: self._take_place(sid))
            if ticket is not None:
                return ticket
        self._open_admitted(sid)
        return sid

    def queue_place(self, number: str) -> str | Ticket:
        """A waiting participant's id once admitted, else their ticket (place updated);
        a 404 for a ticket not in line."""
        ticket = self.line.find(number)
        if ticket is None:
            raise HttpError(404, f"no ticket {number!r} in line")
        if not self.line.admit_turn(ticket, lambda: self._take_place(ticket.sid)):
            return ticket
        self._open_admitted(ticket.sid)
        return ticket.sid

    def _take_place(self, sid: str) -> bool:
        """Reserves a place for ``sid`` where fewer than ``capacity`` participants rate
        (those being opened count), atomically, so two at once never both get the last."""
        rating = set(self.rating())
        with self._lock:
            if len(rating | self._reserved) >= self.capacity:
                return False
            self._reserved.add(sid)
            return True

    def _open_admitted(self, sid: str) -> None:
        try:
            self._open_once(sid)
        finally:
            with self._lock:
                self._reserved.discard(sid)
                self._seen[sid] = time.monotonic()

    def _open_once(self, sid: str) -> RatingDesk:
        """The participant ``sid``, opened (or created) by the first caller only."""
        with self._lock:
            opening = self._opening.setdefault(sid, threading.Lock())
        with opening:  # a slow open of one participant never holds the others
            with self._lock:
                if sid in self._desks:
                    return self._desks[sid]
            return self._open(sid)

    def _open(self, sid: str) -> Study:
        c = self.config
        seed = c.experiment.seed + int.from_bytes(hashlib.sha256(sid.encode()).digest()[:3])
        try:
            study = Study.open(self.root / sid, self.kit, self.notes,
                               dataclasses.replace(c.experiment, seed=seed), sid,
                               session_config=c.session, train=c.train, pipeline=c.pipeline,
                               consent=self.consent, hub=self.hub)
        except DdjaxError as err:
            raise HttpError(409, f"participant {sid}: {err}") from None
        with self._lock:
            self._desks[sid] = study
        return study

    def warm_up(self) -> None:
        """Compiles what participants will run, for every batch the hub may make, through
        a throw-away session: before anyone joins, nobody waits on a compilation."""
        c = self.config
        probe = Session(self.kit, None, pipeline=c.pipeline, train=c.train, config=c.session,
                        hub=self.hub)
        try:
            probe.wait_started()
            loop = probe.next_loop()
            arrays = rated_loop(Rating(loop.id, loop.grid, loop.samples, True, 0,
                                       loop.velocity, loop.score))
            self.hub.warm_up(probe.engine, probe.learner, probe.belief.state,
                             probe.engine.params.tables, arrays, probe.belief.critic(),
                             c.session.n_chains, c.session.sampler,
                             c.experiment.phase_two_sampler(c.session.sampler))
        finally:
            probe.close()

    def close(self) -> None:
        with self._lock:
            desks = list(self._desks.values())
        for desk in desks:
            desk.close()
        if self.hub is not None:
            self.hub.close()


def open_desks(config: ServeConfig) -> Desks:
    """The desks to serve: one session alone, or a study's participants (opened lazily)."""
    return build_desks(config, desks_kit(config))


def desks_kit(config: ServeConfig) -> Kit:
    """The kit of every desk: the cheap checks before any JAX work (a DdjaxError says what
    is wrong with the folder, the kit or the sizes)."""
    render, loops = config.pipeline.render, config.pipeline.loops
    if not config.study:
        return session_kit(config.directory, config.kit_dir, config.pipeline)
    if config.kit_dir is None:
        raise DdjaxError("a study needs --kit")
    return load_kit(config.kit_dir, render.bar_samples, sr=render.sr,
                    min_samples=loops.n_tracks)


def build_desks(config: ServeConfig, kit: Kit,
                progress: Callable[[str], None] | None = None) -> Desks:
    """The desks over ``kit``, ready to serve: a session's engine built, its first loop
    drawn and its learning compiled (``progress`` hears each step); a study's
    participants on disk open in the background (``Desks.open_known``), newcomers as
    they join."""
    if config.study:
        config.directory.mkdir(parents=True, exist_ok=True)
        desks = Desks(config, kit)
        resumed = bool(desks.known())
        threading.Thread(target=desks.open_known, name="ddjax-open-known",
                         daemon=True).start()
        if config.warm_up and resumed:
            # A restart: participants are waiting, and their programs load from JAX's
            # cache as they need them; the others load meanwhile.
            threading.Thread(target=desks.warm_up, name="ddjax-warm-up", daemon=True).start()
        elif config.warm_up:  # a new study: compile before anyone joins
            if progress is not None:
                progress(STUDY_STEPS[0])
            desks.warm_up()
        return desks
    session = Session(kit, config.directory, train=config.train, config=config.session,
                      pipeline=config.pipeline, progress=progress, ahead=LOOPS_AHEAD)
    try:
        session.wait_started()
    except BaseException:
        session.close()
        raise
    return Desks(config, kit, session)


class Opening:
    """Desks opened in a background thread (``start``), so the page answers meanwhile.

    ``desks()`` gives them once open and raises ``Starting`` until then; ``status()`` is
    the start's progress (``startup.Startup``). A session's steps are timed into its
    folder's ``RECORD_NAME``, which the next start estimates from.

    Args:
      config: what the server runs.
      kit: ``desks_kit(config)``.
      build: opens the desks (``build_desks``; tests pass a slow one).
      on_ready: called with the desks once open (from the background thread).
      on_failure: called with what opening raised (from the background thread).
    """

    def __init__(self, config: ServeConfig, kit: Kit, *,
                 build: Callable[..., Desks] = build_desks,
                 on_ready: Callable[[Desks], None] = lambda desks: None,
                 on_failure: Callable[[BaseException], None] = lambda error: None):
        self.config, self.kit = config, kit
        self._build, self._on_ready, self._on_failure = build, on_ready, on_failure
        self._record = config.directory / RECORD_NAME
        self.startup = Startup(read_record(self._record),
                               **({"steps": STUDY_STEPS} if config.study else {}))
        self.error: BaseException | None = None
        self._desks: Desks | None = None
        self._thread = threading.Thread(target=self._open, name="ddjax-open", daemon=True)

    @classmethod
    def opened(cls, desks: Desks) -> "Opening":
        """Desks that are open already."""
        opening = cls(desks.config, desks.kit)
        opening._desks = desks
        opening.startup.finish()
        return opening

    def start(self) -> "Opening":
        self._thread.start()
        return self

    def _open(self) -> None:
        try:
            desks = self._build(self.config, self.kit, self.startup.step)
        except BaseException as err:  # noqa: B036 - the server reports it and exits
            self.error = err
            self.startup.fail(str(err))
            self._on_failure(err)
            return
        self._desks = desks  # before the status says ready
        seconds = self.startup.finish()
        if self._record is not None:
            try:
                save_record(self._record, seconds)
            except OSError:  # only the next estimate is lost
                pass
        self._on_ready(desks)

    def desks(self) -> Desks:
        """The open desks, or ``Starting``."""
        if self._desks is None:
            raise Starting(self.startup.status().get("step", "opening"))
        return self._desks

    def status(self) -> dict:
        return self.startup.status()

    def close(self) -> None:
        """Waits for a start under way to end, then closes the desks."""
        if self._thread.is_alive():
            self._thread.join()
        if self._desks is not None:
            self._desks.close()
