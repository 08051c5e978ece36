"""The ``ddjax`` command line: the thin, impure shell around the engine.

Errors a user can cause become one line on stderr and exit code 2; loops already written
stay on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import sys
import time
import warnings

import jax
import numpy as np
from tqdm import tqdm

from ddjax import limits, rescore
from ddjax.critic import init_critic, load_critic
from ddjax.encode import suffix
from ddjax.engine import Engine, Pipeline
from ddjax.ensemble import load_ensemble
from ddjax.errors import DdjaxError
from ddjax.export import export_loop, loop_bar_path, track_notes
from ddjax.files import (atomic_write_bytes, check_file_target, check_folder_target,
                         loop_record, os_reason, read_loop_json, write_audio, write_loop_json)
from ddjax.groove import Humanize, of_record
from ddjax.hardware import use_all_cores
from ddjax.kit import load_kit
from ddjax.parser import BUNDLED_KIT, build_parser
from ddjax.loops import Loop
from ddjax.render import RenderConfig, listening_render, loop_render
from ddjax.sampler import SamplerConfig

MAX_ROUNDS_PER_BATCH = 10  # --min-score: give up after this many rounds per batch of chains


def _load_kit(folder: pathlib.Path, render: RenderConfig, n_tracks: int):
    if folder == BUNDLED_KIT and not folder.is_dir():
        raise DdjaxError(f"the bundled kit is not installed here ({folder}); pass --kit DIR")
    return load_kit(folder, render.bar_samples, sr=render.sr, min_samples=n_tracks)


def _next_index(out: pathlib.Path) -> int:
    taken = [int(p.stem.split("_")[-1]) for p in out.glob("loop_*.json")
             if p.stem.split("_")[-1].isdigit()]
    return max(taken, default=-1) + 1


def _check_generate_sizes(args, pipeline: Pipeline) -> None:
    """--chains and --n against memory and disk (see ``ddjax.limits``), before any compile."""
    per_chain = limits.CHAIN_STATE_BYTES
    if jax.default_backend() != "cpu":  # all chains are scored at once (ddjax.batching)
        per_chain += limits.score_loop_bytes(pipeline)
    limits.check_count("--chains", args.chains, per_chain)
    # A round renders every loop it keeps at once: at most min(--n, --chains).
    limits.check_count("--n" if args.n < args.chains else "--chains", min(args.n, args.chains),
                       limits.listen_loop_bytes(pipeline.render))
    wav = limits.listen_loop_bytes(pipeline.render) // limits.RENDER_COPIES
    limits.check_disk("--n", args.n, wav + 4096, args.out)


def _generate(args) -> int:
    if args.min_score is not None and args.climb is not None:
        raise DdjaxError("--min-score and --climb are different modes; pick one")
    if args.vote and not args.critic:
        raise DdjaxError("--vote needs critics to vote; pass --critic FILE_OR_DIR")
    check_folder_target(args.out, "--out")
    origin = None if args.start_from is None else read_loop_json(args.start_from)
    if origin is not None:  # variations keep their loop's tempo and size
        args.bpm = float(origin["bpm"]) if args.bpm is None else args.bpm
        args.tracks = origin["grid"].shape[0] if args.tracks is None else args.tracks
        args.swing = origin.get("swing", 0.0) if args.swing is None else args.swing
        args.humanize = of_record(origin, str(args.start_from)) if args.humanize is None \
            else args.humanize
    pipeline = Pipeline.sized(args.bpm, args.tracks, args.swing or 0.0,
                              args.humanize or Humanize(),
                              four_on_the_floor=args.four_on_floor, prior=args.loop_prior)
    args.bpm = pipeline.render.bpm
    # A fresh critic hears this tempo's bar; a saved one must have been trained on it.
    critic_config = pipeline.critic
    reduction = None
    if args.critic and (args.vote or len(args.critic) > 1 or args.critic[0].is_dir()):
        ensemble = load_ensemble(args.critic, pipeline)
        variables, critic_config = ensemble.variables, ensemble.config
        reduction = "vote" if args.vote else "mean"
    elif args.critic:
        variables, critic_config = load_critic(args.critic[0], pipeline)
    pipeline = dataclasses.replace(pipeline, critic=critic_config)
    _check_generate_sizes(args, pipeline)
    kit = _load_kit(args.kit, pipeline.render, pipeline.loops.n_tracks)
    if not args.critic:
        variables = init_critic(jax.random.key(args.seed), critic_config)
    engine = Engine(kit, variables, pipeline, reduction=reduction)
    start = None
    if origin is not None:
        start = engine.check_start(Loop(
            origin["grid"], np.array([kit.index(name) for name in origin["samples"]]),
            origin.get("velocity")))
    if args.min_score is not None:
        config = SamplerConfig("until", args.iters, args.temperature, threshold=args.min_score)
    elif args.climb is not None:
        config = SamplerConfig("climb", args.iters, target=args.climb)
    else:
        config = SamplerConfig("mh", args.iters, args.temperature)

    args.out.mkdir(parents=True, exist_ok=True)
    index = _next_index(args.out)
    written, rounds = 0, 0
    max_rounds = math.ceil(args.n / args.chains) * (
        MAX_ROUNDS_PER_BATCH if args.min_score is not None else 1)
    key = jax.random.key(args.seed)
    with tqdm(total=args.n, unit="loop", desc="generate", disable=None) as bar:
        while written < args.n and rounds < max_rounds:
            state, info = engine.sample(jax.random.fold_in(key, rounds), args.chains, config,
                                        start=start)
            rounds += 1
            keep = np.nonzero(np.asarray(info.reached))[0][: args.n - written]
            if keep.size == 0:
                continue
            chosen = jax.tree_util.tree_map(lambda x: x[keep], state.loop)
            audio = engine.listen(chosen)
            bars = engine.loop_bar(chosen) if args.loop_wav else [None] * len(audio)
            grids, samples = np.asarray(chosen.grid), np.asarray(chosen.samples)
            velocities = np.asarray(chosen.velocity)
            scores = np.asarray(state.score)[keep]
            for grid, ids, velocity, score, wav, one_bar in zip(grids, samples, velocities,
                                                                scores, audio, bars):
                stem = args.out / f"loop_{index:04d}"
                record = loop_record(grid, [kit.names[i] for i in ids], bpm=args.bpm,
                                     score=score, seed=args.seed,
                                     swing=pipeline.render.swing, velocity=velocity,
                                     humanize=pipeline.render.humanize)
                # The JSON last: no audio is left without its JSON if a write fails.
                paths = export_loop(stem, record, audio=wav, bar=one_bar, sr=kit.sr,
                                    write_json=False, fmt=args.format)
                try:
                    write_loop_json(stem.with_suffix(".json"), record)
                except DdjaxError:  # the loop is not half-written
                    for path in paths:
                        path.unlink(missing_ok=True)
                    raise
                index += 1
                written += 1
                bar.update(1)
    if written < args.n:
        print(f"ddjax: warning: only {written} of {args.n} loops reached --min-score"
              f" {args.min_score} in {rounds} rounds of {args.iters} iterations; raise --iters"
              " or lower --min-score", file=sys.stderr)
    print(f"wrote {written} loops to {args.out}")
    return 0


def _saved_loop(record: dict, kit_dir: pathlib.Path):
    """A checked loop record's render settings, the kit and the loop on it."""
    grid = record["grid"]
    render = RenderConfig(bpm=record["bpm"], n_steps=grid.shape[1],
                          swing=record.get("swing", 0.0), humanize=of_record(record))
    kit = _load_kit(kit_dir, render, grid.shape[0])
    ids = np.array([kit.index(name) for name in record["samples"]], np.int32)
    return render, kit, Loop(grid=grid, samples=ids, velocity=record.get("velocity"))


def _render(args) -> int:
    record = read_loop_json(args.loop)
    check_file_target(args.out, "--out")
    render, kit, loop = _saved_loop(record, args.kit)
    if args.loop_wav:
        audio, tempo = loop_render(kit.audio, loop, render), (render.bpm, render.n_steps // 4)
    else:
        audio, tempo = listening_render(kit.audio, loop, render), None
    write_audio(args.out, np.asarray(audio), kit.sr, args.format, tempo=tempo)
    print(f"wrote {args.out}")
    return 0


def _session_pipeline(args, directory: pathlib.Path | None) -> Pipeline:
    """The pipeline at ``--bpm``, ``--tracks`` and ``--swing``; where a flag is absent, what
    the session in ``directory`` records, else the defaults (a flag that contradicts a
    session's record is the session's error)."""
    from ddjax.journal import read_meta, recorded_humanize, recorded_sizes
    meta = None if directory is None else read_meta(directory)
    bpm, tracks, swing = (None, None, 0.0) if meta is None else recorded_sizes(meta)
    humanize = Humanize() if meta is None else recorded_humanize(meta)
    return Pipeline.sized(bpm if args.bpm is None else args.bpm,
                          tracks if args.tracks is None else args.tracks,
                          swing if args.swing is None else args.swing,
                          humanize if args.humanize is None else args.humanize)


def _check_session_folder(directory: pathlib.Path, private: bool) -> None:
    """A session folder that can be written and, if it is one already, whose
    session.json reads; with ``private``, made 0700."""
    check_folder_target(directory, "--session")
    meta = directory / "session.json"
    if meta.exists():
        try:
            kit = json.loads(meta.read_text(encoding="utf-8")).get("kit")
            if not isinstance(kit, str):
                raise ValueError("no kit recorded")
        except (OSError, ValueError, AttributeError) as err:
            raise DdjaxError(f"{meta} is not a session file ({err}); restore it from a"
                             " backup, or pass another --session to start anew") from None
    if private and directory.is_dir():
        directory.chmod(0o700)


def _play(args) -> int:
    from ddjax.play import play
    from ddjax.session import Session, SessionConfig
    directory = args.session or pathlib.Path(
        time.strftime("ddjax-session-%Y%m%d-%H%M%S"))
    _check_session_folder(directory, args.private)
    resuming = (directory / "session.json").exists()
    kit_dir = None if resuming and args.kit == BUNDLED_KIT else args.kit
    session = Session.open(directory, kit_dir, pipeline=_session_pipeline(args, directory),
                           config=SessionConfig(seed=args.seed, pretrained=args.pretrained,
                                                loop_prior=args.loop_prior))
    if resuming:
        print(f"resumed {directory}: {session.n_ratings} ratings")
    play(session, directory)
    return 0


def _export_liked(args) -> int:
    """``export --session DIR --liked --out FILE.zip``."""
    from ddjax.bundle import liked_zip
    from ddjax.journal import read_log, read_meta
    from ddjax.kinds import kit_notes
    from ddjax.journal import recorded_humanize, recorded_sizes
    if not args.liked or args.out is None or args.out.suffix != ".zip":
        raise DdjaxError("export --session takes --liked and --out FILE.zip")
    if args.loop is not None or args.midi or args.wav or args.loop_wav:
        raise DdjaxError("export --session --liked writes the zip only; drop LOOP.json,"
                         " --midi, --wav and --loop-wav")
    check_file_target(args.out, "--out")
    meta = read_meta(args.session) if args.session.is_dir() else None
    if meta is None:
        raise DdjaxError(f"{args.session} is not a ddjax session (no session.json)")
    bpm, tracks, swing = recorded_sizes(meta)
    render = Pipeline.sized(bpm, tracks, swing, recorded_humanize(meta)).render
    kit = _load_kit(args.kit or pathlib.Path(meta["kit"]), render, tracks)
    ratings = read_log(args.session, kit).ratings
    data = liked_zip(ratings, kit, render, kit_notes(kit),
                     title=f"ddjax session {args.session.resolve().name}")
    atomic_write_bytes(args.out, data)
    print(f"wrote {sum(r.liked for r in ratings)} liked loops to {args.out}")
    return 0


def _export(args) -> int:
    from ddjax.kinds import kit_notes
    if args.session is not None or args.liked:
        if args.session is None:
            raise DdjaxError("--liked needs --session DIR")
        return _export_liked(args)
    if args.loop is None:
        raise DdjaxError("export needs LOOP.json, or --session DIR --liked --out FILE.zip")
    args.kit = args.kit or BUNDLED_KIT
    record = read_loop_json(args.loop)
    both = not (args.midi or args.wav or args.loop_wav)
    stem = args.out or args.loop.with_suffix("")
    targets = ([stem.with_suffix(".json")] if args.out is not None else []) + (
        [stem.with_suffix(suffix(args.format))] if args.wav or both else []) + (
        [loop_bar_path(stem, record["bpm"], args.format)] if args.loop_wav else []) + (
        [stem.with_suffix(".mid")] if args.midi or both else [])
    for target in targets:
        check_file_target(target, "--out" if args.out else "LOOP.json")
    render, kit, loop = _saved_loop(record, args.kit)
    audio = bar = notes = None
    if args.wav or both:
        audio = np.asarray(listening_render(kit.audio, loop, render))
    if args.loop_wav:
        bar = np.asarray(loop_render(kit.audio, loop, render))
    if args.midi or both:
        sample_notes = kit_notes(kit)
        notes = track_notes([sample_notes[i] for i in np.asarray(loop.samples)])
    record = {**record, "grid": loop.grid.astype(int).tolist(), **(
        {"velocity": record["velocity"].tolist()} if "velocity" in record else {})}
    written = export_loop(stem, record, audio=audio,
                          bar=bar, sr=kit.sr, notes=notes, write_json=args.out is not None,
                          fmt=args.format)
    for path in written:
        print(f"wrote {path}")
    return 0


def _experiment(args) -> int:
    from ddjax import experiment, users
    from ddjax.prior import load_prior, NONE
    from ddjax.session import SessionConfig
    from ddjax.training import TrainConfig
    if args.pretrained and args.pretrained != NONE:
        load_prior(args.pretrained)  # a bad file is reported before anything runs
    check_folder_target(args.out, "--out")
    if args.private and args.out.is_dir():
        args.out.chmod(0o700)
    if args.from_sessions:
        results = experiment.load_results(args.from_sessions)
        for result in results:
            print(f"{result.get('rater', '?')}: theta_init {result['theta_init']:.2f},"
                  f" theta_final {result['theta_final']:.2f}, delta {result['delta']:+.2f}"
                  f" ({result['path']})")
        _write_summary(experiment, results, args.out)
        return 0
    pipeline = _session_pipeline(args, None)
    kit = _load_kit(args.kit, pipeline.render, pipeline.loops.n_tracks)
    train = TrainConfig() if args.steps_per_rating is None else TrainConfig(
        steps_per_rating=args.steps_per_rating)
    specs = list(users.BUILT_IN) if args.rater == "all" else [args.rater]
    results = []
    for spec in specs:
        for seed in range(args.seed, args.seed + args.seeds):
            rater = experiment.load_rater(spec, kit, seed=seed, pipeline=pipeline)
            label = spec if len(specs) > 1 or ":" not in spec else spec.rpartition(":")[2]
            out = args.out if len(specs) == 1 and args.seeds == 1 else (
                args.out / label.replace("/", "_") / f"seed_{seed}")
            result = experiment.run_experiment(
                kit, rater, experiment.ExperimentConfig(args.ratings, args.eval, seed=seed),
                out=out, train=train, label=label, pipeline=pipeline,
                session_config=SessionConfig(seed=seed, pretrained=args.pretrained,
                                             loop_prior=args.loop_prior))
            print(f"{label} seed {seed}: theta_init {result['theta_init']:.2f}, theta_final"
                  f" {result['theta_final']:.2f}, delta {result['delta']:+.2f} -> {out}")
            results.append(result)
    if len(results) > 1:
        _write_summary(experiment, results, args.out)
    return 0


def _write_summary(experiment, results: list[dict], out: pathlib.Path) -> None:
    """The paper's table on stdout; summary.json and densities.png in ``out``."""
    summary = experiment.summarize(results)
    experiment.print_table(summary)
    atomic_write_bytes(out / "summary.json", (json.dumps(
        {**summary, "runs_detail": [{k: r.get(k) for k in (
            "rater", "seed", "theta_init", "theta_final", "delta")} for r in results]},
        indent=1) + "\n").encode())
    experiment.plot_densities(results, out / "densities.png")


def _serve(args) -> int:
    from ddjax.experiment import ExperimentConfig
    from ddjax.prior import NONE, load_prior
    from ddjax.serve import ServeConfig, serve
    from ddjax.session import SessionConfig
    _check_session_folder(args.session, args.private)
    kit_dir = args.kit
    if kit_dir is None and (args.study or not (args.session / "session.json").exists()):
        kit_dir = BUNDLED_KIT
    if kit_dir == BUNDLED_KIT and not kit_dir.is_dir():
        raise DdjaxError(f"the bundled kit is not installed here ({kit_dir}); pass --kit DIR")
    if args.pretrained and args.pretrained != NONE:
        load_prior(args.pretrained)  # before listening: the session opens in the background
    config = ServeConfig(kit_dir, args.session, study=args.study,
                         experiment=ExperimentConfig(args.study_ratings, args.study_eval,
                                                     seed=args.seed),
                         session=SessionConfig(seed=args.seed, pretrained=args.pretrained,
                                               loop_prior=args.loop_prior),
                         pipeline=_session_pipeline(args, None if args.study else args.session),
                         resume_by_id=args.resume_by_id)
    serve(config, args.host, args.port, allow_remote=args.allow_remote)
    return 0


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"ddjax: warning: {message}", file=sys.stderr)


def _enable_compilation_cache() -> None:
    """Keeps compiled programs on disk so the next run starts in seconds, not tens."""
    if os.environ.get("DDJAX_NO_COMPILATION_CACHE"):
        return
    cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache"))
    jax.config.update("jax_compilation_cache_dir", str(cache / "ddjax" / "xla"))
    # Every program, however quick to compile: a start compiles dozens of small ones
    # (the learner's alone took 1 s warm with a 1-s threshold, 0.2 s without).
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


@contextlib.contextmanager
def _umask(private: bool):
    """--private: everything the command creates is 0700 (folders) or 0600 (files)."""
    if not private:
        yield
        return
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if jax.config.jax_compilation_cache_dir is None:
        _enable_compilation_cache()
    warnings.showwarning = _one_line_warning
    try:
        with _umask(getattr(args, "private", False)):
            return {"generate": _generate, "render": _render, "rescore": rescore.run,
                    "play": _play, "export": _export, "experiment": _experiment,
                    "serve": _serve}[args.command](args)
    except DdjaxError as err:
        print(f"ddjax {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a filesystem fault that no check foresaw: still one line
        where = f"{err.filename}: " if err.filename else ""
        print(f"ddjax {args.command}: error: {where}{os_reason(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ddjax: interrupted; files already written are complete", file=sys.stderr)
        return 130


def entry() -> int:
    """The ``ddjax`` command: ``main`` with one JAX CPU device per core."""
    use_all_cores()
    return main()


if __name__ == "__main__":
    sys.exit(entry())
