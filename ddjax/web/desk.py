"""Desks: what one person rates next, one loop at a time, one rating per loop.

A desk is a plain, thread-safe Python object over a ``Session``, so a front end (``ddjax
serve``) only translates requests into calls, and tests drive it without a browser. Every
rating, undo and skip goes to the session's durable log before the desk moves on. A
study's phases (``ddjax.web.study``) are desks too.

Loop keys are strings: a session's loop id (``"12"``) in free rating and phase I, ``"eN"``
in a study's phase II.
"""

from __future__ import annotations

import collections
import dataclasses
import pathlib
import re
import threading

import numpy as np
import soundfile as sf

from ddjax.core.loops import Loop as LoopArrays
from ddjax.errors import DdjaxError
from ddjax.io.encode import audio_bytes
from ddjax.io.export import loop_bar_path, midi_bytes, track_names, track_notes
from ddjax.io.files import loop_json, loop_record
from ddjax.io.patterns import load_loop_prior
from ddjax.session.bundle import liked_zip
from ddjax.session.session import Rating, Session, SessionLoop, rated_loop
from ddjax.web.edit import Edit

PLAYBACK_BARS = 2
KEY_PATTERN = re.compile(r"(?:0|[1-9][0-9]{0,8}|e(?:0|[1-9][0-9]{0,5}))")


class Refused(DdjaxError):
    """A rating the desk will not take: stale, a duplicate, or out of phase."""


@dataclasses.dataclass(frozen=True)
class Item:
    """A loop as the page shows it.

    Attributes:
      key: the loop's key (``"12"`` or ``"e3"``).
      phase: ``"rate"``, ``"phase1"`` or ``"phase2"``.
      number: 1-based position of this rating within its phase.
      total: ratings in the phase, None when open-ended.
      loop: the loop.
      blind: hide the critic's score from the page (a study's ratings are blind).
    """

    key: str
    phase: str
    number: int
    total: int | None
    loop: SessionLoop
    blind: bool

    def describe(self, kinds: list[str | None], kit_names: tuple[str, ...]) -> dict:
        """The JSON the page draws: grid, rows with sample names and kinds, score."""
        return {"key": self.key, "phase": self.phase, "number": self.number,
                "total": self.total, "grid": np.asarray(self.loop.grid).astype(int).tolist(),
                "velocity": (None if self.loop.velocity is None
                             else np.asarray(self.loop.velocity).astype(int).tolist()),
                "swing": self.loop.swing,
                "humanize": self.loop.humanize.record() if self.loop.humanize else None,
                "rows": [{"name": name, "kind": kinds[kit_names.index(name)]}
                         for name in self.loop.sample_paths],
                "score": None if self.blind else self.loop.score,
                "critic_version": None if self.blind else self.loop.critic_version,
                "bpm": self.loop.bpm}


def playback_wav(audio: np.ndarray | pathlib.Path, session: Session) -> bytes:
    """The first ``PLAYBACK_BARS`` bars of a listening render (an array or a WAV file),
    as WAV bytes: the page plays bar 1, then loops bar 2, which holds bar 1's tails."""
    frames = PLAYBACK_BARS * session.pipeline.render.bar_samples
    if isinstance(audio, pathlib.Path):
        audio, _ = sf.read(audio, frames=frames, dtype="float32")
    return audio_bytes(audio[:frames], session.kit.sr, "float32")


class Desk:
    """Free rating over a session: one current loop, one rating per loop.

    Args:
      session: an on-disk session.
      notes: the General MIDI note of every kit sample (``Kit.notes``).
      phase: the phase name items carry.
      total: ratings in the phase, or None.
      blind: hide scores and the liked list (a study's phase I).
    """

    def __init__(self, session: Session, notes: list[int | None], *, phase: str = "rate",
                 total: int | None = None, blind: bool = False):
        if session.directory is None:
            raise ValueError("a desk needs an on-disk session")
        self.session, self.notes = session, notes
        self.phase, self.total, self.blind = phase, total, blind
        self._lock = threading.Lock()
        self._current: SessionLoop | None = None
        self._waiting: collections.deque[SessionLoop] = collections.deque()  # shown before new ones

    @property
    def done(self) -> bool:
        return self.total is not None and self.session.n_ratings >= self.total

    def current(self) -> Item:
        """The loop to rate now (blocks while the session samples it)."""
        with self._lock:
            if self.done:
                raise Refused(f"all {self.total} ratings of this phase are in")
            if self._current is None:
                self._current = (self._waiting.popleft() if self._waiting
                                 else self.session.next_loop())
            return self._item(self._current)

    def rate(self, key: str, liked: bool, edit: Edit | None = None) -> None:
        """Rates the current loop (on disk before this returns); refuses any other key.
        With ``edit``, rates the loop as edited and heard ("Rate this version"); refused
        in a study, whose loops are rated as the protocol proposes them."""
        with self._lock:
            if self._current is None or str(self._current.id) != key:
                raise Refused(self._why_not(key))
            loop = self._current
            if edit is not None:
                if self.blind or self.phase != "rate":
                    raise Refused("a study's loops are rated as they are proposed")
                if edit.changes(loop.grid, loop.velocity):
                    loop = self.session.edited(loop, *edit.heard())
            self.session.rate(loop, liked)
            self._current = None

    def shape(self, key: str) -> tuple[int, int]:
        """The grid shape (tracks, steps) of the loop ``key`` (KeyError: none such)."""
        return self._loop_arrays(key).grid.shape

    def audition(self, key: str, edit: Edit) -> tuple[bytes, float | None, int]:
        """What the page plays of the loop ``key`` (current or rated) as ``edit`` changes
        it: the same ``PLAYBACK_BARS`` bars as ``audio``, at the edit's tempo and swing
        (the session's where it names none). Also the current critic's score of the
        version that sounds, as a rating would rate it (at the session's tempo and swing;
        None where the loop space does not allow it, or in a blind phase), and how many
        ratings that critic has learned."""
        loop = self._loop_arrays(key)
        grid, velocity = edit.heard()
        heard = loop._replace(grid=grid, velocity=loop.velocity if velocity is None
                              else velocity)
        render = self.session.pipeline.render
        audio = self.session.audition(
            heard, render.bpm if edit.bpm is None else edit.bpm,
            render.swing if edit.swing is None else edit.swing, PLAYBACK_BARS)
        score, version = None, self.session.n_trained
        if not self.blind:
            try:
                score, version = self.session.checked_score_of(heard)
            except DdjaxError:  # e.g. a kick row that --four-on-floor does not allow
                pass
        return audio_bytes(audio, self.session.kit.sr, "float32"), score, version

    def _loop_arrays(self, key: str) -> LoopArrays:
        current = self._current
        if current is not None and str(current.id) == key:
            return LoopArrays(current.grid, current.samples, current.velocity)
        rating = self._rating(key)
        return LoopArrays(rating.grid, rating.samples, rating.velocity)

    def _rating(self, key: str) -> Rating:
        """The rating in force of the loop ``key`` (KeyError: none)."""
        rating = next((r for r in self.session.history if str(r.loop_id) == key), None)
        if rating is None:
            raise KeyError(key)
        return rating

    def undo(self, key: str) -> None:
        """Takes back the rating of loop ``key``, which must be the last: its loop is the
        current one again, and the loop that was current comes right after it. Refused
        where ``key`` is not the last rating, so an undo sent twice (a double click, two
        tabs) takes back one rating, not two."""
        with self._lock:
            if not self.session.history:
                raise Refused("nothing to undo: there is no rating yet")
            last = str(self.session.history[-1].loop_id)
            if key != last:
                raise Refused(f"loop {key} is not the last rating (loop {last} is): it was"
                              " undone already")
            loop = self.session.undo()
            if self._current is not None:
                self._waiting.appendleft(self._current)
            self._current = loop

    def skip(self, key: str) -> None:
        """Passes the current loop ``key`` over, unrated (logged as a skip)."""
        with self._lock:
            if self.blind:
                raise Refused("a study's loops are all rated; none can be skipped")
            if self._current is None or str(self._current.id) != key:
                raise Refused(self._why_not(key))
            self.session.skip(self._current)
            self._current = None

    def more_like(self, key: str) -> None:
        """Makes a variation on the rated loop ``key`` (a chain that starts there) the
        current loop (waits while it is drawn); the loop that was current comes right
        after it."""
        with self._lock:
            if self.blind:
                raise Refused("a study's loops come from its protocol only")
            if not key.isdigit() or not any(r.loop_id == int(key)
                                            for r in self.session.history):
                raise KeyError(key)
            self.session.more_like(int(key))
            if self._current is not None:
                self._waiting.appendleft(self._current)
            self._current = self.session.next_loop()

    def set_style(self, style: str | None) -> None:
        """Draws the loops after those already prepared (the current one and the session's
        next few) from the learned prior's ``style`` (None: the mix of every style).
        A DdjaxError naming the styles where the prior has no such style; refused in a
        study (it keeps its protocol) and under a loop prior without styles."""
        with self._lock:
            if self.blind or self.phase != "rate":
                raise Refused("a study keeps its protocol: its style is set when the server"
                              " starts (--style)")
            prior = self.session.config.loop_prior
            if prior != "learned":
                raise Refused(f"styles are for the learned loop prior; this session draws"
                              f" from the {prior} prior")
            self.session.set_style(style)

    def styles(self) -> list[str]:
        """The styles a person can pick (``set_style``): the learned prior's, or none."""
        if self.blind or self.phase != "rate" or self.session.config.loop_prior != "learned":
            return []
        return list(load_loop_prior().styles)

    def liked_zip(self) -> bytes:
        """Every liked loop as MIDI, a one-bar WAV and JSON, with a README
        (``bundle.liked_zip``)."""
        if self.blind:
            raise KeyError("liked.zip")
        session = self.session
        return liked_zip(list(session.history), session.kit, session.pipeline.render,
                         self.notes, title=f"ddjax session {session.directory.name}",
                         loudness=session.config.loudness)

    def _why_not(self, key: str) -> str:
        if key.isdigit() and any(r.loop_id == int(key) for r in self.session.history):
            return f"loop {key} is already rated; each loop takes one rating"
        if self.done:
            return f"all {self.total} ratings of this phase are in"
        return f"loop {key} is not the loop being rated; reload the page for the current one"

    def _item(self, loop: SessionLoop) -> Item:
        return Item(str(loop.id), self.phase, self.session.n_ratings + 1, self.total, loop,
                    self.blind)

    def liked(self) -> list[dict]:
        """The liked loops, newest first: key and sample names."""
        names = self.session.kit.names
        bpm = self.session.pipeline.render.bpm
        return [{"key": str(r.loop_id), "samples": [names[i] for i in r.samples], "bpm": bpm}
                for r in reversed(self.session.history) if r.liked]

    def state(self) -> dict:
        likes = [r.liked for r in self.session.history]
        history = self.session.history
        state = {"phase": self.phase, "ratings": len(likes), "total": self.total,
                 "likes": likes, "liked": [] if self.blind else self.liked(),
                 "last_rated": str(history[-1].loop_id) if history else None}
        styles = self.styles()
        if styles:  # the page's style selector: every style, and the one drawn from now
            state.update(styles=styles, style=self.session.config.style)
        return state

    def download(self, key: str, kind: str) -> tuple[bytes, str]:
        """A rated loop as ``wav`` (the preview, 24-bit), ``bar`` (one seamless bar, 24-bit,
        with its tempo), ``mid`` or ``json``: the bytes and a file name."""
        rating = self._rating(key)
        kit, render = self.session.kit, self.session.pipeline.render
        bpm = render.bpm
        name = f"loop_{rating.loop_id:05d}"
        if kind == "wav":
            audio, _ = sf.read(self.session.wav_path(rating.loop_id), dtype="float32")
            return audio_bytes(audio, kit.sr), f"{name}.wav"
        if kind == "bar":
            bar = self.session.loop_bar(rated_loop(rating))
            return (audio_bytes(bar, kit.sr, tempo=(bpm, rating.grid.shape[-1] // 4)),
                    loop_bar_path(name, bpm).name)
        if kind == "mid":
            notes = track_notes([self.notes[i] for i in rating.samples])
            return (midi_bytes(rating.grid, notes, bpm, render.swing, rating.velocity,
                               render.humanize,
                               track_names([kit.names[i] for i in rating.samples])),
                    f"{name}.mid")
        record = loop_record(rating.grid, [kit.names[i] for i in rating.samples], bpm=bpm,
                             swing=render.swing, velocity=rating.velocity,
                             humanize=render.humanize)
        return loop_json(record).encode(), f"{name}.json"

    def audio(self, key: str) -> bytes:
        """What the page plays of the current loop or of a rated one (``playback_wav``)."""
        current = self._current
        if current is not None and str(current.id) == key:
            return playback_wav(current.audio, self.session)
        self._rating(key)  # KeyError where there is none
        return playback_wav(self.session.wav_path(int(key)), self.session)

    def close(self) -> None:
        self.session.close()


