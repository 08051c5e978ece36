"""Rescoring throughput: loop-critic scores per second, K critics sharing each loop's MFCC.

A score is one critic's P(like) of one loop, the whole path included: the critic's view
of the loop (render), its MFCC (once per loop, shared by the K critics) and the K
critics' forward passes, as ``ddjax rescore`` runs them (``rescore_scoring.Scorer``, fed host
batches of random loops). Critics are freshly initialised; their weights do not change
the cost.

Rows: K in {1, 8, 64} on all local devices, plus one row on 8 forced host devices (a
subprocess: ``XLA_FLAGS`` must be set before JAX starts) whose scores are compared with
the 1-device run on the same loops (``max_abs_diff_vs_1_device``; null on the reference
rows themselves). Each figure is the median of ``--repeats`` timed batches after a
warm-up (compile) batch. FLOPs per score come from XLA's cost analysis of one critic's
forward pass plus 1/K of one loop's render and MFCC; ``share_of_peak`` divides GFLOP/s by
the machine's float32 matmul peak, measured in the same process (``bench/machine.py``).

Usage: python bench/rescore.py [--json] [--kit DIR] [--repeats R] [--critics K ...]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from ddjax.core.critic import CriticConfig, init_critic, prob_like
from ddjax.core.features import mfcc
from ddjax.core.loops import Loop
from ddjax.core.pipeline import Pipeline
from ddjax.core.render import critic_view, render_tables
from ddjax.io.critics import Ensemble
from ddjax.io.kit import load_kit
from ddjax.rescore.inputs import Inputs, Item, random_sources
from ddjax.rescore.scoring import Scorer, make_layout

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from machine import device_name, with_share, yardstick  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARDED_DEVICES = 8
SHARDED_CRITICS = 8


def batch_size(n_critics: int, on_gpu: bool) -> int:
    """Loops per batch: enough work per call to fill the device, bounded memory."""
    if on_gpu:
        return min(4096, max(256, 32768 // n_critics))
    return {1: 128, 8: 64}.get(n_critics, 32)


def make_ensemble(n_critics: int) -> Ensemble:
    keys = jax.random.split(jax.random.key(0), n_critics)
    stacked = jax.jit(jax.vmap(init_critic))(keys)
    names = tuple(f"c{k}" for k in range(n_critics))
    return Ensemble(stacked, CriticConfig(), names, ("",) * n_critics)


def _flops(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    return float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])


def flops_per_score(kit, pipeline: Pipeline, n_critics: int) -> float:
    """XLA's FLOP count per loop-critic score: one critic's forward pass plus 1/K of the
    loop's render and MFCC, each counted on one clip (cost analysis counts a loop body
    once, not per trip, and on one clip no chunking loop runs more than once)."""
    critic = _flops(prob_like, init_critic(jax.random.key(0)),
                    jnp.zeros((pipeline.critic.n_mfcc, pipeline.critic.n_frames)))
    loops = Inputs(kit, pipeline, seed=0).random_loops([0])
    tables = render_tables(kit.audio, pipeline.render)
    shared = _flops(lambda t, l: mfcc(critic_view(t, l, pipeline.render), pipeline.features),
                    tables, Loop(jnp.asarray(loops.grid), jnp.asarray(loops.samples)))
    return critic + shared / n_critics


def measure(kit, n_critics: int, batch: int, repeats: int) -> dict:
    """Scores per second on all local devices, and the scores of the timed batches."""
    pipeline = Pipeline()
    scorer = Scorer(make_ensemble(n_critics), kit, pipeline, make_layout(jax.local_devices()))
    inputs = Inputs(kit, pipeline, seed=0)
    batches = []
    for r in range(repeats + 1):
        sources = list(random_sources((r + 1) * batch, 0))[r * batch:]
        loops = inputs.random_loops([s.line for s in sources])
        batches.append([Item(s, loops.grid[i], loops.samples[i]) for i, s in
                        enumerate(sources)])
    jax.block_until_ready(scorer(batches[0]))  # compile
    times, probs = [], []
    for items in batches[1:]:
        start = time.perf_counter()
        scores = jax.block_until_ready(scorer(items))
        times.append(time.perf_counter() - start)
        probs.append(np.asarray(scores.probs))
    flops = flops_per_score(kit, pipeline, n_critics)
    rate = batch * n_critics / statistics.median(times)
    return {"bench": "rescore", "critics": n_critics, "devices": len(jax.local_devices()),
            "device": device_name(), "batch": batch, "scores_per_s": round(rate, 1),
            "flops_per_score": int(flops), "gflops_per_s": round(rate * flops / 1e9, 1),
            "probs": np.concatenate(probs)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--kit", type=pathlib.Path, default=REPO / "samples")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--critics", type=int, nargs="*", default=[1, 8, 64])
    parser.add_argument("--child", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    kit = load_kit(args.kit, 88200)
    on_gpu = jax.devices()[0].platform == "gpu"
    peak = yardstick()

    if args.child:  # the 8-device row, in a process started with forced host devices
        row = measure(kit, SHARDED_CRITICS, batch_size(SHARDED_CRITICS, on_gpu), args.repeats)
        np.save(args.child, row.pop("probs"))
        print(json.dumps(with_share(row, peak)))
        return 0

    rows = []
    reference = None
    for n_critics in args.critics:
        row = measure(kit, n_critics, batch_size(n_critics, on_gpu), args.repeats)
        probs = row.pop("probs")
        if n_critics == SHARDED_CRITICS and not on_gpu:
            reference = probs
        row = with_share({**row, "max_abs_diff_vs_1_device": None}, peak)
        rows.append(row)
        emit(row, args.json)
    if reference is not None and len(jax.local_devices()) == 1:
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp) / "probs.npy"
            env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": (
                os.environ.get("XLA_FLAGS", "") +
                f" --xla_force_host_platform_device_count={SHARDED_DEVICES}").strip()}
            done = subprocess.run([sys.executable, __file__, "--kit", str(args.kit),
                                   "--repeats", str(args.repeats), "--child", str(out)],
                                  capture_output=True, text=True, env=env, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["max_abs_diff_vs_1_device"] = float(np.max(np.abs(np.load(out) - reference)))
            emit(row, args.json)
    return 0


def emit(row: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(row), flush=True)
    else:
        diff = row["max_abs_diff_vs_1_device"]
        print(f"K={row['critics']:>3} D={row['devices']} {row['device']:<12}"
              f" {row['scores_per_s']:>10.1f} scores/s {row['gflops_per_s']:>6.1f} GFLOP/s"
              f" ({row['share_of_peak']:.0%} of peak)"
              + ("" if diff is None else f"  max |diff| vs 1 device {diff:.2e}"), flush=True)


if __name__ == "__main__":
    sys.exit(main())
