"""`ddjax play` driven through a pseudo-terminal, one key at a time."""

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest
from conftest import BUNDLED_KIT


def read_until(fd, text, timeout=240.0):
    out, end = b"", time.time() + timeout
    while time.time() < end:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if text.encode() in out:
                return out.decode(errors="replace")
    raise AssertionError(f"did not see {text!r}; got {out[-500:]!r}")


@pytest.mark.slow
def test_play_in_a_terminal(tmp_path):
    session = tmp_path / "s"
    leader, follower = pty.openpty()
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}  # no aplay: WAV path shown
    proc = subprocess.Popen([sys.executable, "-m", "ddjax.cli.main", "play", "--kit",
                             str(BUNDLED_KIT), "--session", str(session)],
                            stdin=follower, stdout=follower, stderr=follower, env=env,
                            close_fds=True)
    os.close(follower)
    try:
        read_until(leader, "> ")
        for key, answer in [("x", "press one of"), ("l", "> "), ("r", "current.wav"),
                            ("d", "> "), ("e", "exported"), ("s", "> "),
                            ("u", "rate it again"), ("l", "> ")]:
            os.write(leader, key.encode())  # one key, no Enter
            read_until(leader, answer)
        os.write(leader, b"q")
        read_until(leader, "ratings saved")
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    log = [json.loads(l) for l in (session / "ratings.jsonl").read_text().splitlines()]
    # Like loop 0, dislike 1, skip 2, take 1's rating back, like 1: nothing is deleted.
    assert [(e.get("id"), e.get("liked"), e.get("skip"), e.get("undo")) for e in log] == [
        (0, True, None, None), (1, False, None, None), (None, None, 2, None),
        (None, None, None, 1), (1, True, None, None)]
    assert len(list((session / "exports").glob("*.mid"))) == 1


@pytest.mark.slow
def test_end_of_input_ends_cleanly(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ddjax.cli.main", "play", "--session",
                           str(tmp_path / "s")], input="l\n", capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 rating saved in" in done.stdout  # one, singular
