"""``ddjax play``: the thin interactive front end of a Session in a terminal.

It plays each loop through the first player it finds (the ``sounddevice`` package, else
``aplay``, ``afplay`` or ``ffplay``; with none, it writes the WAV and prints its path),
then reads one key: ``l`` like, ``d`` dislike, ``u`` undo (takes the last rating back and
plays its loop again), ``s`` skip (logged: the loop never comes back), ``r`` replay, ``e``
export, ``q`` quit. Other keys re-prompt; end of input quits cleanly. On a terminal a key
needs no Enter; from a pipe, each line's first character is the key.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import subprocess
import sys
from typing import IO

import numpy as np

from ddjax.errors import DdjaxError
from ddjax.io.export import export_loop, track_notes
from ddjax.io.files import write_audio
from ddjax.session.session import Session, SessionLoop
from ddjax.session.terminal import counted

KEYS = "l like, d dislike, u undo, s skip, r replay, e export, q quit"


class Player:
    """Plays a WAV file without blocking; ``stop`` cuts it short."""

    name = "none"

    def play(self, path: pathlib.Path, audio: np.ndarray, sr: int) -> str | None:
        """Starts playback; returns a line to show the person, if any."""
        return f"no audio player found; the loop is at {path}"

    def stop(self) -> None:
        pass


class CommandPlayer(Player):
    COMMANDS = {"aplay": ["aplay", "-q"], "afplay": ["afplay"],
                "ffplay": ["ffplay", "-nodisp", "-autoexit", "-loglevel", "quiet"]}

    def __init__(self, name: str):
        self.name = name
        self._process: subprocess.Popen | None = None

    def play(self, path, audio, sr):
        self.stop()
        self._process = subprocess.Popen([*self.COMMANDS[self.name], str(path)],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        return None

    def stop(self):
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=2)
        self._process = None


class SoundDevicePlayer(Player):
    name = "sounddevice"

    def __init__(self, sounddevice):
        self._sd = sounddevice

    def play(self, path, audio, sr):
        self._sd.play(audio, sr)
        return None

    def stop(self):
        self._sd.stop()


def find_player() -> Player:
    """sounddevice if installed (and it finds an output), else aplay, afplay or ffplay."""
    try:
        import sounddevice
        sounddevice.check_output_settings()
        return SoundDevicePlayer(sounddevice)
    except Exception:  # not installed, no PortAudio, or no output device
        pass
    for name in CommandPlayer.COMMANDS:
        if shutil.which(name):
            return CommandPlayer(name)
    return Player()


@contextlib.contextmanager
def _keys_without_enter(stream: IO[str]):
    """On a terminal: single keys, no echo, for the whole session (no race with typing)."""
    if not stream.isatty():
        yield
        return
    import termios
    import tty
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def read_key(stream: IO[str]) -> str | None:
    """One key from ``stream``; None at end of input."""
    if stream.isatty():
        key = os.read(stream.fileno(), 1).decode(errors="replace")
        return None if key in ("", "\x04") else key.lower()
    line = stream.readline()
    if not line:
        return None
    return line.strip()[:1].lower() or " "


def _status(session: Session, loop: SessionLoop) -> str:
    rate = f"{100 * session.like_rate:.0f}%" if session.n_ratings else "-"
    names = ", ".join(pathlib.PurePosixPath(p).stem for p in loop.sample_paths)
    return (f"[{counted(session.n_ratings, 'rating')}, like-rate {rate}] loop {loop.id}:"
            f" critic {loop.score:.2f} | {names}")


def play(session: Session, directory: pathlib.Path, *, keys: IO[str] = sys.stdin,
         out: IO[str] = sys.stdout, player: Player | None = None) -> None:
    """Runs the rating loop until ``q`` or end of input."""
    player = player or find_player()
    say = lambda text: print(text, file=out, flush=True)
    say(f"ddjax play: {KEYS}. Session in {directory}")
    with _keys_without_enter(keys):
        _rate_loops(session, directory, keys, say, out, player)


def _rate_loops(session, directory, keys, say, out, player) -> None:
    current = directory / "current.wav"
    notes = None
    waiting: list[SessionLoop] = []  # an undone rating's loop, then the loop that was playing
    try:
        while True:
            loop = waiting.pop(0) if waiting else session.next_loop()
            write_audio(current, loop.audio, session.kit.sr, "float32")
            say(_status(session, loop))
            message = player.play(current, loop.audio, session.kit.sr)
            if message:
                say(message)
            while True:
                print("> ", end="", file=out, flush=True)
                key = read_key(keys)
                if key is None or key == "q":
                    return
                if key in ("l", "d"):
                    session.rate(loop, key == "l")
                    say("liked" if key == "l" else "disliked")
                    break
                if key == "s":
                    session.skip(loop)
                    say("skipped")
                    break
                if key == "u":
                    try:
                        waiting[:0] = [session.undo(), loop]
                    except DdjaxError as err:
                        say(str(err))
                        continue
                    say(f"took back the rating of loop {waiting[0].id}: rate it again")
                    break
                if key == "r":
                    message = player.play(current, loop.audio, session.kit.sr)
                    if message:
                        say(message)
                    continue
                if key == "e":
                    notes = notes or list(session.kit.notes)
                    paths = export_loop(
                        directory / "exports" / f"loop_{loop.id:05d}", loop.record(),
                        audio=loop.audio, sr=session.kit.sr,
                        notes=track_notes([notes[i] for i in loop.samples]))
                    say("exported " + ", ".join(str(p) for p in paths))
                    continue
                say(f"press one of: {KEYS}")
    finally:
        player.stop()
        say(f"{counted(session.n_ratings, 'rating')} saved in {directory};"
            " finishing training...")
        session.close()
