"""Studies: the paper's protocol (section 4) for one participant, over rating desks.

``Study``: phase I is a ``desk.Desk`` with ``n_ratings`` ratings; then phase II's pool
(``experiment.draw_phase_two``) is drawn in the background; then the pool is rated blind,
without training; then ``result.json`` holds theta_init, theta_final and delta, in the
format of ``ddjax experiment`` (so ``ddjax experiment --from-sessions`` aggregates both).

A participant's folder::

    study.json            id, seed and sizes
    session/              the phase I Session (ratings.jsonl, wav/, critics)
    phase2/items.json     the blind pool: group, loop and score of each item, in order
    phase2/eN.wav         item N's audio
    phase2/ratings.jsonl  phase II ratings, fsync'ed, one line per item
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
import zipfile

import numpy as np

from ddjax.core.groove import of_record, recorded_swing
from ddjax.core.loops import Loop as LoopArrays
from ddjax.core.pipeline import Pipeline
from ddjax.io.files import atomic_write_bytes, write_audio
from ddjax.io.kit import Kit
from ddjax.learning.training import TrainConfig
from ddjax.session.experiment import ExperimentConfig, draw_phase_two, thetas
from ddjax.session.journal import append_line, now
from ddjax.session.session import (
    CRITIC_NAME,
    INITIAL_CRITIC_NAME,
    LOG_NAME,
    Session,
    SessionConfig,
    SessionLoop,
)
from ddjax.web.desk import Desk, Item, Refused, playback_wav

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
                 config: ExperimentConfig, participant: str):
        self.directory, self.config, self.participant = directory, config, participant
        self.desk = Desk(session, notes, phase="phase1", total=config.n_ratings, blind=True)
        self._lock = threading.Lock()
        self._items: list[dict] | None = None
        self._blind: list[dict] = []
        self._drawing: threading.Thread | None = None
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
             train: TrainConfig = TrainConfig(), pipeline: Pipeline = Pipeline()
             ) -> "Study":
        """Opens (resumes) or starts the participant in ``directory``, on ``kit`` and its
        General MIDI ``notes`` (``Kit.notes``).

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
                          config=dataclasses.replace(session_config, seed=config.seed))
        return cls(directory, session, notes, config, participant)

    # -- phases ---------------------------------------------------------------------------

    @property
    def phase(self) -> str:
        """``phase1``, ``drawing``, ``phase2``, ``done`` or ``error``."""
        with self._lock:
            if self._error is not None:
                return "error"
            if not self.desk.done:
                return "phase1"
            if self._items is None:
                return "drawing"
            return "phase2" if len(self._blind) < len(self._items) else "done"

    def current(self) -> Item:
        phase = self.phase
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
                "error": "stopped by an error"}.get(phase, phase)

    def state(self) -> dict:
        phase = self.phase
        state = {"phase": phase, "participant": self.participant,
                 "phase1_total": self.config.n_ratings, "phase1_ratings": self.desk.session.n_ratings,
                 "phase2_total": 2 * self.config.n_eval, "phase2_ratings": len(self._blind)}
        if phase == "done":
            result = json.loads((self.directory / RESULT_NAME).read_text())
            state["result"] = {k: result[k] for k in ("theta_init", "theta_final", "delta")}
        if phase == "error":
            state["error"] = self._error
        return state

    # -- phase II ----------------------------------------------------------------------------

    def _load_phase_two(self) -> None:
        folder = self.directory / PHASE2_DIR
        if not (folder / ITEMS_NAME).exists():
            return
        self._items = json.loads((folder / ITEMS_NAME).read_text())
        log = folder / LOG_NAME
        if log.exists():
            data = log.read_bytes()
            if data and not data.endswith(b"\n"):  # a write cut short by a crash
                data = data[: data.rfind(b"\n") + 1]
                atomic_write_bytes(log, data)
            self._blind = [json.loads(line) for line in data.splitlines() if line.strip()]

    def _start_drawing(self) -> None:
        with self._lock:
            if self._drawing is not None or self._items is not None:
                return
            self._drawing = threading.Thread(target=self._draw, daemon=True,
                                             name=f"phase2-{self.participant}")
        self._drawing.start()

    def _draw(self) -> None:
        try:
            session = self.desk.session
            pool, reached = draw_phase_two(session, self.config)
            folder = self.directory / PHASE2_DIR
            items = []
            for index, (group, loop) in enumerate(pool):
                write_audio(folder / f"e{index}.wav", loop.audio, session.kit.sr, "float32")
                items.append({"key": f"e{index}", "group": group, "score": loop.score,
                              "loop": loop.record()})
            # The pool exists once items.json does; WAVs first, so it never points at none.
            atomic_write_bytes(folder / ITEMS_NAME, (json.dumps(items) + "\n").encode())
            atomic_write_bytes(folder / "reached.json", (json.dumps(reached) + "\n").encode())
            with self._lock:
                self._items = items
        except Exception as err:  # reported on the page and by state(); the log is intact
            with self._lock:
                self._error = f"drawing phase II failed: {err}"

    def _item_loop(self, index: int) -> SessionLoop:
        entry, session = self._items[index], self.desk.session
        record = entry["loop"]
        audio = np.zeros(0, np.float32)  # served from the item's WAV file
        velocity = record.get("velocity")
        arrays = LoopArrays(np.array(record["grid"], bool),
                            np.array([session.kit.names.index(n) for n in record["samples"]],
                                     np.int32),
                            None if velocity is None else np.array(velocity, np.int32))
        render = dataclasses.replace(session.pipeline.render, bpm=float(record["bpm"]),
                                     swing=recorded_swing(record, "phase II"),
                                     humanize=of_record(record, "phase II"))
        return SessionLoop.of(-1, arrays, audio, kit_names=session.kit.names,
                              score=float(entry["score"]), critic_version=-1, render=render)

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

    def archive(self, path: pathlib.Path) -> None:
        """Writes the whole participant folder to the zip ``path``: logs, WAVs, critics
        and the result. A full study's audio is a few hundred MB, so it streams to disk
        and the audio is stored, not deflated."""
        self.desk.session.wait()
        with zipfile.ZipFile(path, "w") as archive:
            for item in sorted(self.directory.rglob("*")):
                if item.is_file() and not item.name.startswith("."):
                    archive.write(item, f"{self.participant}/{item.relative_to(self.directory)}",
                                  zipfile.ZIP_STORED if item.suffix == ".wav"
                                  else zipfile.ZIP_DEFLATED)

    def close(self) -> None:
        if self._drawing is not None:
            self._drawing.join()
        self.desk.close()
