"""Serve latency in the browser: how soon the page answers and the first loop plays after
``ddjax serve`` starts, and the wait from a click on Like/Dislike to the next loop playing.

Starts ``ddjax serve`` with its default settings and drives Debian's Chromium (headless,
via Playwright).

Start. Twice on one session folder, in a fresh compile cache (``XDG_CACHE_HOME`` in a
temporary folder): cold (a new session, the cache empty) and warm (the session resumed,
the cache filled by the cold start). Each row gives the seconds from launching the
process to the page answering (``GET /``) and to the first loop playing in the page, the
seconds each step took (the session's ``.startup.json``), the total the page was first
told to expect (``/api/status``), and the load average, since a busy machine starts
slower. ``--no-cold`` starts once, on the compile cache the ``ddjax`` command uses. Targets:
the page within 2 s; the first loop within 6 s warm and 20 s cold.

Ratings. On the warm server, before each click the page plays the loop for
``--listen-seconds`` (default 2 s: one bar, the least a rating can be based on). The page
itself measures each wait, from the click to the next loop's audio starting: the rating's
POST (on disk before it returns), the next loop, its WAV download and decoding. One JSON
line per block of 10 ratings (median, p95, max), then one for all. Target: p95 <= 1.0 s.
With ``--competing N`` (default 1), the same number of ratings again while N other
processes each keep a core busy (a Python busy loop), reported the same way with
``"competing": N``: the wait on a machine that is doing something else too.

Auditions. Then, on the same page, ``--edits`` cells are toggled one at a time at the
session's tempo, each auditioned before the next, and the tempo slider is moved to each of
``NEW_TEMPI`` in turn. The page measures each audition from its request (``POST
/audition``, sent ``AUDITION_DEBOUNCE_MS`` after the last change) to the decoded WAV
(``window.ddjax.auditions``). One row for the toggles (the first apart; then median, p95,
max), one for the new tempi: the first audition at each and a toggle after it. Auditions
are rendered on the host in NumPy (``render.host_listening_render``), so no tempo compiles
anything. Target: 0.3 s.

Usage: python bench/serve_latency.py [--json] [--ratings 40] [--listen-seconds 2] [--no-cold]
       [--edits 20] [--competing 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "web"))

from browser import Server, launch, wait_for_loop, why_not_available  # noqa: E402
from latency import block_rows, print_rows  # noqa: E402
from machine import cpu_model  # noqa: E402

from ddjax.session.startup import RECORD_NAME  # noqa: E402

NEW_TEMPI = (90, 140, 175)  # BPM, none of them the session's 120
AUDITION_DEBOUNCE_MS = 120  # as in ddjax/web/app.js
SET_TEMPO = """(bpm) => {
  const slider = document.getElementById("bpm");
  slider.value = bpm;
  slider.dispatchEvent(new Event("input", { bubbles: true }));
}"""


def until_answered(url: str, timeout: float = 60.0) -> dict:
    """Polls ``url``/ until it answers 200, then asks ``/api/status`` once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/", timeout=5) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.02)
    with urllib.request.urlopen(url + "/api/status", timeout=5) as response:
        return json.load(response)


def start_row(browser, session: pathlib.Path, kit: pathlib.Path, cache: str,
              env: dict[str, str] | None):
    """Starts the server, times the page and the first loop; returns (row, server, page)."""
    load = os.getloadavg()[0]
    launched = time.perf_counter()
    server = Server("--kit", str(kit), "--session", str(session), env=env)
    try:
        status = until_answered(server.url)
        page_s = time.perf_counter() - launched
        page = browser.new_page()
        page.goto(server.url + "/")
        wait_for_loop(page)
        first_loop_s = time.perf_counter() - launched
    except BaseException:
        server.kill()
        raise
    told = None if status.get("ready") or status.get("estimate_s") is None else round(
        status["elapsed_s"] + status["estimate_s"], 1)
    steps = json.loads((session / RECORD_NAME).read_text())["seconds"]
    return {"start": cache, "page_answers_s": round(page_s, 2),
            "first_loop_s": round(first_loop_s, 2), "steps_s": steps,
            "estimate_told_s": told, "load_avg_1min": round(load, 2),
            "cpu": cpu_model()}, server, page


def rate(page, key: str, n: int, listen_seconds: float, rng) -> str:
    """Listens ``listen_seconds``, then likes (40%) or dislikes, ``n`` times; the last key."""
    for _ in range(n):
        time.sleep(listen_seconds)
        page.keyboard.press("l" if rng.random() < 0.4 else "d")
        key = wait_for_loop(page, key)
    return key


@contextlib.contextmanager
def busy(n: int):
    """``n`` processes that each keep one core busy until the block ends."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def audition_rows(page, edits: int, summary: dict) -> list[dict]:
    """Toggles ``edits`` + 1 cells, then moves the tempo to each of ``NEW_TEMPI`` and
    toggles one more cell there; returns the two rows (seconds, as the page measured)."""
    def audition(act) -> float:
        done = page.evaluate("window.ddjax.auditions.length")
        act()
        page.wait_for_function(f"window.ddjax.auditions.length > {done}", timeout=120_000)
        return page.evaluate("window.ddjax.auditions")[-1]

    cells = page.locator("#grid .cell button")
    n_cells = cells.count()
    order = iter(range(0, 7 * n_cells, 7))  # 7 and 64 are coprime: each cell once

    def toggle():
        cells.nth(next(order) % n_cells).click()

    first, *at_session = [audition(toggle) for _ in range(edits + 1)]
    new_tempo, then = [], []
    for bpm in NEW_TEMPI:
        new_tempo.append(audition(lambda: page.evaluate(SET_TEMPO, bpm)))
        then.append(audition(toggle))
    at_session = np.array(at_session)
    return [{"auditions": f"{edits} cell toggles at the session's tempo",
             "first_s": round(first, 3), "median_s": round(float(np.median(at_session)), 3),
             "p95_s": round(float(np.percentile(at_session, 95)), 3),
             "max_s": round(float(at_session.max()), 3), **summary},
            {"auditions": "the first at each new tempo, then a toggle there",
             "bpm": list(NEW_TEMPI), "first_at_new_tempo_s": [round(x, 3) for x in new_tempo],
             "toggle_after_s": [round(x, 3) for x in then], **summary}]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--ratings", type=int, default=40)
    parser.add_argument("--listen-seconds", type=float, default=2.0)
    parser.add_argument("--edits", type=int, default=20,
                        help="cell toggles to audition after the ratings (0: none)")
    parser.add_argument("--competing", type=int, default=1,
                        help="then rate again beside this many busy processes (0: don't)")
    parser.add_argument("--kit", type=pathlib.Path, default=REPO / "samples")
    parser.add_argument("--cold", action=argparse.BooleanOptionalAction, default=True,
                        help="start cold, then warm, in a fresh compile cache (default)")
    args = parser.parse_args(argv)
    missing = why_not_available()
    if missing:
        print(f"serve_latency: {missing}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as directory, sync_playwright() as playwright:
        browser = launch(playwright)
        session = pathlib.Path(directory) / "s"
        env = {"XDG_CACHE_HOME": str(pathlib.Path(directory) / "cache"),
               "DDJAX_NO_COMPILATION_CACHE": ""}
        starts = ["cold", "warm"] if args.cold else ["default cache"]
        servers, page = [], None
        try:
            for cache in starts:
                if page is not None:
                    page.close()
                    servers[-1].kill()
                row, server, page = start_row(browser, session, args.kit, cache,
                                              env if args.cold else None)
                servers.append(server)
                print(json.dumps(row) if args.json else
                      f"start {cache}: page answers in {row['page_answers_s']:.2f} s, first"
                      f" loop plays at {row['first_loop_s']:.2f} s", flush=True)
            key = page.evaluate("document.body.dataset.key")
            key = rate(page, key, args.ratings, args.listen_seconds, rng)
            waits = page.evaluate("window.ddjax.latencies")
            loaded = []
            if args.competing > 0:
                with busy(args.competing):
                    rate(page, key, args.ratings, args.listen_seconds, rng)
                    load_avg = round(os.getloadavg()[0], 2)
                loaded = page.evaluate("window.ddjax.latencies")[len(waits):]
            version = page.evaluate("navigator.userAgent").split("Chrome/")[-1].split()[0]
            edit_rows = [] if args.edits <= 0 else audition_rows(page, args.edits, {
                "target_s": 0.3, "debounce_s": AUDITION_DEBOUNCE_MS / 1000, "device": "cpu",
                "cpu": cpu_model(), "browser": f"chromium {version} headless",
                "load_avg_1min": round(os.getloadavg()[0], 2),
                "measured": "POST /audition to the decoded WAV, in the page"})
        finally:
            for server in servers:
                server.kill()
        browser.close()
    summary = {"listen_seconds": args.listen_seconds, "device": "cpu", "cpu": cpu_model(),
               "browser": f"chromium {version} headless",
               "measured": "click to the next loop's audio starting"}
    if waits:
        print_rows(block_rows(waits, {**summary, "competing": 0}), args.json)
    if loaded:
        print_rows(block_rows(loaded, {**summary, "competing": args.competing,
                                       "load_avg_1min": load_avg}), args.json)
    for row in edit_rows:
        print(json.dumps(row) if args.json else f"auditions, {row['auditions']}: " + ", ".join(
            f"{name} {value}" for name, value in row.items()
            if name.endswith("_s") or name == "bpm"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
