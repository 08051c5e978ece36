"""Rating latency: how long a person waits between a click and the next loop.

A simulated person (a built-in user) rates ``--ratings`` loops of a Session with its
default settings. Before each rating they listen for ``--listen-seconds`` (default 2 s:
one bar, the least a rating can be based on); the wait measured is from the click
(``rate``) to ``next_loop`` returning the next loop. Training on the new rating and
sampling the loop after next run in the background meanwhile; the loop shown after
rating k comes from the critic trained on ratings 1..k-1.

Prints one JSON line per block of 10 ratings (median, p95 and max wait), then one for
all ratings. Target: p95 <= 1.0 s at every point up to 200 ratings on this CPU.

Usage: python bench/latency.py [--json] [--ratings 200] [--listen-seconds 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import tempfile
import time

import jax
import numpy as np
from machine import cpu_model

from ddjax.io.kit import load_kit
from ddjax.learning.training import TrainConfig
from ddjax.raters.users import make_user
from ddjax.session.session import Session, SessionConfig

REPO = pathlib.Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--ratings", type=int, default=200)
    parser.add_argument("--listen-seconds", type=float, default=2.0)
    parser.add_argument("--user", default="bright")
    parser.add_argument("--kit", type=pathlib.Path, default=REPO / "samples")
    parser.add_argument("--pretrained", help="none (the paper's CNN) or a prior file"
                                             " (default: the packaged prior)")
    args = parser.parse_args(argv)

    kit = load_kit(args.kit, 88200)
    rater = make_user(args.user, kit)
    train, config = TrainConfig(), SessionConfig(pretrained=args.pretrained)
    device = f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}"
    waits, versions = [], []
    with tempfile.TemporaryDirectory() as directory, \
            Session(kit, directory, train=train, config=config) as session:
        loop = session.next_loop()  # includes compilation; not a wait after a rating
        for k in range(1, args.ratings + 1):
            time.sleep(args.listen_seconds)
            liked = rater(loop)
            start = time.perf_counter()
            session.rate(loop, liked)
            loop = session.next_loop()
            waits.append(time.perf_counter() - start)
            versions.append(loop.critic_version)
            assert loop.critic_version >= k - 1  # the rule the docs state
    print_rows(block_rows(waits, {
        "device": device, "cpu": cpu_model(), "listen_seconds": args.listen_seconds,
        "critic_seen_ratings": "1..k-1 for the loop shown after rating k",
        "train": dataclasses.asdict(train), "session": dataclasses.asdict(config)}), args.json)
    return 0


def block_rows(waits: list[float], summary: dict) -> list[dict]:
    """Median, p95 and max wait per block of 10 ratings, then over all (with ``summary``)."""
    rows = []
    for first in range(0, len(waits), 10):
        block = np.array(waits[first:first + 10])
        rows.append({"ratings": f"{first + 1}-{first + len(block)}",
                     "median_s": round(float(np.median(block)), 3),
                     "p95_s": round(float(np.percentile(block, 95)), 3),
                     "max_s": round(float(block.max()), 3)})
    every = np.array(waits)
    rows.append({"ratings": f"1-{len(waits)}", "median_s": round(float(np.median(every)), 3),
                 "p95_s": round(float(np.percentile(every, 95)), 3),
                 "max_s": round(float(every.max()), 3), **summary})
    return rows


def print_rows(rows: list[dict], as_json: bool) -> None:
    for row in rows:
        if as_json:
            print(json.dumps(row), flush=True)
        else:
            print(f"ratings {row['ratings']:>9}: median {row['median_s']:.3f} s,"
                  f" p95 {row['p95_s']:.3f} s, max {row['max_s']:.3f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
