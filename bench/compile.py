"""Compile times: cold (empty persistent cache) and warm (the cache filled by a first run).

Three paths, each traced and compiled in a fresh process, twice, against one new
``jax_compilation_cache_dir`` (the CLI keeps its cache under ``~/.cache/ddjax/xla``):

- ``sampler``: ``Engine.sample`` with the paper's CNN, 256 chains of 8 iterations (the
  sampler benchmark's largest CPU row);
- ``training``: the CNN learner's update, a burst of 16 steps (``--pretrained none``);
- ``serving``: what a session compiles before its first loop with the default learner:
  the head's update and one chain of 100 MH iterations on a Thompson draw.

``setup_trace_s`` is loading the kit, the learner's ``init`` (which runs) and JAX's
tracing and lowering (never cached); ``compile_s`` is XLA's compile, or the cache's load. The target is under 20 s for any one compile on CPU.

Usage: python bench/compile.py [--json] [--kit DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
PATHS = ("sampler", "training", "serving")


def _lowered(path: str, kit_dir: pathlib.Path):
    """The path's jitted function, lowered for its arguments."""
    import jax
    import jax.numpy as jnp

    from ddjax.core.critic import init_critic
    from ddjax.core.loops import allowed_samples, random_loop
    from ddjax.core.pipeline import Pipeline
    from ddjax.core.render import render_tables
    from ddjax.io.kit import load_kit
    from ddjax.learning.registry import choose_learner, learner_pipeline, make_learner
    from ddjax.sampling.engine import Engine
    from ddjax.sampling.sampler import SamplerConfig

    kit = load_kit(kit_dir, Pipeline().render.bar_samples)
    if path == "sampler":
        engine = Engine(kit, init_critic(jax.random.key(0)))
        return engine.lower_sample(jax.random.key(0), 256, SamplerConfig("mh", n_iters=8))
    choice = choose_learner("none" if path == "training" else None)
    pipeline = learner_pipeline(choice, Pipeline())
    learner = make_learner(choice, pipeline)
    tables = render_tables(kit.audio, pipeline.render)
    allowed = jnp.asarray(allowed_samples(pipeline.loops, kit.is_kick))
    state = learner.init(jax.random.key(1), tables, allowed)
    loop = random_loop(jax.random.key(2), allowed, pipeline.loops)
    update = learner.update.lower(jax.random.key(3), state, tables, loop, True)
    if path == "training":
        return update
    engine = Engine(kit, learner.critic(state), pipeline)
    sample = engine.lower_sample(jax.random.key(0), 1,
                                 SamplerConfig("mh", n_iters=100, temperature=0.1))
    return update, sample


def child(path: str, kit_dir: pathlib.Path) -> dict:
    import jax
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    start = time.perf_counter()
    lowered = _lowered(path, kit_dir)
    lowered = lowered if isinstance(lowered, tuple) else (lowered,)
    setup_trace_s = time.perf_counter() - start
    compile_s = []
    for one in lowered:
        start = time.perf_counter()
        one.compile()
        compile_s.append(time.perf_counter() - start)
    return {"setup_trace_s": round(setup_trace_s, 2), "compile_s": round(sum(compile_s), 2),
            "largest_compile_s": round(max(compile_s), 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--kit", type=pathlib.Path, default=REPO / "samples")
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.kit)))
        return 0
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from machine import cpu_model, device_name
    about = {"cpu": cpu_model(), "device": device_name()}
    for path in PATHS:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": cache}
            for state in ("cold", "warm"):
                done = subprocess.run(
                    [sys.executable, __file__, "--child", path, "--kit", str(args.kit)],
                    capture_output=True, text=True, env=env, check=True)
                row = {"bench": "compile", "path": path, "cache": state,
                       **json.loads(done.stdout.strip().splitlines()[-1]), **about}
                if args.json:
                    print(json.dumps(row), flush=True)
                else:
                    print(f"{path:>9} {state}: setup and trace {row['setup_trace_s']:6.2f} s,"
                          f" compile"
                          f" {row['compile_s']:6.2f} s (largest {row['largest_compile_s']:.2f} s)",
                          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
