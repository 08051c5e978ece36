"""What long commands show while they work: counts with their nouns, and bars on stderr."""

import io
import sys
import threading
import time

from ddjax.session.terminal import Bar, counted


class Terminal(io.StringIO):
    """stderr as a terminal: tqdm shows bars only where ``isatty`` is true."""

    def isatty(self):
        return True


def test_a_count_of_one_is_singular_and_every_other_count_plural():
    assert [counted(n, "loop") for n in (0, 1, 2, 11)] == [
        "0 loops", "1 loop", "2 loops", "11 loops"]


def test_a_bar_redraws_its_note_and_elapsed_time_while_a_call_blocks(monkeypatch):
    stderr = Terminal()
    monkeypatch.setattr("sys.stderr", stderr)
    with Bar(3, "generate", "loop", every_seconds=0.05) as bar:
        bar.note("compiling…")
        time.sleep(1.2)  # a compile: nothing updates the bar
        frames = stderr.getvalue().split("\r")
        bar.note("")
        bar.update(3)
    waiting = [f for f in frames if "compiling…" in f]
    assert len(waiting) >= 5  # about one a 0.05 s, not one when the note was set
    assert "00:00<" in waiting[0] and "00:01<" in waiting[-1]  # the elapsed time moves
    assert "3/3" in stderr.getvalue().split("\r")[-1]


def test_a_bar_is_silent_and_starts_no_thread_where_stderr_is_not_a_terminal(monkeypatch):
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    threads = threading.active_count()
    with Bar(2, "phase I", "rating", every_seconds=0.01) as bar:
        bar.note("compiling the learner…")
        assert threading.active_count() == threads
        bar.update(2)
    assert stderr.getvalue() == ""


def test_a_bar_asked_for_is_shown_anywhere_and_one_declined_nowhere(monkeypatch):
    stderr = Terminal()
    monkeypatch.setattr("sys.stderr", stderr)
    with Bar(1, "declined", "rating", enabled=False) as bar:
        bar.update(1)
    assert stderr.getvalue() == ""
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with Bar(1, "asked", "rating", enabled=True) as bar:
        bar.update(1)
    assert "asked" in sys.stderr.getvalue()
