"""The ``ddjax`` command line: the thin, impure shell around the engine.

Errors a user can cause become one line on stderr and exit code 2; loops already written
stay on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import sys
import warnings
from typing import TYPE_CHECKING

import numpy as np

from ddjax import limits
from ddjax.cli import rescore as rescore_cli
from ddjax.cli.parser import BUNDLED_KIT, build_parser, resolve_loop_prior
from ddjax.core.groove import STRAIGHT, Humanize, of_record
from ddjax.core.host_render import RenderConfig, host_listening_render
from ddjax.errors import DdjaxError
from ddjax.io.encode import suffix
from ddjax.io.export import export_loop, loop_bar_path, loop_stems, stem_paths, track_notes
from ddjax.io.files import (
    check_file_target,
    check_folder_target,
    os_reason,
    read_loop_json,
    write_audio,
)
from ddjax.io.kit import load_kit
from ddjax.io.loudness import normalize, normalize_stems

if TYPE_CHECKING:
    from ddjax.core.pipeline import Pipeline

# Modules that import JAX are imported inside the commands that use them: ``ddjax export``
# of MIDI and previews (NumPy on the host) and ``ddjax --help`` never load JAX.


def _check_generate_sizes(args, pipeline: Pipeline) -> None:
    """--chains and --n against memory and disk (see ``ddjax.limits``), before any compile."""
    import jax
    per_chain = limits.CHAIN_STATE_BYTES
    if jax.default_backend() != "cpu":  # all chains are scored at once (ddjax.core.batching)
        per_chain += limits.score_loop_bytes(pipeline)
    limits.check_count("--chains", args.chains, per_chain)
    # A round renders every loop it keeps at once: at most min(--n, --chains).
    limits.check_count("--n" if args.n < args.chains else "--chains", min(args.n, args.chains),
                       limits.listen_loop_bytes(pipeline.render))
    wav = limits.listen_loop_bytes(pipeline.render) // limits.RENDER_COPIES
    limits.check_disk("--n", args.n, wav + 4096, args.out)


def _generate(args) -> int:
    import jax

    from ddjax.cli.session import load_command_kit
    from ddjax.core.critic import init_critic
    from ddjax.core.loops import Loop
    from ddjax.core.pipeline import Pipeline
    from ddjax.io.critics import load_critic, load_ensemble
    from ddjax.sampling.engine import Engine
    from ddjax.sampling.generating import generate_loops
    from ddjax.sampling.sampler import SamplerConfig
    from ddjax.session.terminal import Bar, counted

    if args.min_score is not None and args.climb is not None:
        raise DdjaxError("--min-score and --climb are different modes; pick one")
    if args.vote and not args.critic:
        raise DdjaxError("--vote needs critics to vote; pass --critic FILE_OR_DIR")
    check_folder_target(args.out, "--out")
    origin = None if args.start_from is None else read_loop_json(args.start_from)
    if origin is not None:  # variations keep their loop's tempo and size
        args.bpm = float(origin["bpm"]) if args.bpm is None else args.bpm
        args.tracks = origin["grid"].shape[0] if args.tracks is None else args.tracks
        args.swing = origin["swing"] if args.swing is None else args.swing
        args.humanize = of_record(origin, str(args.start_from)) if args.humanize is None \
            else args.humanize
    pipeline = Pipeline.sized(args.bpm, args.tracks,
                              STRAIGHT if args.swing is None else args.swing,
                              args.humanize or Humanize(),
                              four_on_the_floor=args.four_on_floor, prior=args.loop_prior,
                              distance=args.distance)
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
    kit = load_command_kit(args.kit, pipeline.render, pipeline.loops.n_tracks)
    if not args.critic:
        variables = init_critic(jax.random.key(args.seed), critic_config)
    engine = Engine(kit, variables, pipeline, reduction=reduction, style=args.style,
                    loudness=args.loudness)
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

    def wrote(n: int) -> None:
        bar.note("")
        bar.update(n)

    with Bar(args.n, "generate", "loop") as bar:
        bar.note("compiling…")  # the first round compiles the sampler: tens of seconds
        generated = generate_loops(engine, kit, pipeline.render, config, n=args.n,
                                   chains=args.chains, seed=args.seed, out=args.out,
                                   fmt=args.format, loop_wav=args.loop_wav, midi=args.midi,
                                   stems=args.stems, start=start, progress=wrote)
    written, rounds = generated.written, generated.rounds
    if written < args.n:
        print(f"ddjax: warning: only {written} of {counted(args.n, 'loop')} reached"
              f" --min-score {args.min_score} in {counted(rounds, 'round')} of"
              f" {counted(args.iters, 'iteration')}; raise --iters or lower --min-score",
              file=sys.stderr)
    print(f"wrote {counted(written, 'loop')} to {args.out}")
    return 0


def _loop_render_config(record: dict) -> RenderConfig:
    """A checked loop record's render settings."""
    grid = record["grid"]
    return RenderConfig(bpm=record["bpm"], n_steps=grid.shape[1], swing=record["swing"],
                        humanize=of_record(record))


def _saved_loop(record: dict, kit_dir: pathlib.Path):
    """A checked loop record's render settings, the kit and the loop on it."""
    from ddjax.cli.session import load_command_kit
    from ddjax.core.loops import Loop
    render = _loop_render_config(record)
    grid = record["grid"]
    kit = load_command_kit(kit_dir, render, grid.shape[0])
    ids = np.array([kit.index(name) for name in record["samples"]], np.int32)
    return render, kit, Loop(grid=grid, samples=ids, velocity=record.get("velocity"))


def _render(args) -> int:
    from ddjax.core.render import listening_render, loop_render
    record = read_loop_json(args.loop)
    check_file_target(args.out, "--out")
    render, kit, loop = _saved_loop(record, args.kit)
    if args.loop_wav:
        audio, tempo = loop_render(kit.audio, loop, render), (render.bpm, render.n_steps // 4)
    else:
        audio, tempo = listening_render(kit.audio, loop, render), None
    audio = normalize(np.asarray(audio), kit.sr, args.loudness, looping=args.loop_wav)
    write_audio(args.out, audio, kit.sr, args.format, tempo=tempo)
    print(f"wrote {args.out}")
    return 0


def _host_only_export(args) -> bool:
    """Whether this ``export`` runs on the host alone (MIDI, preview, stems): no JAX."""
    return args.command == "export" and not (args.loop_wav or args.liked
                                             or args.session is not None)


def _export_targets(args, record: dict, stem: pathlib.Path,
                    write_json: bool) -> list[pathlib.Path]:
    """Every file ``export`` writes for one loop, checked writable."""
    both = not (args.midi or args.wav or args.loop_wav)
    targets = ([stem.with_suffix(".json")] if write_json else []) + (
        [stem.with_suffix(suffix(args.format))] if args.wav or both else []) + (
        [loop_bar_path(stem, record["bpm"], args.format)] if args.loop_wav else []) + (
        [stem.with_suffix(".mid")] if args.midi or both else []) + (
        stem_paths(stem, record["samples"], args.format) if args.stems else [])
    for target in targets:
        check_file_target(target, "--out" if args.out else "LOOP.json")
    return targets


def _export_kit(folder: pathlib.Path, render: RenderConfig, n_tracks: int, kits: dict):
    """The kit cut to ``render``'s bar, on the host (NumPy), loaded once per bar length."""
    key = (render.bar_samples, render.sr, n_tracks)
    if key not in kits:
        if folder == BUNDLED_KIT and not folder.is_dir():
            raise DdjaxError(f"the bundled kit is not installed here ({folder});"
                             " pass --kit DIR")
        kits[key] = load_kit(folder, render.bar_samples, sr=render.sr, min_samples=n_tracks,
                             on_device=False)
    return kits[key]


def _export(args) -> int:
    if args.session is not None or args.liked:
        if args.session is None:
            raise DdjaxError("--liked needs --session DIR")
        from ddjax.cli.session import export_liked
        return export_liked(args)
    if not args.loops:
        raise DdjaxError("export needs LOOP.json, or --session DIR --liked --out FILE.zip")
    args.kit = args.kit or BUNDLED_KIT
    several = len(args.loops) > 1
    if several and args.out is not None:  # a folder: each loop's files named after its JSON
        check_folder_target(args.out, "--out")
    # Every loop read, every target checked and every kit sample found before any write.
    jobs, writers = [], {}
    for n, path in enumerate(args.loops):
        record = read_loop_json(path)
        stem = (path.with_suffix("") if args.out is None
                else args.out / path.stem if several else args.out)
        for target in _export_targets(args, record, stem, args.out is not None):
            first = writers.setdefault(os.path.abspath(target), n)
            if first != n:
                raise DdjaxError(f"{args.loops[first]} and {path} would both write {target};"
                                 " give each loop once, or loops whose names differ")
        jobs.append((record, stem))
    kits, loops = {}, []
    for record, stem in jobs:
        render = _loop_render_config(record)
        kit = _export_kit(args.kit, render, record["grid"].shape[0], kits)
        ids = np.array([kit.index(name) for name in record["samples"]], np.int32)
        loops.append((record, stem, render, kit, ids))
    for record, stem, render, kit, ids in loops:
        for path in _export_one(args, record, stem, render, kit, ids):
            print(f"wrote {path}")
    return 0


def _export_one(args, record: dict, stem: pathlib.Path, render: RenderConfig, kit,
                ids: np.ndarray) -> list[pathlib.Path]:
    """One checked loop's files; the preview and stems on the host (NumPy), nothing to
    compile, and MIDI with no render at all."""
    both = not (args.midi or args.wav or args.loop_wav)
    grid = np.asarray(record["grid"], bool)
    velocity = None if record.get("velocity") is None else np.asarray(record["velocity"])
    rows = np.asarray(kit.audio)[ids]
    audio = bar = notes = stems = None
    if args.wav or both:
        audio = normalize(host_listening_render(rows, grid, velocity, render), kit.sr,
                          args.loudness)
    if args.stems:
        stems = normalize_stems(loop_stems(rows, grid, velocity, render), kit.sr,
                                args.loudness)
    if args.loop_wav:
        from ddjax.core.loops import Loop
        from ddjax.core.render import loop_render
        loop = Loop(grid=grid, samples=ids, velocity=record.get("velocity"))
        bar = normalize(np.asarray(loop_render(kit.audio, loop, render)), kit.sr,
                        args.loudness, looping=True)
    if args.midi or both:
        notes = track_notes([kit.notes[i] for i in ids])
    record = {**record, "grid": grid.astype(int).tolist(), **(
        {"velocity": record["velocity"].tolist()} if "velocity" in record else {})}
    return export_loop(stem, record, audio=audio, bar=bar, sr=kit.sr, notes=notes,
                       write_json=args.out is not None, fmt=args.format, stems=stems)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"ddjax: warning: {message}", file=sys.stderr)


def _enable_compilation_cache() -> None:
    """Keeps compiled programs on disk so the next run starts in seconds, not tens."""
    import jax
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


def _start_jax(all_cores: bool) -> None:
    """JAX's settings, before JAX first uses its backend: one CPU device per core
    (``use_all_cores``) and the compilation cache."""
    if all_cores:
        from ddjax.core.hardware import use_all_cores
        use_all_cores()
    import jax
    if jax.config.jax_compilation_cache_dir is None:
        _enable_compilation_cache()


def _command(name: str):
    """The function that runs command ``name``; a session command's module imports JAX,
    so it is imported only when it runs."""
    if name in ("play", "experiment", "serve"):
        from ddjax.cli import session
        return {"play": session.play_command, "experiment": session.experiment_command,
                "serve": session.serve_command}[name]
    return {"generate": _generate, "render": _render, "rescore": rescore_cli.run,
            "export": _export}[name]


def main(argv: list[str] | None = None, *, all_cores: bool = False) -> int:
    """Runs one ``ddjax`` command; ``all_cores``: one JAX CPU device per core. A host-only
    ``export`` (MIDI, previews, stems) never imports JAX."""
    args = build_parser().parse_args(argv)
    if not _host_only_export(args):
        _start_jax(all_cores)
    warnings.showwarning = _one_line_warning
    try:
        resolve_loop_prior(args)
        with _umask(getattr(args, "private", False)):
            return _command(args.command)(args)
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
    return main(all_cores=True)


if __name__ == "__main__":
    sys.exit(entry())
