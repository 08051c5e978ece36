"""How well the critic learns a taste it was not written for: the paper's protocol over
the zoo of simulated users (``ddjax.raters.zoo``), at 20, 40 and 80 ratings.

Each run is one ``ddjax experiment`` (``experiment.run_experiment``) with one zoo user,
one kit and one seed: phase I with ``--ratings`` ratings, then phase II draws ``--eval``
loops from the initial critic, ``--eval`` from the final one and ``--eval`` from each
snapshot (after 20 and 40 ratings), all with the same sampler call, and the user rates
them blind. Then ``--calibration`` random loops measure the final critic's calibration.

Runs append one JSON line each to ``--results`` and a rerun skips the runs already
there, so the full matrix can span several sittings. The summary prints, per kit and
half of the zoo and at each point: mean delta theta with a 95% interval (t over runs),
the share of runs improved and the share with delta >= 0.2, and the calibration.

    python bench/learning.py --quick --json        # 12 held-out users x 2 seeds, paper's kit
                                                    # (45 minutes on 2 cores)
    python bench/learning.py --half both --kits paper,bundled --seeds 3 --json

**The split.** ``zoo.TUNE`` is for tuning defaults; ``zoo.HELD_OUT`` is the result and is
never tuned on.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import pathlib
import sys
import time

import numpy as np
from tqdm import tqdm

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_model, device_name  # noqa: E402

from ddjax.core.loops import LOOP_PRIORS, LoopConfig  # noqa: E402
from ddjax.io.kind_model import MODEL_FILE  # noqa: E402
from ddjax.io.kinds import AUDIO_CONFIDENCE  # noqa: E402
from ddjax.io.kit import bundled_kit, load_kit  # noqa: E402
from ddjax.learning.taste_prior import default_prior_path  # noqa: E402
from ddjax.learning.training import AUGMENTATIONS, PRECISIONS, TrainConfig  # noqa: E402
from ddjax.raters import zoo  # noqa: E402
from ddjax.raters.users import calibration_audio  # noqa: E402
from ddjax.session.experiment import ExperimentConfig, run_experiment  # noqa: E402
from ddjax.session.session import SessionConfig  # noqa: E402

KITS = {"paper": ROOT.parent / "shared" / "kits" / "deepdrummer", "bundled": None}
POINTS = (20, 40, 80)
QUICK_USERS = 12
T_975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26,
         10: 2.23, 15: 2.13, 20: 2.09, 30: 2.04, 60: 2.00}


def spread_over_kinds(names: tuple[str, ...], n: int) -> list[str]:
    """``n`` names taken round-robin over the zoo's kinds, so every kind is covered."""
    by_kind: dict[str, list[str]] = {}
    for name in names:
        by_kind.setdefault(zoo.ZOO[name].kind, []).append(name)
    picked, depth = [], 0
    while len(picked) < min(n, len(names)):
        for kind in zoo.KINDS:
            if depth < len(by_kind.get(kind, ())) and len(picked) < n:
                picked.append(by_kind[kind][depth])
        depth += 1
    return picked


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval."""
    x = np.asarray(values, np.float64)
    if x.size < 2:
        return float(x.mean()), float("nan")
    dof = x.size - 1
    t = T_975[max(k for k in T_975 if k <= dof)]
    return float(x.mean()), float(t * x.std(ddof=1) / np.sqrt(x.size))


def settings_key(session: SessionConfig, experiment: ExperimentConfig,
                 train: TrainConfig = TrainConfig()) -> str:
    """Names the settings a run used, so runs of other settings are not mixed up (the
    training settings count for the CNN only: the head does not read them; the loop
    space's settings and the render's features count since the accents, and the kind
    model that places the samples no file name places since it replaced the hand rules)."""
    prior = session.pretrained or default_prior_path()
    prior_hash = "none" if session.pretrained == "none" else hashlib.sha256(
        pathlib.Path(prior).read_bytes()).hexdigest()[:12]
    parts = [dataclasses.asdict(session) | {"seed": None, "pretrained": prior_hash},
             dataclasses.asdict(experiment) | {"seed": None},
             {"loops": dataclasses.asdict(LoopConfig(prior=session.loop_prior,
                                                     distance=session.distance)),
              "loop_prior_file": hashlib.sha256(
                  (ROOT / "ddjax" / "pretrained" / "loop-prior.json").read_bytes()
              ).hexdigest()[:12] if session.loop_prior == "learned" else None,
              "render": "velocity, swing, -1 dBFS gain",
              # The head's inputs standardized over one fixed set of random loops (the
              # kit's, shared by every session), not the session's seed.
              "standardize": "fixed key",
              "kinds": [AUDIO_CONFIDENCE, hashlib.sha256(
                  (ROOT / "ddjax" / "pretrained" / MODEL_FILE).read_bytes()).hexdigest()[:12]]}]
    if session.pretrained == "none":
        parts.append(dataclasses.asdict(train))
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def kit_and_calibration(kit_name: str):
    """The kit and the zoo's calibration on it, once per process."""
    kit = load_kit(KITS[kit_name] or bundled_kit(), 88200)
    return kit, zoo.calibrate(calibration_audio(kit))


def run_one(kit_name: str, user: str, seed: int, session: SessionConfig,
            experiment: ExperimentConfig, train: TrainConfig, key: str) -> dict:
    kit, calibration = kit_and_calibration(kit_name)
    rater = zoo.make_zoo_user(user, kit, seed=seed, calibration=calibration)
    start = time.perf_counter()
    result = run_experiment(kit, rater, dataclasses.replace(experiment, seed=seed),
                            session_config=dataclasses.replace(session, seed=seed),
                            label=user, progress=False, train=train)
    seconds = time.perf_counter() - start
    thetas = {str(n): result["snapshots"][str(n)]["theta_final"] for n in experiment.snapshots}
    thetas[str(experiment.n_ratings)] = result["theta_final"]
    return {"settings": key, "kit": kit_name, "user": user, "kind": zoo.ZOO[user].kind,
            "half": "tune" if user in zoo.TUNE else "held-out", "seed": seed,
            "theta_init": result["theta_init"], "theta": thetas,
            "delta": {n: t - result["theta_init"] for n, t in thetas.items()},
            "phase1_like_rate": result["phase1_like_rate"],
            "reached": {k[len("reached_"):]: v for k, v in result.items()
                        if k.startswith("reached_")},
            "calibration": result.get("calibration"), "seconds": round(seconds, 1),
            "session": dataclasses.asdict(session) | {"seed": seed},
            **({"train": dataclasses.asdict(train)} if session.pretrained == "none" else {})}


def summarize(runs: list[dict], points: tuple[int, ...]) -> list[dict]:
    rows = []
    groups = sorted({(r["kit"], r["half"]) for r in runs})
    for kit, half in groups:
        these = [r for r in runs if r["kit"] == kit and r["half"] == half]
        for n in points:
            deltas = [r["delta"][str(n)] for r in these if str(n) in r["delta"]]
            if not deltas:
                continue
            mean, half_width = interval(deltas)
            rows.append({"kit": kit, "half": half, "ratings": n, "runs": len(deltas),
                         "users": len({r["user"] for r in these}),
                         "theta_init": round(float(np.mean([r["theta_init"] for r in these])), 3),
                         "theta": round(float(np.mean([r["theta"][str(n)] for r in these])), 3),
                         "delta_mean": round(mean, 3), "delta_ci95": round(half_width, 3),
                         "share_improved": round(float(np.mean(np.array(deltas) > 0)), 3),
                         "share_delta_ge_0_2": round(float(np.mean(np.array(deltas) >= 0.2)), 3)})
        calibrated = [r["calibration"] for r in these if r.get("calibration")]
        if calibrated:
            rows.append({"kit": kit, "half": half, "calibration_of": "final critic",
                         "runs": len(calibrated),
                         "ece": round(float(np.mean([c["ece"] for c in calibrated])), 3),
                         "mean_score": round(float(np.mean([c["mean_score"]
                                                            for c in calibrated])), 3),
                         "like_rate": round(float(np.mean([c["like_rate"]
                                                           for c in calibrated])), 3)})
    return rows


def markdown(rows: list[dict]) -> str:
    """The summary as a Markdown table: delta theta with its interval, per point."""
    lines = ["| kit | half | ratings | runs | theta_init | theta | mean delta (95% CI) |"
             " improved | delta >= 0.2 |", "|" + " --- |" * 9]
    for r in rows:
        if "ratings" in r:
            lines.append(f"| {r['kit']} | {r['half']} | {r['ratings']} | {r['runs']} |"
                         f" {r['theta_init']:.2f} | {r['theta']:.2f} |"
                         f" {r['delta_mean']:+.2f} (±{r['delta_ci95']:.2f}) |"
                         f" {100 * r['share_improved']:.0f}% |"
                         f" {100 * r['share_delta_ge_0_2']:.0f}% |")
    lines += ["", "| kit | half | runs | ECE | mean score | like rate |", "|" + " --- |" * 6]
    lines += [f"| {r['kit']} | {r['half']} | {r['runs']} | {r['ece']:.2f} |"
              f" {r['mean_score']:.2f} | {r['like_rate']:.2f} |"
              for r in rows if "ece" in r]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_USERS} held-out users (every kind) x 2 seeds on the"
                             " paper's kit")
    parser.add_argument("--half", choices=("tune", "held-out", "both"), default="held-out")
    parser.add_argument("--kits", default="paper", help="comma-separated: paper, bundled")
    parser.add_argument("--users", help="comma-separated zoo users (default: the half's)")
    parser.add_argument("--max-users", type=int, help="at most this many users per half")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N per user (default 3)")
    parser.add_argument("--ratings", type=int, default=80)
    parser.add_argument("--eval", type=int, default=30)
    parser.add_argument("--calibration", type=int, default=64,
                        help="random loops for the final critic's calibration (default 64)")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--iters", type=int, help="MH iterations per phase I loop")
    parser.add_argument("--query", choices=("thompson", "mean"))
    parser.add_argument("--loop-prior", choices=LOOP_PRIORS,
                        help="the sampler's loop prior (default: the session's, learned)")
    parser.add_argument("--pretrained", help="none, or a prior file (default: the packaged)")
    parser.add_argument("--augmentation", choices=AUGMENTATIONS,
                        help="with --pretrained none: where the CNN's training augments"
                             " (default: TrainConfig's)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="with --pretrained none: the CNN's training matmuls"
                             " (default: TrainConfig's)")
    parser.add_argument("--results", type=pathlib.Path, default=ROOT / "bench" / "learning.jsonl",
                        help="JSON lines of runs, appended and resumed from")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON lines")
    parser.add_argument("--markdown", action="store_true", help="print the summary as a table")
    parser.add_argument("--no-run", action="store_true",
                        help="only summarize the runs already in --results")
    parser.add_argument("--jobs", type=int, default=2,
                        help="runs at once, each in its own process (default 2: one run"
                             " keeps about 1.3 of a CPU's cores busy)")
    args = parser.parse_args(argv)

    if args.quick:
        args.kits, args.half, args.seeds = "paper", "held-out", 2
        args.max_users = args.max_users or QUICK_USERS
    halves = {"tune": zoo.TUNE, "held-out": zoo.HELD_OUT}
    names = [n for h in (("tune", "held-out") if args.half == "both" else (args.half,))
             for n in (spread_over_kinds(halves[h], args.max_users) if args.max_users
                       else halves[h])]
    if args.users:
        names = args.users.split(",")
    session = SessionConfig()
    overrides = {"temperature": args.temperature, "n_iters": args.iters,
                 "query": args.query, "pretrained": args.pretrained,
                 "loop_prior": args.loop_prior}
    session = dataclasses.replace(session, **{k: v for k, v in overrides.items()
                                              if v is not None})
    points = tuple(n for n in POINTS if n < args.ratings) + (args.ratings,)
    experiment = ExperimentConfig(args.ratings, args.eval, snapshots=points[:-1],
                                  calibration_loops=args.calibration)
    train = TrainConfig(**{k: v for k, v in (("augmentation", args.augmentation),
                                             ("precision", args.precision)) if v is not None})
    key = settings_key(session, experiment, train)

    done = []
    if args.results.exists():
        done = [json.loads(line) for line in args.results.read_text().splitlines()
                if line.strip()]
    done = [r for r in done if r["settings"] == key]
    have = {(r["kit"], r["user"], r["seed"]) for r in done}
    todo = [(k, u, s) for k in args.kits.split(",") for u in names
            for s in range(1, args.seeds + 1) if (k, u, s) not in have]
    present = {k for k in args.kits.split(",")
               if KITS[k] is None or pathlib.Path(KITS[k]).is_dir()}
    for kit_name in sorted(set(args.kits.split(",")) - present):
        print(f"skipping the {kit_name} kit: {KITS[kit_name]} is not there", file=sys.stderr)
    todo = [] if args.no_run else [t for t in todo if t[0] in present]
    wanted = {(k, u, s) for k in present for u in names for s in range(1, args.seeds + 1)}
    jobs = [(kit_name, user, seed, session, experiment, train, key)
            for kit_name, user, seed in todo]
    with tqdm(total=len(jobs), desc="runs", unit="run") as bar, \
            concurrent.futures.ProcessPoolExecutor(
                max(1, args.jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_one, *job) for job in jobs]
        for future in concurrent.futures.as_completed(futures):
            row = future.result()
            with open(args.results, "a") as f:  # each run is kept as soon as it ends
                f.write(json.dumps(row) + "\n")
            done.append(row)
            bar.update(1)
    runs = [r for r in done if (r["kit"], r["user"], r["seed"]) in wanted]
    about = {"settings": key, "session": dataclasses.asdict(session) | {"seed": None},
             "experiment": dataclasses.asdict(experiment) | {"seed": None},
             "cpu": cpu_model(), "device": device_name(),
             "median_run_seconds": float(np.median([r["seconds"] for r in runs])) if runs
             else None}
    rows = summarize(runs, points)
    if args.markdown:
        print(markdown(rows))
    elif args.json:
        for row in rows:
            print(json.dumps(row))
        print(json.dumps(about))
    else:
        for row in rows:
            print(row)
        print(about)


if __name__ == "__main__":
    main()
