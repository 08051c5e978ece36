"""The paper's two-phase protocol (section 4), with any rater.

Phase I: ``n_ratings`` loops, each drawn by MH from the latest critic, rated, and
learned. Phase II: ``n_eval`` loops from the initial (untrained) critic and ``n_eval``
from the final one, shuffled together and rated blind, without learning. theta_init and
theta_final are the like rates of the two groups; delta is their difference.

Phase II is fair: both groups come from one sampler call with the settings that serve
loops to people (the session's temperature, proposal and iterations per step), under
the paper's stopping rule: every chain runs at least ``eval_min_iters`` iterations,
then until f >= ``eval_threshold``, at most ``eval_max_iters``. Only the critic
differs. ``snapshots`` adds a group per earlier rating count (say 20 and 40), drawn
from the critic as it was then, so one run measures theta at several points.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import io
import json
import pathlib
from typing import Callable

import jax
import numpy as np
from tqdm import tqdm

from ddjax.sampling.engine import Pipeline
from ddjax.errors import DdjaxError
from ddjax.io.files import atomic_write_bytes
from ddjax.io.kit import Kit
from ddjax.sampling.sampler import SamplerConfig
from ddjax.session.session import INITIAL_CRITIC_NAME, CRITIC_NAME, Loop, Session, SessionConfig
from ddjax.learning.training import TrainConfig
from ddjax.raters import users as users_lib


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """The protocol's sizes.

    Attributes:
      n_ratings: phase I ratings.
      n_eval: phase II loops per critic.
      eval_threshold: phase II chains run until the critic's score reaches this,
      eval_min_iters: ... after at least this many iterations (capped at the maximum),
      eval_max_iters: ... and at most this many.
      seed: seeds the session and the phase II draws.
      snapshots: earlier rating counts whose critic also gets a phase II group.
      calibration_loops: random loops from the prior that the final critic scores and the
        rater rates after phase II (without learning), to measure calibration; 0: none.
    """

    n_ratings: int = 80
    n_eval: int = 30
    eval_threshold: float = 0.95
    eval_max_iters: int = 500
    seed: int = 0
    eval_min_iters: int = 100
    snapshots: tuple[int, ...] = ()
    calibration_loops: int = 0

    def __post_init__(self):
        if self.n_ratings < 1 or self.n_eval < 1:
            raise DdjaxError("an experiment needs at least one rating and one phase II loop")
        if self.eval_min_iters < 0 or self.eval_max_iters < 0:
            raise DdjaxError("phase II's iteration counts must be >= 0")
        if any(not 0 < n < self.n_ratings for n in self.snapshots):
            raise DdjaxError(f"snapshots are rating counts between 1 and {self.n_ratings - 1}")

    def phase_two_sampler(self, serving: SamplerConfig) -> SamplerConfig:
        """The sampler that serves loops to people, under phase II's stopping rule."""
        return dataclasses.replace(serving, mode="until", n_iters=self.eval_max_iters,
                                   min_iters=min(self.eval_min_iters, self.eval_max_iters),
                                   threshold=self.eval_threshold)


def load_rater(spec: str, kit: Kit, seed: int = 0, pipeline: Pipeline = Pipeline()
               ) -> Callable[[Loop], bool | None]:
    """A rater from ``FILE.py:FUNCTION``, ``MODULE:FUNCTION`` or a built-in user's name (a
    built-in user is calibrated on loops of ``pipeline``'s size and tempo)."""
    if spec in users_lib.BUILT_IN:
        return users_lib.make_user(spec, kit, seed=seed, render=pipeline.render,
                                   n_tracks=pipeline.loops.n_tracks)
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise DdjaxError(f"--rater {spec!r}: give FILE.py:FUNCTION, MODULE:FUNCTION or one of"
                         f" {', '.join(users_lib.BUILT_IN)}")
    try:
        if where.endswith(".py") or pathlib.Path(where).is_file():
            spec_obj = importlib.util.spec_from_file_location(pathlib.Path(where).stem, where)
            if spec_obj is None or spec_obj.loader is None:
                raise ImportError(f"cannot load {where}")
            module = importlib.util.module_from_spec(spec_obj)
            spec_obj.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except (ImportError, OSError, SyntaxError) as err:
        raise DdjaxError(f"--rater {spec!r}: cannot import {where}: {err}") from None
    rater = getattr(module, name, None)
    if not callable(rater):
        raise DdjaxError(f"--rater {spec!r}: {where} has no callable {name!r}")
    return rater


def _draw(session: Session, critic: dict, key, sampler: SamplerConfig, n: int):
    """``n`` loops from chains targeting ``critic``, each with that critic's score, and
    the share of chains that reached the sampler's threshold."""
    state, info = session.engine.sample(key, n, sampler, critic=critic)
    audio = session.engine.listen(state.loop)
    grids, samples = np.asarray(state.loop.grid), np.asarray(state.loop.samples)
    velocities, scores = np.asarray(state.loop.velocity), np.asarray(state.score)
    render = session.pipeline.render
    loops = [Loop(-1, audio[i], grids[i], samples[i],
                  tuple(session.kit.names[j] for j in samples[i]), float(scores[i]), -1,
                  render.bpm, render.swing, velocities[i], humanize=render.humanize)
             for i in range(n)]
    return loops, float(np.mean(np.asarray(info.reached)))


def _phase_two_group(session: Session, critic: dict, key, config: ExperimentConfig):
    return _draw(session, critic, key, config.phase_two_sampler(session.config.sampler),
                 config.n_eval)


def calibration(scores: np.ndarray, liked: np.ndarray, n_bins: int = 10) -> dict:
    """Expected calibration error (Guo et al., 2017) over ``n_bins`` equal-width bins of
    the score, with the mean score and the like rate it should match."""
    scores, liked = np.asarray(scores, np.float64), np.asarray(liked, np.float64)
    bins = np.minimum((scores * n_bins).astype(int), n_bins - 1)
    ece = sum(abs(liked[bins == b].mean() - scores[bins == b].mean()) * np.mean(bins == b)
              for b in range(n_bins) if np.any(bins == b))
    return {"ece": float(ece), "mean_score": float(scores.mean()),
            "like_rate": float(liked.mean()), "n": int(scores.size)}


def draw_phase_two(session: Session, config: ExperimentConfig,
                   snapshots: dict[str, dict] | None = None) -> tuple[list, dict]:
    """Phase II's pool: ``n_eval`` loops from the session's initial critic, ``n_eval``
    from its critic after every rating so far (waits for learning), and ``n_eval`` from
    each of ``snapshots`` (group name -> critic), all drawn alike, then shuffled.

    Returns ``[(group, loop)]`` with group ``"init"``, ``"final"`` or a snapshot's name, in
    the order to rate them, and the share of each group's chains that reached the
    threshold (``reached_GROUP``).
    """
    critics = {"init": session.initial_critic, "final": session.critic(), **(snapshots or {})}
    key = jax.random.fold_in(jax.random.key(config.seed), 7)
    pool, reached = [], {}
    for index, (group, critic) in enumerate(critics.items()):
        loops, reached[f"reached_{group}"] = _phase_two_group(
            session, critic, jax.random.fold_in(key, index), config)
        pool += [(group, loop) for loop in loops]
    order = np.random.default_rng(config.seed).permutation(len(pool))
    return [pool[i] for i in order], reached


def thetas(blind: list[dict], final: str = "final") -> dict:
    """theta_init, theta_final and delta from phase II's ``{"group", "liked"}`` records;
    ``final`` names the group that plays the final critic (a snapshot's, say)."""
    theta = {g: float(np.mean([b["liked"] for b in blind if b["group"] == g]))
             for g in ("init", final)}
    return {"theta_init": theta["init"], "theta_final": theta[final],
            "delta": theta[final] - theta["init"]}


def run_experiment(kit: Kit, rater: Callable[[Loop], bool | None],
                   config: ExperimentConfig = ExperimentConfig(), *,
                   out: pathlib.Path | None = None, train: TrainConfig = TrainConfig(),
                   session_config: SessionConfig | None = None, label: str = "",
                   progress: bool | None = None, pipeline: Pipeline = Pipeline()) -> dict:
    """Runs both phases and returns the result (also written to ``out``/result.json)."""
    session_config = session_config or SessionConfig(seed=config.seed)
    session_dir = None if out is None else out / "session"
    history, snapshots = [], {}
    with Session(kit, session_dir, pipeline=pipeline, train=train,
                 config=session_config) as session:
        bar = tqdm(total=config.n_ratings, desc=f"phase I {label}".strip(), unit="rating",
                   disable=None if progress is None else not progress)
        while len(history) < config.n_ratings:
            loop = session.next_loop()
            liked = rater(loop)
            if liked is None:
                continue
            session.rate(loop, bool(liked))
            history.append({"rating": len(history) + 1, "liked": bool(liked),
                            "score": loop.score, "critic_version": loop.critic_version,
                            "samples": list(loop.sample_paths)})
            bar.update(1)
            if len(history) in config.snapshots:
                snapshots[f"after_{len(history)}"] = session.critic()
        bar.close()
        pool, reached = draw_phase_two(session, config, snapshots)
        if config.calibration_loops:
            random_loops, _ = _draw(session, session.critic(),
                                    jax.random.fold_in(jax.random.key(config.seed), 8),
                                    SamplerConfig("mh", 0), config.calibration_loops)
    blind = []
    for group, loop in pool:
        liked = rater(loop)
        blind.append({"group": group, "liked": bool(liked), "score": loop.score})
    calibrated = {}
    if config.calibration_loops:
        calibrated = {"calibration": calibration(
            [loop.score for loop in random_loops], [bool(rater(loop)) for loop in random_loops])}
    result = {
        "rater": label, "seed": config.seed, "n_ratings": config.n_ratings,
        "n_eval": config.n_eval, **thetas(blind), **reached,
        "snapshots": {str(n): thetas(blind, f"after_{n}") for n in config.snapshots},
        **calibrated,
        "phase1_like_rate": float(np.mean([h["liked"] for h in history])),
        "history": history, "phase2": blind,
        "critics": {"initial": "critic_initial.critic", "final": "critic_final.critic"},
        "train": dataclasses.asdict(train), "session": dataclasses.asdict(session_config),
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name, copy in ((INITIAL_CRITIC_NAME, "critic_initial.critic"),
                           (CRITIC_NAME, "critic_final.critic")):
            atomic_write_bytes(out / copy, (session_dir / name).read_bytes())
        atomic_write_bytes(out / "result.json", (json.dumps(result, indent=1) + "\n").encode())
        plot_like_rate(result, out / "like_rate.png")
    return result


def plot_like_rate(result: dict, path: pathlib.Path, window: int = 10) -> None:
    """Phase I like rate over time (running mean), with the phase II thetas."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    liked = np.array([h["liked"] for h in result["history"]], float)
    running = np.convolve(liked, np.ones(window), "valid") / window if liked.size >= window \
        else np.cumsum(liked) / np.arange(1, liked.size + 1)
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(np.arange(len(running)) + min(window, liked.size), running,
            label=f"phase I, running mean of {window}")
    ax.axhline(result["theta_init"], color="grey", ls="--", label="phase II, initial critic")
    ax.axhline(result["theta_final"], color="green", ls="--", label="phase II, final critic")
    ax.set_xlabel("rating")
    ax.set_ylabel("like rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{result['rater']} (seed {result['seed']}): delta {result['delta']:+.2f}")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    _save_png(fig, path)
    plt.close(fig)


def _save_png(fig, path: pathlib.Path) -> None:
    """The figure as a PNG, written atomically (no timestamp: same plot, same bytes)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())


def summarize(results: list[dict]) -> dict:
    """The paper's table over runs."""
    deltas = np.array([r["delta"] for r in results])
    return {"runs": len(results),
            "theta_init_mean": float(np.mean([r["theta_init"] for r in results])),
            "theta_final_mean": float(np.mean([r["theta_final"] for r in results])),
            "delta_mean": float(deltas.mean()),
            "share_delta_positive": float(np.mean(deltas > 0)),
            "share_delta_ge_0_2": float(np.mean(deltas >= 0.2))}


def plot_densities(results: list[dict], path: pathlib.Path) -> None:
    """Histograms of theta_init, theta_final and delta, as in the paper's Figures 4-5."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
    bins = np.linspace(0, 1, 11)
    left.hist([r["theta_init"] for r in results], bins=bins, alpha=0.6, label="theta_init")
    left.hist([r["theta_final"] for r in results], bins=bins, alpha=0.6, label="theta_final")
    left.set_xlabel("like rate in phase II")
    left.legend(fontsize=8)
    right.hist([r["delta"] for r in results], bins=np.linspace(-1, 1, 21), color="green")
    right.axvline(0, color="grey", ls="--")
    right.set_xlabel("delta theta")
    fig.tight_layout()
    _save_png(fig, path)
    plt.close(fig)


def print_table(summary: dict, file=None) -> None:
    print(f"runs {summary['runs']}: theta_init {summary['theta_init_mean']:.2f}, theta_final"
          f" {summary['theta_final_mean']:.2f}, mean delta {summary['delta_mean']:+.2f},"
          f" delta > 0 in {100 * summary['share_delta_positive']:.0f}%,"
          f" delta >= 0.2 in {100 * summary['share_delta_ge_0_2']:.0f}%", file=file)


RESULT_KEYS = ("theta_init", "theta_final", "delta")


def load_results(folders: list[pathlib.Path]) -> list[dict]:
    """Every ``result.json`` under ``folders``: ``ddjax experiment`` outputs and the
    participants of ``ddjax serve --study``, sorted by path."""
    paths = []
    for folder in folders:
        if not folder.is_dir():
            raise DdjaxError(f"{folder} is not a folder")
        paths.extend(sorted(folder.rglob("result.json")))
    if not paths:
        raise DdjaxError("no result.json under " + ", ".join(map(str, folders))
                         + "; only finished runs and participants have one")
    results = []
    for path in paths:
        try:
            result = json.loads(path.read_text())
            if not all(isinstance(result.get(k), (int, float)) for k in RESULT_KEYS):
                raise ValueError("theta_init, theta_final or delta is missing")
        except (OSError, ValueError) as err:
            raise DdjaxError(f"{path}: not a result file ({err})") from None
        results.append({**result, "path": str(path)})
    return results
