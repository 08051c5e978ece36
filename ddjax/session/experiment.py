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

import contextlib
import dataclasses
import json
import pathlib
from typing import Callable

import jax
import numpy as np

from ddjax.core.loops import Loop as LoopArrays
from ddjax.core.pipeline import Pipeline
from ddjax.errors import DdjaxError
from ddjax.io.files import atomic_write_bytes
from ddjax.io.kit import Kit
from ddjax.learning.training import TrainConfig
from ddjax.sampling.sampler import SamplerConfig
from ddjax.session.plots import plot_like_rate
from ddjax.session.session import (
    CRITIC_NAME,
    INITIAL_CRITIC_NAME,
    Session,
    SessionConfig,
    SessionLoop,
)
from ddjax.session.terminal import Bar, counted


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


def _draw(session: Session, critic: dict, key, sampler: SamplerConfig, n: int):
    """``n`` loops from chains targeting ``critic``, each with that critic's score, and
    the share of chains that reached the sampler's threshold."""
    state, info = session.sample_pool(key, n, sampler, critic)
    audio = session.engine.listen(state.loop)
    grids, samples = np.asarray(state.loop.grid), np.asarray(state.loop.samples)
    velocities, scores = np.asarray(state.loop.velocity), np.asarray(state.score)
    render = session.pipeline.render
    loops = [SessionLoop.of(-1, LoopArrays(grids[i], samples[i], velocities[i]), audio[i],
                            kit_names=session.kit.names, score=float(scores[i]),
                            critic_version=-1, render=render)
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
                   snapshots: dict[str, dict] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> tuple[list, dict]:
    """Phase II's pool: ``n_eval`` loops from the session's initial critic, ``n_eval``
    from its critic after every rating so far (waits for learning), and ``n_eval`` from
    each of ``snapshots`` (group name -> critic), all drawn alike, then shuffled.

    Returns ``[(group, loop)]`` with group ``"init"``, ``"final"`` or a snapshot's name, in
    the order to rate them, and the share of each group's chains that reached the
    threshold (``reached_GROUP``). ``progress(done, total)`` hears the groups drawn so
    far: (0, total) once learning is done, then after each group.
    """
    critics = {"init": session.initial_critic, "final": session.critic(), **(snapshots or {})}
    key = jax.random.fold_in(jax.random.key(config.seed), 7)
    pool, reached = [], {}
    if progress is not None:
        progress(0, len(critics))
    for index, (group, critic) in enumerate(critics.items()):
        loops, reached[f"reached_{group}"] = _phase_two_group(
            session, critic, jax.random.fold_in(key, index), config)
        pool += [(group, loop) for loop in loops]
        if progress is not None:
            progress(index + 1, len(critics))
    order = np.random.default_rng(config.seed).permutation(len(pool))
    return [pool[i] for i in order], reached


def thetas(blind: list[dict], final: str = "final") -> dict:
    """theta_init, theta_final and delta from phase II's ``{"group", "liked"}`` records;
    ``final`` names the group that plays the final critic (a snapshot's, say)."""
    theta = {g: float(np.mean([b["liked"] for b in blind if b["group"] == g]))
             for g in ("init", final)}
    return {"theta_init": theta["init"], "theta_final": theta[final],
            "delta": theta[final] - theta["init"]}


def run_experiment(kit: Kit, rater: Callable[[SessionLoop], bool | None],
                   config: ExperimentConfig = ExperimentConfig(), *,
                   out: pathlib.Path | None = None, train: TrainConfig = TrainConfig(),
                   session_config: SessionConfig | None = None, label: str = "",
                   progress: bool | None = None, pipeline: Pipeline = Pipeline()) -> dict:
    """Runs both phases and returns the result (also written to ``out``/result.json).

    ``progress``: bars for phase I and phase II on stderr (None: where it is a terminal).
    """
    session_config = session_config or SessionConfig(seed=config.seed)
    session_dir = None if out is None else out / "session"
    history, snapshots = [], {}
    name = f" {label}" if label else ""
    with contextlib.ExitStack() as bars:
        phase_one = bars.enter_context(
            Bar(config.n_ratings, f"phase I{name}", "rating", progress))
        # Opening compiles the sampler and the learner: the note says which step it is on.
        with Session(kit, session_dir, pipeline=pipeline, train=train, config=session_config,
                     progress=lambda step: phase_one.note(f"{step}…")) as session:
            while len(history) < config.n_ratings:
                loop = session.next_loop()
                phase_one.note("")
                liked = rater(loop)
                if liked is None:
                    continue
                session.rate(loop, bool(liked))
                history.append({"rating": len(history) + 1, "liked": bool(liked),
                                "score": loop.score, "critic_version": loop.critic_version,
                                "samples": list(loop.sample_paths)})
                phase_one.update(1)
                if len(history) in config.snapshots:
                    snapshots[f"after_{len(history)}"] = session.critic()
            phase_one.close()
            groups = 2 + len(snapshots)
            phase_two = bars.enter_context(
                Bar(groups * config.n_eval, f"phase II{name}", "rating", progress))
            phase_two.note("learning the last ratings…")

            def drawing(done: int, total: int) -> None:
                if done < total:
                    phase_two.note(f"drawing group {done + 1} of {total}…")

            pool, reached = draw_phase_two(session, config, snapshots, progress=drawing)
            if config.calibration_loops:
                phase_two.note(
                    f"drawing {counted(config.calibration_loops, 'calibration loop')}…")
                random_loops, _ = _draw(session, session.critic(),
                                        jax.random.fold_in(jax.random.key(config.seed), 8),
                                        SamplerConfig("mh", 0), config.calibration_loops)
            phase_two.note("")
        blind = []
        for group, loop in pool:
            liked = rater(loop)
            blind.append({"group": group, "liked": bool(liked), "score": loop.score})
            phase_two.update(1)
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


def summarize(results: list[dict]) -> dict:
    """The paper's table over runs."""
    deltas = np.array([r["delta"] for r in results])
    return {"runs": len(results),
            "theta_init_mean": float(np.mean([r["theta_init"] for r in results])),
            "theta_final_mean": float(np.mean([r["theta_final"] for r in results])),
            "delta_mean": float(deltas.mean()),
            "share_delta_positive": float(np.mean(deltas > 0)),
            "share_delta_ge_0_2": float(np.mean(deltas >= 0.2))}


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
