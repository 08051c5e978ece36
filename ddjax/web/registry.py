"""The desks a server serves: one session rated alone, or a study's participants.

``open_desks`` opens them from a ``ServeConfig``; ``Desks`` finds a desk by its id and
opens (or resumes) a study's participant on first use, one at a time; every desk is a
``desks_protocol.RatingDesk``. Its refusals are ``ddjax.web.http_errors``'.

Opening a session takes seconds of JAX work, so a server opens its desks in two parts:
``desks_kit`` (the cheap checks, before it listens) and ``Opening`` (the rest, in a
background thread, while the page already answers and ``Starting`` refuses the desks'
routes with the step under way).
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import re
import secrets
import threading
from typing import Callable

from ddjax.core.pipeline import Pipeline
from ddjax.errors import DdjaxError
from ddjax.io.kit import Kit, load_kit
from ddjax.learning.training import TrainConfig
from ddjax.session.experiment import ExperimentConfig
from ddjax.session.journal import session_kit
from ddjax.session.session import Session, SessionConfig
from ddjax.session.startup import RECORD_NAME, Startup, read_record, save_record
from ddjax.web.desk import Desk
from ddjax.web.desks_protocol import RatingDesk
from ddjax.web.http_errors import HttpError, Starting
from ddjax.web.study import Study

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAIN = "main"
LOOPS_AHEAD = 2  # loops a rating page keeps prepared (``Session``'s ``ahead``)
PARTICIPANTS_DIR = "participants"


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
    """

    kit_dir: pathlib.Path | None
    directory: pathlib.Path
    study: bool = False
    experiment: ExperimentConfig = ExperimentConfig()
    session: SessionConfig = SessionConfig()
    train: TrainConfig = TrainConfig()
    pipeline: Pipeline = Pipeline()
    resume_by_id: bool = False


class Desks:
    """Every open desk by id; opens a study's participants on first use, one at a time.

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

    @property
    def root(self) -> pathlib.Path:
        return self.config.directory / PARTICIPANTS_DIR

    def get(self, sid: str) -> RatingDesk:
        """The desk ``sid``; a known participant is opened (resumed) if need be."""
        if not ID_PATTERN.fullmatch(sid):
            raise HttpError(404, f"no session {sid!r}")
        with self._lock:
            if sid in self._desks:
                return self._desks[sid]
            if not self.config.study or not (self.root / sid / "study.json").is_file():
                raise HttpError(404, f"no session {sid!r}")
        return self._open_once(sid)

    def join(self, requested: str | None) -> str:
        """A participant's id: ``requested`` or a fresh one. An existing ``requested`` id
        is resumed only with ``resume_by_id``."""
        if requested is not None and not ID_PATTERN.fullmatch(requested):
            raise HttpError(422, "an id is 1 to 64 letters, digits, '-' or '_'")
        sid = requested or f"p-{secrets.token_hex(4)}"
        if sid == MAIN:
            raise HttpError(422, f"{MAIN!r} is reserved; pick another id")
        if requested is not None and not self.config.resume_by_id and (
                self.root / sid / "study.json").exists():
            raise HttpError(409, f"the id {sid!r} is taken; ask the researcher for yours (a"
                                 " participant resumes from their own page's address)")
        self._open_once(sid)
        return sid

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
                               session_config=c.session, train=c.train, pipeline=c.pipeline)
        except DdjaxError as err:
            raise HttpError(409, f"participant {sid}: {err}") from None
        with self._lock:
            self._desks[sid] = study
        return study

    def close(self) -> None:
        with self._lock:
            desks = list(self._desks.values())
        for desk in desks:
            desk.close()


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
    participants open later, one by one."""
    if config.study:
        config.directory.mkdir(parents=True, exist_ok=True)
        return Desks(config, kit)
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
        self._record = None if config.study else config.directory / RECORD_NAME
        self.startup = Startup(read_record(self._record))
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
