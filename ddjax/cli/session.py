"""The command line's session commands: ``play``, ``export --session --liked``,
``experiment`` and ``serve``, each from its parsed arguments (``ddjax.cli.main`` dispatches).
Like the rest of the shell, they turn arguments into settings, check what a user can get
wrong before any compile, and leave the work to the stages.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

from ddjax.cli.parser import BUNDLED_KIT
from ddjax.core.groove import STRAIGHT, Humanize
from ddjax.core.pipeline import Pipeline
from ddjax.core.render import RenderConfig
from ddjax.errors import DdjaxError
from ddjax.io.files import atomic_write_bytes, check_file_target, check_folder_target
from ddjax.io.kit import load_kit


def load_command_kit(folder: pathlib.Path, render: RenderConfig, n_tracks: int):
    if folder == BUNDLED_KIT and not folder.is_dir():
        raise DdjaxError(f"the bundled kit is not installed here ({folder}); pass --kit DIR")
    return load_kit(folder, render.bar_samples, sr=render.sr, min_samples=n_tracks)


def session_pipeline(args, directory: pathlib.Path | None) -> Pipeline:
    """The pipeline at ``--bpm``, ``--tracks`` and ``--swing``; where a flag is absent, what
    the session in ``directory`` records, else the defaults (a flag that contradicts a
    session's record is the session's error). Its loop prior and critic are the
    session's to set, once, from ``--loop-prior`` and ``--pretrained`` or what it recorded
    (``Session.__init__``, ``ddjax.learning.registry.learner_pipeline``)."""
    from ddjax.session.journal import read_meta, recorded_humanize, recorded_sizes
    meta = None if directory is None else read_meta(directory)
    bpm, tracks, swing = (None, None, STRAIGHT) if meta is None else recorded_sizes(meta)
    humanize = Humanize() if meta is None else recorded_humanize(meta)
    return Pipeline.sized(bpm if args.bpm is None else args.bpm,
                          tracks if args.tracks is None else args.tracks,
                          swing if args.swing is None else args.swing,
                          humanize if args.humanize is None else args.humanize)


def check_session_folder(directory: pathlib.Path, private: bool) -> None:
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


def play_command(args) -> int:
    from ddjax.cli.play import play
    from ddjax.session.session import Session, SessionConfig
    from ddjax.session.terminal import counted
    directory = args.session or pathlib.Path(
        time.strftime("ddjax-session-%Y%m%d-%H%M%S"))
    check_session_folder(directory, args.private)
    resuming = (directory / "session.json").exists()
    kit_dir = None if resuming and args.kit == BUNDLED_KIT else args.kit
    session = Session.open(directory, kit_dir, pipeline=session_pipeline(args, directory),
                           config=SessionConfig(seed=args.seed, pretrained=args.pretrained,
                                                loop_prior=args.loop_prior,
                                             style=args.style, distance=args.distance,
                                                loudness=args.loudness))
    if resuming:
        print(f"resumed {directory}: {counted(session.n_ratings, 'rating')}")
    play(session, directory)
    return 0


def export_liked(args) -> int:
    """``export --session DIR --liked --out FILE.zip``."""
    from ddjax.session.bundle import liked_zip
    from ddjax.session.journal import read_log, read_meta, recorded_humanize, recorded_sizes
    if not args.liked or args.out is None or args.out.suffix != ".zip":
        raise DdjaxError("export --session takes --liked and --out FILE.zip")
    if args.loops or args.midi or args.wav or args.loop_wav or args.stems:
        raise DdjaxError("export --session --liked writes the zip only; drop LOOP.json,"
                         " --midi, --wav, --loop-wav and --stems")
    check_file_target(args.out, "--out")
    meta = read_meta(args.session) if args.session.is_dir() else None
    if meta is None:
        raise DdjaxError(f"{args.session} is not a ddjax session (no session.json)")
    bpm, tracks, swing = recorded_sizes(meta)
    render = Pipeline.sized(bpm, tracks, swing, recorded_humanize(meta)).render
    kit = load_command_kit(args.kit or pathlib.Path(meta["kit"]), render, tracks)
    ratings = read_log(args.session, kit).ratings
    data = liked_zip(ratings, kit, render, list(kit.notes),
                     title=f"ddjax session {args.session.resolve().name}",
                     loudness=args.loudness)
    atomic_write_bytes(args.out, data)
    n_liked = sum(r.liked for r in ratings)
    print(f"wrote {n_liked} liked loop{'' if n_liked == 1 else 's'} to {args.out}")
    return 0


def experiment_command(args) -> int:
    from ddjax.learning.registry import choose_learner
    from ddjax.learning.training import TrainConfig
    from ddjax.raters import users
    from ddjax.raters.load import load_rater
    from ddjax.session import experiment
    from ddjax.session.session import SessionConfig
    if args.pretrained:
        choose_learner(args.pretrained)  # a bad prior file is reported before anything runs
    check_folder_target(args.out, "--out")
    if args.private and args.out.is_dir():
        args.out.chmod(0o700)
    if args.from_sessions:
        from ddjax.web.researcher import unfinished
        left_out = unfinished(args.from_sessions)  # no result.json: said, never silent
        for run in left_out:
            print(f"ddjax experiment: left out {run['id']}: {run['why']}", file=sys.stderr)
        results = experiment.load_results(args.from_sessions)
        for result in results:
            print(f"{result.get('rater', '?')}: theta_init {result['theta_init']:.2f},"
                  f" theta_final {result['theta_final']:.2f}, delta {result['delta']:+.2f}"
                  f" ({result['path']})")
        _write_summary(experiment, results, args.out, left_out)
        return 0
    pipeline = session_pipeline(args, None)
    kit = load_command_kit(args.kit, pipeline.render, pipeline.loops.n_tracks)
    train = TrainConfig() if args.steps_per_rating is None else TrainConfig(
        steps_per_rating=args.steps_per_rating)
    specs = list(users.BUILT_IN) if args.rater == "all" else [args.rater]
    results = []
    n_runs = len(specs) * args.seeds
    for spec in specs:
        for seed in range(args.seed, args.seed + args.seeds):
            rater = load_rater(spec, kit, seed=seed, pipeline=pipeline)
            label = spec if len(specs) > 1 or ":" not in spec else spec.rpartition(":")[2]
            if n_runs > 1 and sys.stderr.isatty():  # above this run's phase bars
                print(f"run {len(results) + 1} of {n_runs}: {label} seed {seed}",
                      file=sys.stderr)
            out = args.out if len(specs) == 1 and args.seeds == 1 else (
                args.out / label.replace("/", "_") / f"seed_{seed}")
            result = experiment.run_experiment(
                kit, rater, experiment.ExperimentConfig(args.ratings, args.eval, seed=seed),
                out=out, train=train, label=label, pipeline=pipeline,
                session_config=SessionConfig(seed=seed, pretrained=args.pretrained,
                                             loop_prior=args.loop_prior,
                                             style=args.style, distance=args.distance))
            print(f"{label} seed {seed}: theta_init {result['theta_init']:.2f}, theta_final"
                  f" {result['theta_final']:.2f}, delta {result['delta']:+.2f} -> {out}")
            results.append(result)
    if len(results) > 1:
        _write_summary(experiment, results, args.out)
    return 0


def _write_summary(experiment, results: list[dict], out: pathlib.Path,
                   left_out: list[dict] | None = None) -> None:
    """The paper's table on stdout; summary.json and densities.png in ``out``;
    ``left_out``: the unfinished runs the table leaves out (``{"id", "why", "path"}``)."""
    summary = experiment.summarize(results)
    experiment.print_table(summary)
    atomic_write_bytes(out / "summary.json", (json.dumps(
        {**summary, "runs_detail": [{k: r.get(k) for k in (
            "rater", "seed", "theta_init", "theta_final", "delta")} for r in results],
         **({} if left_out is None else {"left_out": left_out})},
        indent=1) + "\n").encode())
    from ddjax.session.plots import plot_densities
    plot_densities(results, out / "densities.png")


def serve_command(args) -> int:
    from ddjax.learning.registry import choose_learner
    from ddjax.session.experiment import ExperimentConfig
    from ddjax.session.session import SessionConfig
    from ddjax.web.server import ServeConfig, serve
    check_session_folder(args.session, args.private)
    kit_dir = args.kit
    if kit_dir is None and (args.study or not (args.session / "session.json").exists()):
        kit_dir = BUNDLED_KIT
    if kit_dir == BUNDLED_KIT and not kit_dir.is_dir():
        raise DdjaxError(f"the bundled kit is not installed here ({kit_dir}); pass --kit DIR")
    if args.pretrained:
        choose_learner(args.pretrained)  # before listening: the session opens in the background
    config = ServeConfig(kit_dir, args.session, study=args.study,
                         experiment=ExperimentConfig(args.study_ratings, args.study_eval,
                                                     seed=args.seed),
                         session=SessionConfig(seed=args.seed, pretrained=args.pretrained,
                                               loop_prior=args.loop_prior,
                                               style=args.style, distance=args.distance,
                                               loudness=args.loudness),
                         pipeline=session_pipeline(args, None if args.study else args.session),
                         resume_by_id=args.resume_by_id,
                         max_participants=args.max_participants, consent=args.consent,
                         archive_audio=args.archive_audio, warm_up=args.warm_up)
    serve(config, args.host, args.port, allow_remote=args.allow_remote)
    return 0
