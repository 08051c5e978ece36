"""Participants of a ``ddjax serve --study`` as client threads, for bench/study_load.py
and tests/web/test_study_load.py; plain Python and HTTP, no JAX in this process.

Each client does what the study page does (``ddjax/web/app.js``): it joins, asks for the
loop to rate (``GET /api/s/ID/current``), downloads its WAV, listens for a while, rates it
(``POST /api/s/ID/rate``), and waits through phase II's draw by polling
``GET /api/s/ID/state``. The server it measures is changing, so a field or route a given
server lacks is reported as None, never a crash.
"""

from __future__ import annotations

import atexit
import collections
import json
import pathlib
import random
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "web"))

from browser import Server

PAUSE_POLL_S = 0.5  # how often a client asks for the state while phase II is drawn
QUEUE_POLL_S = 0.5  # the page asks every 2 s; sooner here, so admission order is exact
LIKE_RATE = 0.4
RATE_TIMEOUT_S = 120.0  # a rating is on disk before it is acknowledged: seconds at most
PHASES_WITH_A_LOOP = ("phase1", "phase2")


def call(url: str, method: str = "GET", body: dict | None = None,
         timeout: float = 60.0) -> tuple[int | None, object]:
    """``(status, answer)``: the answer as JSON where it is JSON, else its bytes; status
    None (and the error's text) when the server could not be reached or took too long."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, kind = response.status, response.read(), response.headers
    except urllib.error.HTTPError as err:
        status, raw, kind = err.code, err.read(), err.headers
    except (OSError, urllib.error.URLError) as err:  # refused, reset, timed out
        return None, str(err)
    if "json" in (kind.get("Content-Type") or ""):
        try:
            return status, json.loads(raw)
        except ValueError:
            pass
    return status, raw


def rss_mb(pid: int) -> float | None:
    """The process's resident memory (``VmRSS`` in /proc/PID/status), in MB."""
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


SERVER_ARGS: list[str] = []  # more ``ddjax serve`` arguments (the tests: --no-warm-up)


class StudyServer:
    """``ddjax serve --study`` on a free port in a child process, killed on any exit.

    Args:
      folder: the study folder (a fresh one, or one to resume).
      kit: the kit folder.
      ratings, evals: ``--study-ratings`` and ``--study-eval``.
      max_participants: ``--max-participants`` (None: the server's default).
    """

    def __init__(self, folder: pathlib.Path, kit: pathlib.Path, ratings: int, evals: int,
                 max_participants: int | None = None):
        args = ["--study", "--session", str(folder), "--kit", str(kit),
                "--study-ratings", str(ratings), "--study-eval", str(evals)]
        if max_participants is not None:
            args += ["--max-participants", str(max_participants)]
        args += SERVER_ARGS
        self.launched = time.perf_counter()
        self.server = Server(*args)
        atexit.register(self.kill)
        self.url, self.pid = self.server.url, self.server.process.pid

    def status(self) -> dict | None:
        status, answer = call(self.url + "/api/status", timeout=10)
        return answer if status == 200 and isinstance(answer, dict) else None

    def wait_ready(self, timeout: float = 300.0) -> float:
        """Seconds from launch until ``/api/status`` says ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status is not None and status.get("ready"):
                return time.perf_counter() - self.launched
            time.sleep(0.1)
        raise RuntimeError(f"the study server was not ready in {timeout:g} s")

    def rss_mb(self) -> float | None:
        return rss_mb(self.pid)

    def kill(self) -> None:
        self.server.kill()


class Joiner:
    """Joins a study as the page does: ``POST /api/join`` (``/api/participants`` on a
    server from before it), then, when queued (202), polls ``GET /api/queue/TICKET``."""

    def __init__(self, url: str):
        self.url, self.route = url, "/api/join"

    def ask(self, requested: str, timeout: float) -> tuple[int | None, object]:
        route = self.route
        status, answer = call(self.url + route, "POST", {"id": requested}, timeout)
        if status in (404, 405) and route == "/api/join":
            self.route = "/api/participants"
            return self.ask(requested, timeout)
        return status, answer

    def ticket(self, ticket: str, timeout: float = 30.0) -> tuple[int | None, object]:
        return call(f"{self.url}/api/queue/{ticket}", timeout=timeout)


class Participant(threading.Thread):
    """One participant, rating until ``deadline`` (``time.monotonic()``) or the study's end;
    one whose first loop has not come by then waits ``grace_s`` more for it.

    The timings it keeps (seconds): ``join_s``, ``next_loop_s`` (each ``current`` that
    gave a loop), ``rate_s`` (each acknowledged rating), ``pause_s`` (waiting out phase II's
    draw, in all), ``steps_s`` (the steps before phase I, in all);
    ``acked``: the keys of the ratings the server acknowledged.
    """

    def __init__(self, joiner: Joiner, requested: str, deadline: float,
                 listen_seconds: float, grace_s: float, seed: int, sid: str | None = None):
        super().__init__(daemon=True, name=f"participant-{requested}")
        self.joiner, self.requested, self.deadline = joiner, requested, deadline
        self.listen_seconds, self.grace_s = listen_seconds, grace_s
        self.rng = random.Random(seed)
        self.sid = sid  # given: the participant was admitted already
        self.join_s: list[float] = []
        self.next_loop_s: list[float] = []
        self.rate_s: list[float] = []
        self.pause_s = self.steps_s = 0.0
        self.acked: list[str] = []
        self.refused: list[str] = []
        self.errors: list[str] = []
        self.phase: str | None = None

    def left(self) -> float:
        return max(1.0, self.deadline - time.monotonic()) + self.grace_s

    def due(self) -> bool:
        """Whether to go on: before the deadline, or still waiting for a first loop."""
        now = time.monotonic()
        return now < self.deadline or (
            not self.next_loop_s and now < self.deadline + self.grace_s)

    def api(self, path: str, method: str = "GET", body: dict | None = None,
            timeout: float | None = None):
        return call(f"{self.joiner.url}/api/s/{self.sid}{path}", method, body,
                    self.left() if timeout is None else timeout)

    def run(self) -> None:
        try:
            if self.enter():
                while self.due() and self.one_loop():
                    pass
        except Exception as err:  # noqa: BLE001 - a bench reports what went wrong, and goes on
            self.errors.append(f"{type(err).__name__}: {err}")

    def enter(self) -> bool:
        if self.sid is not None:
            return True
        start = time.perf_counter()
        status, answer = self.joiner.ask(self.requested, self.left())
        while status == 202 and self.due():
            time.sleep(QUEUE_POLL_S)
            status, answer = self.joiner.ticket(answer["ticket"])
        if status != 200:
            self.errors.append(f"join: {status} {answer}")
            return False
        self.join_s.append(time.perf_counter() - start)
        self.sid = answer["id"]
        return True

    def one_loop(self) -> bool:
        """Rates one loop, or waits out a pause; False once there is nothing more to do."""
        start = time.perf_counter()
        status, item = self.api("/current")
        if status == 200 and item.get("phase") == "practice":  # not a rating: a step
            taken = take_step(self, item)
            self.steps_s += time.perf_counter() - start
            return taken
        if status == 200:
            self.next_loop_s.append(time.perf_counter() - start)
            self.phase = item.get("phase")
            wav, _ = self.api(f"/loops/{item['key']}.wav")
            if wav != 200:
                self.errors.append(f"loop {item['key']}.wav: {wav}")
            time.sleep(self.listen_seconds)
            start = time.perf_counter()
            liked = self.rng.random() < LIKE_RATE
            status, answer = self.api("/rate", "POST", {"key": item["key"], "liked": liked},
                                      timeout=RATE_TIMEOUT_S)
            if status == 200:
                self.rate_s.append(time.perf_counter() - start)
                self.acked.append(item["key"])
            else:
                self.refused.append(f"{item['key']}: {status} {answer}")
            return True
        if status in (409, 503):
            return self.wait_out()
        self.errors.append(f"current: {status} {item}")
        return False

    def wait_out(self) -> bool:
        """Polls the state while the server draws phase II (or starts), timed as
        ``pause_s``, and takes the steps before phase I, timed as ``steps_s``; False when
        the study is over for this participant."""
        while self.due():
            start = time.perf_counter()
            _, state = self.api("/state", timeout=30)
            phase = state.get("phase") if isinstance(state, dict) else None
            self.phase = phase or self.phase
            if phase in PHASES_WITH_A_LOOP:
                return True
            if phase in ("done", "error"):
                return False
            if phase is None or phase == "drawing":  # or the server is starting
                time.sleep(PAUSE_POLL_S)
                self.pause_s += time.perf_counter() - start
                continue
            if not take_step(self, state):
                return False
            self.steps_s += time.perf_counter() - start
        return False


ANSWER = 1  # every headphone trial: the check fails twice, and the study goes on


def take_step(p: Participant, state: dict) -> bool:
    """Takes the study's step before phase I that ``state`` names, as the page does
    (``ddjax/web/study_routes.py``): agrees to the consent page, answers the headphone
    check's trials (after the volume tone) until it is done, rates the practice loop.
    False, with the reason in ``p.errors``, for a step it does not know or a refusal."""
    phase = state.get("phase")
    if phase == "consent":
        answers = [p.api("/consent", "POST", {"agree": True})]
    elif phase == "headphones":
        answers = [p.api("/headphones/volume.wav")]
        check = state.get("headphones") or {}
        while answers[-1][0] == 200 and not check.get("done", True):
            trial = check["trial"] + 1
            answers.append(p.api(f"/headphones/{trial}.wav"))
            answers.append(p.api("/headphones", "POST", {"trial": trial, "answer": ANSWER}))
            answer = answers[-1][1]
            if answers[-1][0] == 200 and answer.get("phase") != "headphones":
                break
            check = (answer.get("headphones") or {}) if isinstance(answer, dict) else {}
    elif phase == "practice":
        answers = [p.api("/practice.wav")]
        time.sleep(p.listen_seconds)
        answers.append(p.api("/practice", "POST", {"liked": p.rng.random() < LIKE_RATE}))
    else:
        p.errors.append(f"a step this bench cannot take: {phase}")
        return False
    refused = [f"{status} {answer}" for status, answer in answers if status != 200]
    if refused:
        p.errors.append(f"{phase}: {refused[0]}")
    return not refused


def on_disk(folder: pathlib.Path) -> dict[str, collections.Counter]:
    """Each participant's rated keys as logged, counted: phase I's loop ids from
    ``session/ratings.jsonl`` (rating lines only: undo and skip lines are no ratings; an
    undo takes back the last rating) and phase II's keys from ``phase2/ratings.jsonl``. A
    torn last line is no rating. Keys are the participant's lower-cased folder name."""
    logged = {}
    for person in sorted((folder / "participants").glob("*")):
        keys: list[str] = []
        for log, key in ((person / "session" / "ratings.jsonl", "id"),
                         (person / "phase2" / "ratings.jsonl", "key")):
            if not log.exists():
                continue
            for line in log.read_bytes().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if "undo" in entry:  # takes back the last rating of that key
                    undone = str(entry["undo"])
                    if undone in keys:
                        del keys[len(keys) - 1 - keys[::-1].index(undone)]
                elif "skip" not in entry and "liked" in entry and key in entry:
                    keys.append(str(entry[key]))
        logged[person.name.lower()] = collections.Counter(keys)
    return logged


def tally(participants: list[Participant], logged: dict[str, collections.Counter]) -> dict:
    """Ratings acknowledged against ratings on disk: ``lost`` (acknowledged, not logged),
    ``duplicated`` (logged more than once) and ``unacknowledged_on_disk`` (logged, never
    acknowledged: a rating cut off by the end of the run or a kill)."""
    lost = duplicated = unacked = 0
    for p in participants:
        disk = logged.get((p.sid or p.requested).lower(), collections.Counter())
        acked = collections.Counter(p.acked)
        lost += sum((acked - disk).values())
        duplicated += sum(n - 1 for n in disk.values() if n > 1)
        unacked += len(set(disk) - set(acked))
    return {"acknowledged": sum(len(p.acked) for p in participants),
            "on_disk": sum(sum(c.values()) for c in logged.values()),
            "lost": lost, "duplicated": duplicated, "unacknowledged_on_disk": unacked}


def spread(seconds: list[float]) -> dict:
    """n, p50, p95 and max of ``seconds`` (None where there are none)."""
    if not seconds:
        return {"n": 0, "p50_s": None, "p95_s": None, "max_s": None}
    a = np.asarray(seconds)
    return {"n": len(a), "p50_s": round(float(np.median(a)), 3),
            "p95_s": round(float(np.percentile(a, 95)), 3), "max_s": round(float(a.max()), 3)}


class RssMonitor(threading.Thread):
    """Samples a process's RSS every ``every_s`` seconds; ``peak`` is the largest."""

    def __init__(self, pid: int, every_s: float = 0.5):
        super().__init__(daemon=True, name="rss")
        self.pid, self.every_s, self.peak = pid, every_s, None
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            mb = rss_mb(self.pid)
            if mb is not None:
                self.peak = mb if self.peak is None else max(self.peak, mb)
