"""Training throughput: examples per second of the critic's training step, new vs old.

A training example is one loop through one step: its features (augmented), the CNN's
forward and backward pass, and its share of the Adam update. Rows:

- ``"step"``: examples per second at batch 16 and 64, for the current code
  (``augmentation="mel"``, the default; and ``"audio"``) and for the old code path,
  ``ddjax/critic.py`` and ``ddjax/training.py`` as of ``--baseline`` (git), loaded into
  this process, so ``vs_baseline`` is a same-run ratio.
- ``"burst"``: the wall time of one burst of ``steps_per_rating`` steps at batch 16, the
  training a session runs after each rating, for the same paths.
- ``"bf16_check"``: a critic trained with bfloat16 matmuls scores 256 fresh loops with
  bfloat16 and with float32 matmuls; the scores must stay within 1e-2.
- ``"update"``: a session's whole learner update after 80 ratings, for the default
  learner (the Bayesian head) and for the CNN (``--pretrained none``).

Every figure is the median of ``--repeats`` timed runs after a warm-up (compile) run; a
"step" run is 4 steps in one ``lax.scan``, as in a burst. FLOPs come from XLA's cost
analysis of one step; ``share_of_peak`` divides GFLOP/s by the
machine's float32 matmul peak measured in this run (``bench/machine.py``).

Usage: python bench/training.py [--json] [--kit DIR] [--repeats R] [--baseline REV]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import pathlib
import statistics
import subprocess
import sys
import time
import types

import jax
import jax.numpy as jnp
import numpy as np

from ddjax.core.critic import init_critic, prob_like
from ddjax.core.features import mel_power, mfcc
from ddjax.core.loops import allowed_samples, random_loop
from ddjax.core.pipeline import Pipeline
from ddjax.core.render import critic_view, render_tables
from ddjax.io.kit import load_kit
from ddjax.learning import training
from ddjax.learning.registry import choose_learner, learner_pipeline, make_learner

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from machine import with_share, yardstick  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
BASELINE = "940acc7"  # the last commit before the training path was reworked
N_RATED = 80
STEPS_PER_CALL = 4  # steps per timed call in the "step" rows (one lax.scan, as in a burst)


def load_baseline(rev: str) -> types.ModuleType | None:
    """``ddjax/training.py`` at ``rev``, importing ``ddjax/critic.py`` at ``rev``; None
    where git or the commit is not there."""
    def source(path):
        out = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{path}"],
                             capture_output=True, text=True)
        return out.stdout if out.returncode == 0 else None

    critic_src, training_src = source("ddjax/critic.py"), source("ddjax/training.py")
    if critic_src is None or training_src is None:
        return None
    modules = {}
    for name, src in (("baseline_critic", critic_src),
                      ("baseline_training",
                       training_src.replace("from ddjax.core.critic import",
                                            "from baseline_critic import"))):
        spec = importlib.util.spec_from_loader(name, loader=None)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        exec(compile(src, f"{rev}:{name}", "exec"), module.__dict__)
        modules[name] = module
    return modules["baseline_training"]


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` after one warm-up call."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--kit", type=pathlib.Path, default=REPO / "samples")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the old path")
    parser.add_argument("--batches", type=int, nargs="*", default=[16, 64])
    args = parser.parse_args(argv)

    peak = yardstick()
    pipeline = Pipeline()
    kit = load_kit(args.kit, pipeline.render.bar_samples)
    tables = render_tables(kit.audio, pipeline.render)
    allowed = jnp.asarray(allowed_samples(pipeline.loops, kit.is_kick))
    loops = jax.vmap(lambda k: random_loop(k, allowed, pipeline.loops))(
        jax.random.split(jax.random.key(0), N_RATED))
    liked = jnp.arange(N_RATED) % 3 == 0
    mel = mel_power(critic_view(tables, loops, pipeline.render), pipeline.features)
    variables = init_critic(jax.random.key(1), pipeline.critic)

    paths = {"mel": (training, {"augmentation": "mel"}),
             "mel-float32": (training, {"augmentation": "mel", "precision": "float32"}),
             "audio": (training, {"augmentation": "audio"})}
    old = load_baseline(args.baseline)
    if old is not None:
        paths = {"baseline": (old, None), **paths}
    else:
        print(f"# no baseline: git revision {args.baseline} is not here", file=sys.stderr)

    def run(module, settings, batch, n_steps):
        config = module.TrainConfig(batch_size=batch, **(settings or {}))
        state = module.init_train_state(variables, config)
        ratings = (module.Ratings(loops, liked, jnp.int32(N_RATED)) if settings is None
                   else module.Ratings(loops, liked, jnp.int32(N_RATED), mel))
        fn = jax.jit(functools.partial(module.train_steps, n_steps=n_steps,
                                       pipeline=pipeline, config=config))
        return fn, (jax.random.key(2), state, ratings, tables)

    rows, base = [], {}
    for batch in args.batches:
        for name, (module, settings) in paths.items():
            one, one_args = run(module, settings, batch, 1)
            cost = one.lower(*one_args).compile().cost_analysis()
            cost = cost[0] if isinstance(cost, (list, tuple)) else cost
            fn, fn_args = run(module, settings, batch, STEPS_PER_CALL)
            seconds = timed(lambda: fn(*fn_args), args.repeats) / STEPS_PER_CALL
            rate = batch / seconds
            base.setdefault(batch, rate if name == "baseline" else None)
            rows.append(with_share({
                "bench": "training", "row": "step", "path": name, "batch": batch,
                "examples_per_s": round(rate, 1), "step_ms": round(1000 * seconds, 2),
                "gflops_per_s": round(float(cost["flops"]) / seconds / 1e9, 2),
                "vs_baseline": round(rate / base[batch], 2) if base[batch] else None}, peak))
    burst = training.TrainConfig().steps_per_rating
    for name, (module, settings) in paths.items():
        fn, fn_args = run(module, settings, 16, burst)
        seconds = timed(lambda: fn(*fn_args), args.repeats)
        rows.append({"bench": "training", "row": "burst", "path": name, "batch": 16,
                     "steps": burst, "burst_s": round(seconds, 3), **peak})
    rows.append({"bench": "training", "row": "bf16_check",
                 **bf16_check(run, tables, pipeline, allowed), **peak})
    for name, pretrained in (("learner:head", None), ("learner:cnn", "none")):
        seconds = learner_update(pretrained, kit, loops, liked, args.repeats)
        rows.append({"bench": "training", "row": "update", "path": name,
                     "ratings": N_RATED, "update_s": round(seconds, 4), **peak})
    for row in rows:
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print("  ".join(f"{k}={v}" for k, v in row.items()
                            if k not in ("cpu", "device", "bench")), flush=True)
    return 0


def bf16_check(run, tables, pipeline, allowed, n_loops: int = 256) -> dict:
    """A critic trained with bfloat16 matmuls (4 bursts on the 80 rated loops), scored on
    ``n_loops`` fresh loops with bfloat16 and with float32 matmuls: the largest difference,
    and the scores' spread (so that a critic at 0.5 everywhere cannot pass unnoticed)."""
    fn, (key, state, ratings, _) = run(training, {"augmentation": "mel",
                                                  "precision": "bfloat16"}, 16, 16)
    for burst in range(4):
        state, _ = fn(jax.random.key(10 + burst), state, ratings, tables)
    fresh = jax.vmap(lambda k: random_loop(k, allowed, pipeline.loops))(
        jax.random.split(jax.random.key(99), n_loops))
    features = mfcc(critic_view(tables, fresh, pipeline.render), pipeline.features)
    score = jax.jit(prob_like, static_argnames=("config", "dtype"))
    f32 = np.asarray(score(state.variables, features, pipeline.critic, "float32"))
    bf16 = np.asarray(score(state.variables, features, pipeline.critic, "bfloat16"))
    return {"loops": n_loops, "max_abs_diff": float(np.max(np.abs(bf16 - f32))),
            "score_std": round(float(np.std(f32)), 3), "within_1e-2":
            bool(np.max(np.abs(bf16 - f32)) <= 1e-2)}


def learner_update(pretrained: str | None, kit, loops, liked, repeats: int) -> float:
    """Seconds of a session's learner update (the rating's ``remember`` and the learning)
    after ``N_RATED`` ratings: ``pretrained`` None is the default head, "none" the CNN."""
    choice = choose_learner(pretrained)
    pipeline = learner_pipeline(choice, Pipeline())
    learner = make_learner(choice, pipeline)
    tables = render_tables(kit.audio, pipeline.render)
    allowed = jnp.asarray(allowed_samples(pipeline.loops, kit.is_kick))
    state = learner.init(jax.random.key(3), tables, allowed)
    row = lambda i: jax.tree_util.tree_map(lambda x: x[i], loops)
    for i in range(N_RATED - 1):
        state = learner.remember(state, tables, row(i), liked[i])
    last = row(N_RATED - 1)
    return timed(lambda: learner.update(jax.random.key(4), state, tables, last,
                                        liked[N_RATED - 1]), repeats)


if __name__ == "__main__":
    sys.exit(main())
