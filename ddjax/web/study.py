"""Studies: the paper's protocol (section 4) for one participant, over rating desks.

``Study``: first the steps of ``study_steps.Steps`` (the consent where the server has one,
a headphone check and a practice loop that is not counted); then phase I is a ``desk.Desk`` with ``n_ratings`` ratings; then phase II's pool
(``experiment.draw_phase_two``) is drawn in the background; then the pool is rated blind,
without training; then ``result.json`` holds theta_init, theta_final and delta, in the
format of ``ddjax experiment`` (so ``ddjax experiment --from-sessions`` aggregates both).

A participant's folder::

    study.json            id, seed and sizes
    steps.jsonl           consent, headphone check, practice rating, phase II's draw time
    practice/             the practice loop (loop.json, loop.wav)
    session/              the phase I Session (ratings.jsonl, wav/, critics)
    phase2/items.json     the blind pool: group, loop and score of each item, in order
    phase2/eN.wav         item N's audio
    phase2/ratings.jsonl  phase II ratings, fsync'ed, one line per item, and undos
                          ({"undo": "eN"}: takes back the last rating, of item N)
    result.json           written once every item is rated

Re-opening a folder resumes wherever the participant was. Loop keys are strings: a
session's loop id (``"12"``) in free rating and phase I, ``"eN"`` in phase II.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import threading
import time

import numpy as np

from ddjax.core.pipeline import Pipeline
from ddjax.io.files import atomic_write_bytes, write_audio
from ddjax.io.kit import Kit
from ddjax.learning.training import TrainConfig
from ddjax.session.experiment import ExperimentConfig, draw_phase_two, thetas
from ddjax.session.hub import Hub
from ddjax.session.journal import append_line, now
from ddjax.session.session import (
    CRITIC_NAME,
    INITIAL_CRITIC_NAME,
    LOG_NAME,
    Session,
    SessionConfig,
    SessionLoop,
)
from ddjax.web.consent import Consent
from ddjax.web.desk import Desk, Item, Refused, playback_wav
from ddjax.web.study_archive import write_archive
from ddjax.web.study_steps import (
    PRACTICE_DIR,
    PRACTICE_KEY,
    Steps,
    durations,
    read_lines,
    recorded_loop,
)

STUDY_NAME = "study.json"
RESULT_NAME = "result.json"
PHASE2_DIR = "phase2"
ITEMS_NAME = "items.json"


class Study:
    """One participant's run of the paper's protocol. Use ``Study.open``.

    Args:
      directory: the participant's folder.
      session: the phase I session (in ``directory``/session).
      notes: the kit's General MIDI notes.
      config: the protocol's sizes and the participant's seed.
      participant: the participant's id.
    """

    def __init__(self, directory: pathlib.Path, session: Session, notes: list[int | None],
                 config: ExperimentConfig, participant: str, consent: Consent | None = None):
        self.directory, self.config, self.participant = directory, config, participant
        self.consent = consent
        self.desk = Desk(session, notes, phase="phase1", total=config.n_ratings, blind=True)
        self.steps = Steps(directory, config.seed)
        self._lock = threading.Lock()
        self._items: list[dict] | None = None
        self._blind: list[dict] = []
        self._drawing: threading.Thread | None = None
        self._draw_progress = {"done": 0, "total": 0, "started": 0.0, "expected_s": None}
        self._generation = 0  # draws started; an undo during one makes it stale
        self._error: str | None = None
        self._load_phase_two()
        if self.desk.done and self._items is None:
            self._start_drawing()
        elif self._items is not None and len(self._blind) == len(self._items):
            self._finish()

    @classmethod
    def open(cls, directory: str | os.PathLike, kit: Kit, notes: list[int | None],
             config: ExperimentConfig, participant: str, *,
             session_config: SessionConfig = SessionConfig(),
             train: TrainConfig = TrainConfig(), pipeline: Pipeline = Pipeline(),
             consent: Consent | None = None, hub: Hub | None = None) -> "Study":
        """Opens (resumes) or starts the participant in ``directory``, on ``kit`` and its
        General MIDI ``notes`` (``Kit.notes``); ``consent``: the page to agree to first.

        A new participant is recorded with ``config``; an existing one keeps the sizes
        and seed it started with.
        """
        directory = pathlib.Path(directory)
        meta_path = directory / STUDY_NAME
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            config = ExperimentConfig(**meta["config"])
        else:
            meta = {"participant": participant, "created": now(),
                    "config": dataclasses.asdict(config)}
            atomic_write_bytes(meta_path, (json.dumps(meta, indent=1) + "\n").encode())
        session = Session(kit, directory / "session", pipeline=pipeline, train=train,
                          config=dataclasses.replace(session_config, seed=config.seed),
                          hub=hub)
        return cls(directory, session, notes, config, participant, consent)

    # -- phases ---------------------------------------------------------------------------

    @property
    def phase(self) -> str:
        """``consent``, ``headphones``, ``practice``, ``phase1``, ``drawing``, ``phase2``,
        ``done`` or ``error``. A participant with ratings from before the steps existed
        goes on where they were."""
        with self._lock:
            if self._error is not None:
                return "error"
            if self.desk.session.n_ratings == 0 and self._items is None:
                step = self.steps.phase(None if self.consent is None else self.consent.digest)
                if step is not None:
                    return step
            if not self.desk.done:
                return "phase1"
            if self._items is None:
                return "drawing"
            return "phase2" if len(self._blind) < len(self._items) else "done"

    def current(self) -> Item:
        phase = self.phase
        if phase == "practice":
            loop = self.steps.practice_loop(self.desk.session)
            return Item(PRACTICE_KEY, "practice", 1, 1, loop, True)
        if phase == "phase1":
            return self.desk.current()
        if phase != "phase2":
            raise Refused(f"no loop to rate while the study is {self._phase_words(phase)}")
        with self._lock:
            index = len(self._blind)
            loop = self._item_loop(index)
        return Item(f"e{index}", "phase2", index + 1, len(self._items), loop, True)

    def rate(self, key: str, liked: bool) -> None:
        phase = self.phase
        if phase == "practice" and key == PRACTICE_KEY:
            self.steps.practice_loop(self.desk.session)  # rated unheard: it exists now
            self.steps.rate_practice(liked)
            return
        if phase == "phase1":
            self.desk.rate(key, liked)
            if self.desk.done:
                self._start_drawing()
            return
        with self._lock:
            index = len(self._blind)
            if phase != "phase2" or key != f"e{index}":
                raise Refused(self._why_not(key, phase))
            entry = {"key": key, "group": self._items[index]["group"], "liked": bool(liked),
                     "score": self._items[index]["score"], "time": now()}
            append_line(self.directory / PHASE2_DIR / LOG_NAME, entry)
            self._blind.append(entry)
            finished = len(self._blind) == len(self._items)
        if finished:
            self._finish()

    def undo(self, key: str) -> None:
        """Takes back the last rating of the phase under way, which must be loop ``key``'s:
        logged, nothing deleted (phase I: ``Session.undo``; phase II: an undo line in its
        log). Refused across the phase boundary and once the study is done."""
        phase = self.phase
        if phase == "drawing":  # phase I's last rating: the pool drawn from it is dropped
            with self._lock:
                self._generation += 1
                self._drawing = None
            phase = "phase1"
        if phase == "phase1":
            self.desk.undo(key)
            return
        if phase != "phase2":
            raise Refused({"done": "the study is finished: its ratings are final",
                           }.get(phase, f"nothing to undo while the study is"
                                        f" {self._phase_words(phase)}"))
        with self._lock:
            if not self._blind:
                raise Refused("nothing to undo in phase II yet; phase I's ratings are final")
            last = self._blind[-1]["key"]
            if key != last:
                raise Refused(f"loop {key} is not the last rating (loop {last} is): it was"
                              " undone already")
            append_line(self.directory / PHASE2_DIR / LOG_NAME, {"undo": key, "time": now()})
            self._blind.pop()

    def agree(self) -> None:
        """Logs the participant's "I agree" to the server's consent page."""
        if self.consent is None:
            raise Refused("this study has no consent page")
        self.steps.agree(self.consent.name, self.consent.digest)

    def answer_headphones(self, trial: int, answer: int) -> dict:
        """Records a headphone-check answer (``Steps.answer``)."""
        if self.phase != "headphones":
            raise Refused("the headphone check is not under way")
        return self.steps.answer(trial, answer)

    def _why_not(self, key: str, phase: str) -> str:
        if key.startswith("e") and int(key[1:]) < len(self._blind):
            return f"loop {key} is already rated; each loop takes one rating"
        if key.isdigit():
            return self.desk._why_not(key)
        if phase != "phase2":
            return f"no loop to rate while the study is {self._phase_words(phase)}"
        return f"loop {key} is not the loop being rated; reload the page for the current one"

    @staticmethod
    def _phase_words(phase: str) -> str:
        return {"drawing": "drawing the second phase's loops", "done": "finished",
                "error": "stopped by an error", "consent": "asking for consent",
                "headphones": "checking headphones",
                "practice": "at the practice loop"}.get(phase, phase)

    def state(self) -> dict:
        phase = self.phase
        session = self.desk.session
        state = {"phase": phase, "participant": self.participant,
                 "phase1_total": self.config.n_ratings, "phase1_ratings": session.n_ratings,
                 "phase2_total": 2 * self.config.n_eval, "phase2_ratings": len(self._blind),
                 "last_rated": None}
        if phase in ("phase1", "drawing") and session.history:
            state["last_rated"] = str(session.history[-1].loop_id)
        if phase == "phase2" and self._blind:
            state["last_rated"] = self._blind[-1]["key"]
        if phase == "consent":
            state["consent"] = {"file": self.consent.name, "digest": self.consent.digest}
        if phase == "headphones":
            state["headphones"] = self.steps.headphones()
        if phase == "drawing":
            state["drawing"] = self._drawing_progress()
        if phase == "done":
            result = json.loads((self.directory / RESULT_NAME).read_text())
            state["result"] = {k: result[k] for k in ("theta_init", "theta_final", "delta")}
        if phase == "error":
            state["error"] = self._error
        return state

    def _drawing_progress(self) -> dict:
        """Phase II's draw so far: ``done`` of ``total`` groups, ``elapsed_s``, and
        ``estimate_s`` left (from the median draw of the participants before, else from
        the groups drawn; None before either is known)."""
        with self._lock:
            p = dict(self._draw_progress)
        elapsed = time.monotonic() - p["started"] if p["started"] else 0.0
        expected = p["expected_s"]
        if p["done"] and p["total"]:
            expected = elapsed * p["total"] / p["done"]
        left = None if expected is None else max(0.0, expected - elapsed)
        return {"done": p["done"], "total": p["total"], "elapsed_s": round(elapsed, 1),
                "estimate_s": None if left is None else round(left, 1)}

    # -- phase II ----------------------------------------------------------------------------

    def _load_phase_two(self) -> None:
        folder = self.directory / PHASE2_DIR
        if not (folder / ITEMS_NAME).exists():
            return
        self._items = json.loads((folder / ITEMS_NAME).read_text())
        self._blind = []
        for entry in read_lines(folder / LOG_NAME):  # undo lines take back the last rating
            if "undo" in entry:
                if self._blind and self._blind[-1]["key"] == entry["undo"]:
                    self._blind.pop()
            else:
                self._blind.append(entry)

    def _start_drawing(self) -> None:
        with self._lock:
            if self._drawing is not None or self._items is not None:
                return
            self._drawing = threading.Thread(target=self._draw, daemon=True,
                                             name=f"phase2-{self.participant}")
        self._drawing.start()

    def _drew(self, done: int, total: int) -> None:
        with self._lock:
            self._draw_progress.update(done=done, total=total)

    def _draw(self) -> None:
        with self._lock:
            generation = self._generation
            self._draw_progress.update(started=time.monotonic(),
                                       expected_s=durations(self.directory.parent)[
                                           "draw_seconds"])
        try:
            session = self.desk.session
            pool, reached = draw_phase_two(session, self.config, progress=self._drew)
            folder = self.directory / PHASE2_DIR
            items = []
            for index, (group, loop) in enumerate(pool):
                write_audio(folder / f"e{index}.wav", loop.audio, session.kit.sr, "float32")
                items.append({"key": f"e{index}", "group": group, "score": loop.score,
                              "loop": loop.record()})
            # The pool exists once items.json does; WAVs first, so it never points at none.
            # A pool drawn before phase I's last rating was undone is dropped (its WAVs are
            # written over by the next draw).
            with self._lock:
                if generation != self._generation:
                    return
                atomic_write_bytes(folder / "reached.json",
                                   (json.dumps(reached) + "\n").encode())
                atomic_write_bytes(folder / ITEMS_NAME, (json.dumps(items) + "\n").encode())
                self._items = items
            self.steps.drawn(time.monotonic() - self._draw_progress["started"])
        except Exception as err:  # reported on the page and by state(); the log is intact
            with self._lock:
                if generation == self._generation:
                    self._error = f"drawing phase II failed: {err}"

    def _item_loop(self, index: int) -> SessionLoop:
        entry = self._items[index]
        return recorded_loop(entry["loop"], self.desk.session, float(entry["score"]))

    def _finish(self) -> None:
        """Writes result.json and both critics (idempotent)."""
        session = self.desk.session
        session.wait()
        reached_path = self.directory / PHASE2_DIR / "reached.json"
        reached = json.loads(reached_path.read_text()) if reached_path.exists() else {}
        history = [{"rating": i + 1, "liked": r.liked, "critic_version": r.critic_version,
                    "samples": [session.kit.names[j] for j in r.samples]}
                   for i, r in enumerate(session.history)]
        result = {"rater": self.participant, "seed": self.config.seed,
                  "n_ratings": self.config.n_ratings, "n_eval": self.config.n_eval,
                  **thetas(self._blind), **reached,
                  "phase1_like_rate": float(np.mean([h["liked"] for h in history])),
                  "history": history,
                  "phase2": [{k: b[k] for k in ("group", "liked", "score")}
                             for b in self._blind],
                  "critics": {"initial": "critic_initial.critic",
                              "final": "critic_final.critic"}}
        shutil.copyfile(session.directory / INITIAL_CRITIC_NAME,
                        self.directory / "critic_initial.critic")
        shutil.copyfile(session.directory / CRITIC_NAME, self.directory / "critic_final.critic")
        atomic_write_bytes(self.directory / RESULT_NAME,
                           (json.dumps(result, indent=1) + "\n").encode())

    # -- files -------------------------------------------------------------------------------

    def audio(self, key: str) -> bytes:
        if key.startswith("e"):
            with self._lock:
                known = self._items is not None and int(key[1:]) < len(self._items)
            if not known:
                raise KeyError(key)
            return playback_wav(self.directory / PHASE2_DIR / f"{key}.wav", self.desk.session)
        return self.desk.audio(key)

    def download(self, key: str, kind: str) -> tuple[bytes, str]:
        raise KeyError(key)  # a study is blind: its loops come back only in the archive

    def practice_audio(self) -> bytes:
        """What the page plays of the practice loop (``playback_wav``)."""
        self.steps.practice_loop(self.desk.session)
        return playback_wav(self.directory / PRACTICE_DIR / "loop.wav", self.desk.session)

    def archive(self, path: pathlib.Path, audio: str = "flac") -> None:
        """Writes the whole participant folder to the zip ``path``: logs, critics, the
        result, and the audio as 16-bit FLAC or none (``study_archive.write_archive``)."""
        self.desk.session.wait()
        write_archive(self.directory, self.participant, path, audio)

    def close(self) -> None:
        if self._drawing is not None:
            self._drawing.join()
        self.desk.close()
