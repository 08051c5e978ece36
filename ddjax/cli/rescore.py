"""``ddjax rescore``: the command line around ``ddjax.rescore.run.rescore``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys
import threading
from collections.abc import Mapping
from typing import NamedTuple

from ddjax import limits
from ddjax.cli.argtypes import (
    bpm,
    coordinator,
    coordinator_timeout,
    loop_count,
    non_negative_int,
    positive_int,
    seed,
    tracks,
)
from ddjax.errors import DdjaxError
from ddjax.io.files import check_file_target
from ddjax.io.kit import bundled_kit, load_kit

BUNDLED_KIT = bundled_kit()


def add_parser(commands) -> argparse.ArgumentParser:
    """Registers ``ddjax rescore`` on the CLI's subparsers."""
    cmd = commands.add_parser(
        "rescore", help="score many loops with an ensemble of critics, to CSV",
        description=(
            "Scores every loop with K critics at once (one MFCC per loop, critics vmapped),"
            " streamed in fixed-size batches over all local devices, and writes one CSV row"
            " per loop: id, source, the ensemble's mean, vote share (critics with f > 0.5)"
            " and standard deviation."))
    cmd.add_argument("--critics", nargs="+", metavar="FILE_OR_DIR",
                     help="critic files, or folders of *.critic files (required, except"
                          " with --merge)")
    what = cmd.add_mutually_exclusive_group(required=True)
    what.add_argument("--loops", nargs="+", metavar="DIR_OR_JSONL",
                      help="loop folders (their .json, .jsonl and audio files), .json or"
                           " .jsonl files, or audio files (the first bar is scored)")
    what.add_argument("--generate", type=loop_count, metavar="N",
                      help="score N fresh random loops from the prior instead")
    what.add_argument("--merge", nargs="+", type=pathlib.Path, metavar="PART",
                      help="merge the shards FILE.partPPP-of-NNN.csv of a run on several"
                           " hosts into --out; refuses shards made with other settings")
    cmd.add_argument("--kit", type=pathlib.Path, default=BUNDLED_KIT,
                     help="folder of one-shot samples (default: the bundled samples/)")
    cmd.add_argument("--bpm", type=bpm, default=120.0,
                     help="tempo to render at; loops at other tempi are skipped (default 120)")
    cmd.add_argument("--tracks", type=tracks, default=4,
                     help=f"tracks a loop has, 1 to {limits.MAX_TRACKS}: --generate makes"
                          " them, loop files of another size are skipped (default 4)")
    cmd.add_argument("--batch", type=positive_int, default=64,
                     help="inputs per batch, split over the devices (default 64)")
    cmd.add_argument("--top", type=non_negative_int, default=0, metavar="K",
                     help="write the K best loops (highest mean) as WAV + JSON")
    cmd.add_argument("--bottom", type=non_negative_int, default=0, metavar="K",
                     help="write the K worst loops (lowest mean) as WAV + JSON")
    cmd.add_argument("--per-critic", action="store_true",
                     help="also write every critic's score, one column each")
    cmd.add_argument("--seed", type=seed, default=0, help="PRNG seed of --generate (default 0)")
    cmd.add_argument("--model-shards", type=positive_int, default=1, metavar="M",
                     help="shard the critics over M local devices (default 1: replicate)")
    cmd.add_argument("--resume", action="store_true",
                     help="continue an interrupted run with the same arguments")
    host = cmd.add_argument_group("multi-host (see docs/distributed.md)")
    host.add_argument("--distributed", action="store_true",
                      help="call jax.distributed.initialize() (cluster auto-detection, or"
                           " the flags below); each host writes FILE.partP-of-N.csv")
    host.add_argument("--coordinator", type=coordinator, metavar="HOST:PORT",
                      help="address of process 0 (implies --distributed; default:"
                           " $JAX_COORDINATOR_ADDRESS)")
    host.add_argument("--num-processes", type=positive_int, metavar="N",
                      help="hosts in the run (default: $JAX_NUM_PROCESSES)")
    host.add_argument("--process-id", type=non_negative_int, metavar="P",
                      help="this host's index, 0 to N-1 (default: $JAX_PROCESS_ID)")
    host.add_argument("--coordinator-timeout", type=coordinator_timeout, default=60,
                      metavar="SECONDS",
                      help="give up, with exit code 2, when the hosts have not all joined"
                           " within SECONDS (default 60)")
    cmd.add_argument("--out", type=pathlib.Path, required=True, metavar="FILE.csv")
    return cmd


class Hosts(NamedTuple):
    """Where this host stands: ``distributed`` starts ``jax.distributed`` to learn the
    rest; otherwise ``process_id`` of ``num_processes`` is taken as given."""

    distributed: bool
    coordinator: str | None
    num_processes: int | None
    process_id: int | None


# The flags' defaults, read when a flag is absent (JAX itself reads only the first).
HOST_ENVIRONMENT = (("coordinator", "JAX_COORDINATOR_ADDRESS", coordinator),
                    ("num_processes", "JAX_NUM_PROCESSES", positive_int),
                    ("process_id", "JAX_PROCESS_ID", non_negative_int))


def host_settings(args, environ: Mapping[str, str]) -> Hosts:
    """The host flags, each falling back to its ``JAX_*`` variable in ``environ``.

    Raises:
      DdjaxError: a variable does not parse, or only one of the process count and index
        is known without ``jax.distributed``.
    """
    values = {}
    for field, name, parse in HOST_ENVIRONMENT:
        value, text = getattr(args, field), environ.get(name, "").strip()
        if value is None and text:
            try:
                value = parse(text)
            except (argparse.ArgumentTypeError, ValueError) as err:
                reason = str(err) if isinstance(err, argparse.ArgumentTypeError) else (
                    "not an integer")
                raise DdjaxError(f"${name}={text!r}: {reason}") from None
        values[field] = value
    distributed = bool(args.distributed or values["coordinator"])
    if not distributed and (values["num_processes"] is None) != (values["process_id"] is None):
        raise DdjaxError("--num-processes and --process-id go together (or $JAX_NUM_PROCESSES"
                         " and $JAX_PROCESS_ID)")
    if (values["num_processes"] is not None and values["process_id"] is not None
            and values["process_id"] >= values["num_processes"]):
        raise DdjaxError(f"--process-id must be 0 to {values['num_processes'] - 1}, got"
                         f" {values['process_id']}")
    return Hosts(distributed, **values)


def _join(hosts: Hosts, timeout: int) -> tuple[int, int]:
    """Starts ``jax.distributed`` to learn this host's index and the host count, then
    shuts it down at once: hosts never exchange arrays, so a host that dies later cannot
    take the others down at JAX's shutdown barrier.

    JAX's own timeout aborts the process with a C++ trace, so a watchdog gives up first
    with one line and exit code 2."""
    import jax
    from jax._src.distributed import global_state  # public API offers only process_index()

    lock, state = threading.Lock(), {"joined": False}

    def give_up():
        with lock:
            if state["joined"]:
                return
            where = hosts.coordinator or "the coordinator"
            print(f"ddjax rescore: error: the {hosts.num_processes or 'other'} hosts did not"
                  f" all join {where} within {timeout} s (--coordinator-timeout); start every"
                  " host with the same --coordinator and --num-processes", file=sys.stderr,
                  flush=True)
            os._exit(2)

    watchdog = threading.Timer(timeout, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(hosts.coordinator, hosts.num_processes, hosts.process_id,
                                   initialization_timeout=timeout + 60,
                                   shutdown_timeout_seconds=timeout + 60)
        # Read before any backend exists: a backend made with the distributed client
        # would set up cross-host collectives that fail once the runtime is shut down.
        joined = global_state.process_id, global_state.num_processes
        jax.distributed.shutdown()
    except (RuntimeError, ValueError) as err:
        raise DdjaxError(f"jax.distributed.initialize failed: {str(err).splitlines()[0]};"
                         " check --coordinator, --num-processes and --process-id") from None
    finally:
        with lock:
            state["joined"] = True
        watchdog.cancel()
    return joined


def _hosts(args) -> tuple[int, int]:
    hosts = host_settings(args, os.environ)
    if hosts.distributed:
        return _join(hosts, args.coordinator_timeout)
    return hosts.process_id or 0, hosts.num_processes or 1


def _merge(args) -> int:
    from ddjax.rescore.shards import merge_shards

    if args.critics:
        raise DdjaxError("--merge takes only the shards and --out; leave out --critics")
    target = check_file_target(args.out, "--out")
    if target.resolve() in {p.resolve() for p in args.merge}:
        raise DdjaxError(f"--out {args.out} is one of the shards; pick another file")
    rows = merge_shards(args.merge, target)
    print(f"merged {len(args.merge)} shards, {rows} rows: {target}")
    return 0


def run(args) -> int:
    """``ddjax rescore``: the thin shell around ``rescore``."""
    if args.merge:
        return _merge(args)
    if not args.critics:
        raise DdjaxError("the following argument is required: --critics")
    # Here, not at the top: ``ddjax --help`` and ``ddjax export`` parse without JAX.
    import jax

    from ddjax.core.pipeline import Pipeline
    from ddjax.io.critics import load_ensemble
    from ddjax.rescore.inputs import Inputs, input_files, iter_sources, random_sources
    from ddjax.rescore.output import best_and_worst, export_ranked, shard_path
    from ddjax.rescore.run import RescoreConfig, rescore
    from ddjax.session.terminal import counted

    process_id, num_processes = _hosts(args)
    config = RescoreConfig(batch=args.batch, model_shards=args.model_shards,
                           per_critic=args.per_critic, seed=args.seed,
                           process_id=process_id, num_processes=num_processes)
    check_file_target(shard_path(args.out, process_id, num_processes), "--out")
    pipeline = Pipeline.sized(args.bpm, args.tracks)
    ensemble = load_ensemble(args.critics, pipeline)
    pipeline = dataclasses.replace(pipeline, critic=ensemble.config)
    n_devices = len(jax.local_devices())
    limits.check_count("--batch", args.batch, limits.score_loop_bytes(pipeline),
                       devices=max(1, n_devices // args.model_shards))
    if args.kit == BUNDLED_KIT and not args.kit.is_dir():
        raise DdjaxError(f"the bundled kit is not installed here ({args.kit}); pass --kit DIR")
    kit = load_kit(args.kit, pipeline.render.bar_samples, sr=pipeline.render.sr,
                   min_samples=pipeline.loops.n_tracks)
    if args.generate is not None:
        sources_fn = lambda: random_sources(args.generate, args.seed)
        n_inputs = args.generate
        facts = {"generate": args.generate}
    else:
        files = input_files(args.loops)
        sources_fn = lambda: iter_sources(files)
        n_inputs = sum(1 for _ in sources_fn())
        facts = {"loops": [str(p.resolve()) for p in files]}
    if n_inputs == 0:
        raise DdjaxError("no loops to score: the --loops folders hold no .json, .jsonl or"
                         " audio file")
    summary = rescore(sources_fn, n_inputs, ensemble, kit, pipeline, config, args.out,
                      resume=args.resume, facts=facts)
    if args.top or args.bottom:
        best, worst = best_and_worst(summary.csv, args.top, args.bottom)
        inputs = Inputs(kit, pipeline, args.seed)
        stem = summary.csv.with_suffix("")
        export_ranked(best, "top", stem.with_name(stem.name + "_top"), sources_fn, inputs)
        export_ranked(worst, "bottom", stem.with_name(stem.name + "_bottom"), sources_fn,
                      inputs)
    if summary.skipped:
        print(f"ddjax rescore: skipped {summary.skipped} input(s) (see the warnings above)",
              file=sys.stderr)
    print(f"scored {counted(summary.rows, 'loop')} with {counted(len(ensemble), 'critic')}"
          f" on {counted(len(jax.local_devices()), 'device')}: {summary.csv}")
    return 0
