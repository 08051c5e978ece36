"""Sampler throughput: proposals per second, sequential baseline vs batched chains.

A proposal is the whole step: propose, render the critic's view, MFCC, critic, accept.

- "sequential": one candidate at a time with a host round-trip per proposal, as the
  original DeepDrummer did (jit-compiled pieces, Python loop).
- "batched": C chains, M iterations in one jit (``Engine.sample``), C in {1, 16, 256},
  plus 4096 and 16384 on a GPU.

Every figure is the median of ``--repeats`` timed runs after a warm-up (compile) run,
all in one process, so ``vs_sequential`` is a same-run ratio. FLOPs per proposal come
from XLA's cost analysis of the compiled score function; ``share_of_peak`` divides GFLOP/s
by the machine's float32 matmul peak, measured in the same run (``bench/machine.py``).

Usage: python bench/sampler.py [--json] [--kit DIR] [--repeats R] [--chains C ...]
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import statistics
import sys
import time

import jax
import numpy as np

from ddjax.core.batching import CPU_CHUNK
from ddjax.core.critic import init_critic
from ddjax.core.loops import propose, random_loop
from ddjax.io.kit import load_kit
from ddjax.sampling.engine import Engine
from ddjax.sampling.sampler import SamplerConfig

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from machine import with_share, yardstick  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
PROPOSALS_PER_RUN = 2048  # batched runs are sized to about this many proposals


def flops_per_proposal(engine: Engine, n: int = CPU_CHUNK) -> float:
    """XLA's FLOP count of scoring ``n`` loops, per loop. ``n`` is at most one CPU chunk:
    cost analysis counts the body of a ``lax.map`` loop once, not once per step."""
    loops = jax.vmap(lambda k: random_loop(k, engine.allowed, engine.pipeline.loops))(
        jax.random.split(jax.random.key(0), n))
    cost = engine.lower_score(loops).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) / n


def sequential(engine: Engine, n_proposals: int, repeats: int) -> float:
    """Proposals per second, one candidate at a time."""
    step = jax.jit(functools.partial(propose, allowed=engine.allowed,
                                     config=engine.pipeline.loops))
    loop = random_loop(jax.random.key(1), engine.allowed, engine.pipeline.loops)
    batch1 = lambda l: jax.tree_util.tree_map(lambda x: x[None], l)
    score = float(engine.score(batch1(loop))[0])
    rng = np.random.default_rng(0)
    times = []
    for r in range(repeats + 1):
        start = time.perf_counter()
        for i in range(n_proposals):
            candidate = step(jax.random.key(1000 * r + i), loop)
            candidate_score = float(engine.score(batch1(candidate))[0])
            if rng.random() < candidate_score / max(score, 1e-30):
                loop, score = candidate, candidate_score
        times.append(time.perf_counter() - start)
    return n_proposals / statistics.median(times[1:])


def batched(engine: Engine, n_chains: int, repeats: int) -> tuple[float, float]:
    """(proposals per second, compile seconds) for n_chains chains."""
    n_iters = max(2, PROPOSALS_PER_RUN // n_chains)
    config = SamplerConfig("mh", n_iters=n_iters)
    start = time.perf_counter()
    jax.block_until_ready(engine.sample(jax.random.key(0), n_chains, config))
    compile_s = time.perf_counter() - start
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(engine.sample(jax.random.key(r + 1), n_chains, config))
        times.append(time.perf_counter() - start)
    # Each run also scores its C starting loops; that work is not counted as proposals.
    return n_chains * n_iters / statistics.median(times), compile_s


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--kit", type=pathlib.Path, default=REPO / "samples")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chains", type=int, nargs="*", help="batched sizes to run")
    parser.add_argument("--sequential-proposals", type=int, default=100)
    args = parser.parse_args(argv)
    on_gpu = jax.devices()[0].platform == "gpu"
    sizes = args.chains or ([1, 16, 256, 4096, 16384] if on_gpu else [1, 16, 256])

    peak = yardstick()
    engine = Engine(load_kit(args.kit, 88200), init_critic(jax.random.key(0)))
    flops = flops_per_proposal(engine)
    rows = []
    seq = sequential(engine, args.sequential_proposals, args.repeats)
    rows.append({"mode": "sequential", "chains": 1,
                 "proposals_per_s": seq, "flops_per_proposal": flops})
    for n_chains in sizes:
        rate, compile_s = batched(engine, n_chains, args.repeats)
        rows.append({"mode": "batched", "chains": n_chains,
                     "proposals_per_s": rate, "flops_per_proposal": flops,
                     "compile_s": round(compile_s, 2)})
    for row in rows:
        row["gflops_per_s"] = row["proposals_per_s"] * row["flops_per_proposal"] / 1e9
        row["vs_sequential"] = row["proposals_per_s"] / seq
        for k in ("proposals_per_s", "gflops_per_s", "vs_sequential"):
            row[k] = round(row[k], 2)
        row["flops_per_proposal"] = int(row["flops_per_proposal"])
        row = with_share({"bench": "sampler", **row}, peak)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{row['mode']:>10} C={row['chains']:>6} {row['proposals_per_s']:>10.1f}"
                  f" proposals/s {row['gflops_per_s']:>7.1f} GFLOP/s"
                  f" x{row['vs_sequential']:.2f} vs sequential,"
                  f" {row['share_of_peak']:.0%} of the float32 matmul peak", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
