"""A study under load: many participants at once on one ``ddjax serve --study`` (issue 24).

Starts the server on a fresh study folder (``--max-participants`` twice the count, so
nobody waits in line) and runs ``--participants`` client threads (``study_clients``) for
``--seconds``: each joins as ``p01``, ``p02``..., takes the steps before phase I where the
server has them (consent, headphone check, practice: timed apart), then asks for its
loop, downloads the WAV, listens ``--listen-seconds`` (2 s: one bar, the least a rating
can be based on; 0 is the stress case) and rates it; while its phase II is drawn it polls
its state every 0.5 s, timed apart as "pause". No new request starts after ``--seconds``,
except by a client still waiting for its first loop; a request under way, or such a
client, gets ``GRACE_S`` more.

One JSON line per measure (``--json``): the settings (CPU model, device, jax version);
join, next loop and rate (p50, p95, max, seconds); the pauses; the ratings acknowledged
against those on disk (each participant's ``session/ratings.jsonl`` and
``phase2/ratings.jsonl``, counted after the server is SIGKILLed: lost and duplicated must
be 0); the server's RSS before any participant, at the end, and per added participant;
ratings per participant per minute. With ``--restart`` (default), the server is started
again on the killed one's folder: the seconds until ``/api/status`` says every
participant is ready (``participants.ready == participants.known``; null on a server
without the field) and until each participant's ``current`` answers. Then, with
``--queue`` (default), a small study with ``--max-participants 2`` and 4 clients: the
third and fourth must wait (202, places 1 and 2) and be admitted in that order as the
first two finish.

Targets (this project's 2-core CPU): next loop p95 <= 2 s and join p95 <= 3 s with 16
participants, <= 25 MB per added participant, every participant ready <= 20 s after a
restart, nothing lost or duplicated.

Usage: python bench/study_load.py [--json] [--participants 16] [--seconds 120]
       [--listen-seconds 2.0] [--study-ratings 80] [--study-eval 30] [--kit samples]
       [--restart/--no-restart] [--queue/--no-queue]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time

from host_cpu import cpu_name
from study_clients import (
    RATE_TIMEOUT_S,
    Joiner,
    Participant,
    RssMonitor,
    StudyServer,
    call,
    on_disk,
    spread,
    tally,
)

REPO = pathlib.Path(__file__).resolve().parents[1]
GRACE_S = 60.0  # a request under way at the end gets this long to answer
RESTART_TIMEOUT_S = 300.0
READY_TIMEOUT_S = 120.0  # then each participant's page asks anyway
QUEUE_TIMEOUT_S = 300.0
TARGETS = {"join": 3.0, "next_loop": 2.0, "per_participant_mb": 25.0, "all_ready_s": 20.0}


def run_load(folder: pathlib.Path, kit: pathlib.Path, participants: int, seconds: float,
             listen_seconds: float, ratings: int, evals: int, restart: bool = True,
             grace_s: float = GRACE_S) -> tuple[list[dict], list[Participant]]:
    """The load run on a fresh study in ``folder``; its rows, and the clients (their
    timings and acknowledged ratings)."""
    server = StudyServer(folder, kit, ratings, evals, max_participants=2 * participants)
    try:
        ready_s = server.wait_ready()
        rss_before = server.rss_mb()
        monitor = RssMonitor(server.pid)
        monitor.start()
        joiner = Joiner(server.url)
        start = time.monotonic()
        clients = [Participant(joiner, f"p{i + 1:02d}", start + seconds, listen_seconds,
                               grace_s, seed=i) for i in range(participants)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=max(0.0, start + seconds + grace_s + RATE_TIMEOUT_S
                                    - time.monotonic()))
        elapsed = time.monotonic() - start
        rss_end = server.rss_mb()
        monitor.stopped.set()
    finally:
        server.kill()  # SIGKILL: what is on disk now is what a crash leaves
    counted = tally(clients, on_disk(folder))
    minutes = elapsed / 60
    rows = [
        {"measure": "join", **spread([s for c in clients for s in c.join_s]),
         "target_p95_s": TARGETS["join"]},
        {"measure": "next_loop", **spread([s for c in clients for s in c.next_loop_s]),
         "target_p95_s": TARGETS["next_loop"]},
        {"measure": "rate", **spread([s for c in clients for s in c.rate_s])},
        {"measure": "pause", **spread([c.pause_s for c in clients if c.pause_s > 0]),
         "participants_paused": sum(c.pause_s > 0 for c in clients)},
        {"measure": "steps_before_phase1",
         **spread([c.steps_s for c in clients if c.steps_s > 0]),
         "participants_through": sum(c.steps_s > 0 for c in clients)},
        {"measure": "ratings", **counted, "run_s": round(elapsed, 1),
         "per_participant_per_minute": round(counted["acknowledged"] / participants
                                             / minutes, 2),
         "clients_with_a_loop": sum(bool(c.next_loop_s) for c in clients),
         "phases_at_end": sorted(str(c.phase) for c in clients),
         "refused": [r for c in clients for r in c.refused][:5],
         "errors": [f"{c.requested}: {e}" for c in clients for e in c.errors][:5]},
        {"measure": "memory", "server_ready_s": round(ready_s, 2),
         "rss_before_mb": rss_before, "rss_end_mb": rss_end, "rss_peak_mb": monitor.peak,
         "per_participant_mb": (None if None in (rss_before, rss_end) else
                                round((rss_end - rss_before) / participants, 1)),
         "target_per_participant_mb": TARGETS["per_participant_mb"]},
    ]
    if restart:
        rows.append(restart_row(folder, kit, ratings, evals, participants,
                                [c.sid for c in clients if c.sid is not None]))
    return rows, clients


def restart_row(folder: pathlib.Path, kit: pathlib.Path, ratings: int, evals: int,
                participants: int, sids: list[str]) -> dict:
    """Starts the server again on ``folder``: seconds from launch until ``/api/status``
    answers, then until it says every participant is ready, then (asked only then) until
    each participant's ``current`` answers (a loop, or a 409 for one drawing phase II or
    done; not a 503), from launch and from the request."""
    server = StudyServer(folder, kit, ratings, evals, max_participants=2 * participants)
    try:
        page_s = server.wait_ready(RESTART_TIMEOUT_S)
        answered: dict[str, tuple[float, float, int | None]] = {}

        def first_answer(sid: str) -> None:
            deadline = time.monotonic() + RESTART_TIMEOUT_S
            status, asked = None, time.perf_counter()
            while time.monotonic() < deadline:
                status, _ = call(f"{server.url}/api/s/{sid}/current",
                                 timeout=max(1.0, deadline - time.monotonic()))
                if status not in (None, 503):
                    break
                time.sleep(0.1)
            now = time.perf_counter()
            answered[sid] = (now - server.launched, now - asked, status)

        all_ready_s, known, ready = watch_ready(server)
        threads = [threading.Thread(target=first_answer, args=(sid,), daemon=True)
                   for sid in sids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(RESTART_TIMEOUT_S + 10)
        rss = server.rss_mb()
    finally:
        server.kill()
    times = [t for t, _, status in answered.values() if status not in (None, 503)]
    return {"measure": "restart", "status_ready_s": round(page_s, 2),
            "all_ready_s": all_ready_s, "known": known, "ready": ready,
            "target_all_ready_s": TARGETS["all_ready_s"],
            "current_answered": len(times), "resumed": len(sids),
            "all_current_s": round(max(times), 2) if len(times) == len(sids) and times
            else None,
            "current_since_launch": spread(times),
            "current_request": spread([s for _, s, status in answered.values()
                                       if status not in (None, 503)]),
            "statuses": sorted(str(s) for _, _, s in answered.values()),
            "rss_mb": rss}


def watch_ready(server: StudyServer) -> tuple[float | None, int | None, int | None]:
    """Seconds from launch until ``participants.ready == participants.known`` in the
    status, before any participant's page asks (they open from their folders, not on
    first access), and those counts; None where the server does not report them."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    counts = None
    while time.monotonic() < deadline:
        status = server.status() or {}
        counts = status.get("participants")
        if not isinstance(counts, dict) or "ready" not in counts:
            return None, None, None
        if counts["ready"] == counts.get("known"):
            return round(time.perf_counter() - server.launched, 2), counts["known"], \
                counts["ready"]
        time.sleep(0.1)
    return None, counts.get("known"), counts.get("ready")


def queue_row(folder: pathlib.Path, kit: pathlib.Path, ratings: int = 2,
              evals: int = 1) -> dict:
    """A study with ``--max-participants 2``: q1..q4 join one after another; q3 and q4
    must be told to wait (202, places 1 and 2), then be admitted in order as q1, then
    q2, finish their (tiny) study."""
    server = StudyServer(folder, kit, ratings, evals, max_participants=2)
    try:
        server.wait_ready()
        joiner = Joiner(server.url)
        answers = [joiner.ask(f"q{i}", QUEUE_TIMEOUT_S) for i in range(1, 5)]
        row = {"measure": "queue", "max_participants": 2, "clients": 4,
               "first_statuses": [s for s, _ in answers],
               "places": [a.get("place") if s == 202 else None for s, a in answers],
               "estimates_s": [a.get("estimate_s") if s == 202 else None
                               for s, a in answers]}
        waiting = {f"q{i + 1}": a["ticket"] for i, (s, a) in enumerate(answers)
                   if s == 202 and isinstance(a, dict) and "ticket" in a}
        rating = [a["id"] for s, a in answers if s == 200]
        if not waiting:
            return {**row, "supported": False, "admitted_order": None, "in_order": None}
        admitted, places_after = [], []
        for sid in rating[:2]:
            finisher = Participant(joiner, sid, time.monotonic() + QUEUE_TIMEOUT_S, 0.0,
                                   GRACE_S, seed=0, sid=sid)
            finisher.run()
            newly = admit(joiner, waiting)
            admitted += newly
            places_after.append({name: p for name, p in waiting_places(joiner, waiting)})
        loops = [call(f"{server.url}/api/s/{sid}/current", timeout=QUEUE_TIMEOUT_S)[0]
                 for _, sid in admitted]
    finally:
        server.kill()
    order = [name for name, _ in admitted]
    return {**row, "supported": True, "admitted_order": order,
            "places_after_each_finish": places_after, "admitted_current": loops,
            "in_order": (row["places"][2:] == [1, 2] and order == ["q3", "q4"]
                         and places_after[:1] == [{"q4": 1}])}


def admit(joiner: Joiner, waiting: dict[str, str]) -> list[tuple[str, str]]:
    """Polls the waiting tickets until one or more is admitted; (name, id) of those, in
    the order seen, and they leave ``waiting``."""
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    seen = []
    while waiting and not seen and time.monotonic() < deadline:
        for name, ticket in list(waiting.items()):
            status, answer = joiner.ticket(ticket)
            if status == 200:
                seen.append((name, answer["id"]))
                del waiting[name]
        time.sleep(0.5)
    return seen


def waiting_places(joiner: Joiner, waiting: dict[str, str]) -> list[tuple[str, int | None]]:
    places = []
    for name, ticket in waiting.items():
        status, answer = joiner.ticket(ticket)
        places.append((name, answer.get("place") if status == 202 else None))
    return places


def server_device() -> dict:
    """The device and jax version the server will run on, asked of a fresh process (so
    this one holds no accelerator memory)."""
    code = "import jax; d = jax.devices()[0]; print(f'{d.platform}:{d.device_kind}')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120, check=False)
    return {"device": out.stdout.strip() if out.returncode == 0 else None,
            "jax": importlib.metadata.version("jax")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--participants", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="clients start no request after this")
    parser.add_argument("--listen-seconds", type=float, default=2.0)
    parser.add_argument("--study-ratings", type=int, default=80)
    parser.add_argument("--study-eval", type=int, default=30)
    parser.add_argument("--kit", type=pathlib.Path, default=REPO / "samples")
    parser.add_argument("--restart", action=argparse.BooleanOptionalAction, default=True,
                        help="kill the server at the end and time its restart (default)")
    parser.add_argument("--queue", action=argparse.BooleanOptionalAction, default=True,
                        help="then check the waiting line with --max-participants 2")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # finally blocks kill servers
    common = {"bench": "study_load", "participants": args.participants,
              "cpu": cpu_name(), **server_device()}
    settings = {"measure": "settings", **common, "seconds": args.seconds,
                "listen_seconds": args.listen_seconds, "study_ratings": args.study_ratings,
                "study_eval": args.study_eval, "kit": str(args.kit),
                "restart": args.restart, "max_participants": 2 * args.participants,
                "load_avg_1min": round(os.getloadavg()[0], 2)}
    show(settings, args.json)
    with tempfile.TemporaryDirectory(prefix="study-load-") as directory:
        rows, _ = run_load(pathlib.Path(directory) / "study", args.kit, args.participants,
                           args.seconds, args.listen_seconds, args.study_ratings,
                           args.study_eval, args.restart)
        if args.queue:
            rows.append(queue_row(pathlib.Path(directory) / "queue", args.kit))
    short = {k: common[k] for k in ("bench", "participants", "cpu", "device")}
    for row in rows:
        show({**short, **row}, args.json)
    return 0


def show(row: dict, as_json: bool) -> None:
    print(json.dumps(row) if as_json else f"{row['measure']}: " + ", ".join(
        f"{k} {v}" for k, v in row.items() if k not in ("bench", "measure")), flush=True)


if __name__ == "__main__":
    sys.exit(main())
