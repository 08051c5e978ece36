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
line per block of 10 ratings (median, p95, max), then one for all. Target: every wait
<= 1.0 s.

Usage: python bench/serve_latency.py [--json] [--ratings 40] [--listen-seconds 2] [--no-cold]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from browser import Server, launch, wait_for_loop, why_not_available  # noqa: E402
from latency import block_rows, print_rows  # noqa: E402
from machine import cpu_model  # noqa: E402

from ddjax.startup import RECORD_NAME  # noqa: E402


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
    told = None if status.get("ready") else round(status["elapsed_s"] + status["estimate_s"], 1)
    steps = json.loads((session / RECORD_NAME).read_text())["seconds"]
    return {"start": cache, "page_answers_s": round(page_s, 2),
            "first_loop_s": round(first_loop_s, 2), "steps_s": steps,
            "estimate_told_s": told, "load_avg_1min": round(load, 2),
            "cpu": cpu_model()}, server, page


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--ratings", type=int, default=40)
    parser.add_argument("--listen-seconds", type=float, default=2.0)
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
            for _ in range(args.ratings):
                time.sleep(args.listen_seconds)
                page.keyboard.press("l" if rng.random() < 0.4 else "d")
                key = wait_for_loop(page, key)
            waits = page.evaluate("window.ddjax.latencies")
            version = page.evaluate("navigator.userAgent").split("Chrome/")[-1].split()[0]
        finally:
            for server in servers:
                server.kill()
        browser.close()
    if waits:
        print_rows(block_rows(waits, {"listen_seconds": args.listen_seconds, "device": "cpu",
                                      "cpu": cpu_model(),
                                      "browser": f"chromium {version} headless",
                                      "measured": "click to the next loop's audio starting"}),
                   args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
