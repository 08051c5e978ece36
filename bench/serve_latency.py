"""Next-loop latency in the browser: from a click on Like/Dislike to the next loop playing.

Starts ``ddjax serve`` with its default settings on a fresh session and drives Debian's
Chromium (headless, via Playwright) through ``--ratings`` ratings. Before each click the
page plays the loop for ``--listen-seconds`` (default 2 s: one bar, the least a rating can
be based on). The page itself measures each wait, from the click to the next loop's audio
starting: the rating's POST (on disk before it returns), the next loop, its WAV download
and decoding.

Prints one JSON line per block of 10 ratings (median, p95, max), then one for all.
Target: every wait <= 1.0 s.

Usage: python bench/serve_latency.py [--json] [--ratings 40] [--listen-seconds 2]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from browser import Server, launch, wait_for_loop, why_not_available  # noqa: E402
from latency import block_rows, print_rows  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--ratings", type=int, default=40)
    parser.add_argument("--listen-seconds", type=float, default=2.0)
    parser.add_argument("--kit", type=pathlib.Path, default=REPO / "samples")
    args = parser.parse_args(argv)
    missing = why_not_available()
    if missing:
        print(f"serve_latency: {missing}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as directory, sync_playwright() as playwright, \
            Server("--kit", str(args.kit), "--session", str(pathlib.Path(directory) / "s")) \
            as server:
        browser = launch(playwright)
        page = browser.new_page()
        page.goto(server.url + "/")
        key = wait_for_loop(page)  # includes compilation; not a wait after a rating
        for _ in range(args.ratings):
            time.sleep(args.listen_seconds)
            page.keyboard.press("l" if rng.random() < 0.4 else "d")
            key = wait_for_loop(page, key)
        waits = page.evaluate("window.ddjax.latencies")
        version = page.evaluate("navigator.userAgent").split("Chrome/")[-1].split()[0]
        browser.close()
    print_rows(block_rows(waits, {"listen_seconds": args.listen_seconds, "device": "cpu",
                                  "browser": f"chromium {version} headless",
                                  "measured": "click to the next loop's audio starting"}),
               args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
