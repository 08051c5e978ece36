"""The paper's protocol end to end, simulated users, and the experiment command."""

import json

import jax
import numpy as np
import pytest

from ddjax.cli.main import main
from ddjax.io.critics import load_critic
from ddjax.learning.training import TrainConfig
from ddjax.raters.load import load_rater
from ddjax.raters.users import BUILT_IN, TASTES, SimulatedUser, calibration_audio, make_user
from ddjax.sampling.engine import Engine
from ddjax.sampling.sampler import SamplerConfig
from ddjax.session.experiment import ExperimentConfig, calibration, run_experiment, summarize
from ddjax.session.session import SessionConfig

TINY = dict(train=TrainConfig(steps_per_rating=2, batch_size=4),
            session_config=SessionConfig(n_chains=2, n_iters=2))


@pytest.fixture(scope="module")
def default_calibration(bundled_kit):
    """What make_user calibrates its users on by default, rendered once for the module."""
    return calibration_audio(bundled_kit)


class Audio:
    def __init__(self, audio):
        self.audio = audio


@pytest.mark.slow
def test_built_in_users_like_about_a_third_of_random_loops(bundled_kit):
    calibration = calibration_audio(bundled_kit, n=128)
    fresh = calibration_audio(bundled_kit, n=128, seed=999)  # loops the users never saw
    for taste in TASTES:
        user = make_user(taste, bundled_kit, audio=calibration)
        share = np.mean([user(Audio(a)) for a in fresh])
        assert 0.2 <= share <= 0.5, (taste, share)
    noisy = make_user("bright-noisy", bundled_kit, audio=calibration, seed=1)
    clean = make_user("bright", bundled_kit, audio=calibration)
    flipped = np.mean([noisy(Audio(a)) != clean(Audio(a)) for a in fresh])
    assert 0.05 < flipped < 0.3
    assert len(BUILT_IN) == 2 * len(TASTES)


def test_tastes_measure_what_they_say():
    sr, n = 44100, 3 * 88200
    t = np.arange(n) / sr
    low = np.sin(2 * np.pi * 100 * t)
    high = np.sin(2 * np.pi * 6000 * t)
    user = lambda taste: SimulatedUser(taste, 0.0)
    assert user("bright").value(high) > user("bright").value(low)
    assert user("punchy").value(low) > user("punchy").value(high)
    clicks = np.zeros(n)
    on_beats = clicks.copy()
    for step in range(16):
        start = 88200 + int(step * 5512.5)
        clicks[start:start + 200] = 1.0
        if step % 4 == 0:
            on_beats[start:start + 200] = 1.0
    assert user("dense").value(clicks) > user("dense").value(on_beats)
    assert user("pulse").value(on_beats) > user("pulse").value(clicks)


@pytest.mark.slow
def test_small_experiment_end_to_end(bundled_kit, default_calibration, tmp_path):
    rater = make_user("bright", bundled_kit, audio=default_calibration)
    result = run_experiment(bundled_kit, rater, ExperimentConfig(n_ratings=3, n_eval=2,
                                                                 eval_max_iters=3),
                            out=tmp_path, label="bright", progress=False, **TINY)
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk["theta_init"] == result["theta_init"]
    assert len(on_disk["history"]) == 3 and len(on_disk["phase2"]) == 4
    groups = [b["group"] for b in on_disk["phase2"]]
    assert sorted(groups) == ["final", "final", "init", "init"]
    for group in ("init", "final"):
        liked = [b["liked"] for b in on_disk["phase2"] if b["group"] == group]
        assert on_disk[f"theta_{group}"] == pytest.approx(np.mean(liked))
    assert on_disk["delta"] == pytest.approx(on_disk["theta_final"] - on_disk["theta_init"])
    assert [h["liked"] for h in on_disk["history"]] == [
        json.loads(l)["liked"] for l in (tmp_path / "session" / "ratings.jsonl").read_text()
        .splitlines()]
    for name in ("critic_initial.critic", "critic_final.critic"):
        load_critic(tmp_path / name)
    assert (tmp_path / "like_rate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_phase_two_draws_every_group_with_the_sampler_that_serves_people(bundled_kit,
                                                                        default_calibration,
                                                                        monkeypatch, capsys):
    calls = []
    sample = Engine.sample

    def spy(self, key, n_chains, config, critic=None, start=None):
        calls.append((config, critic))
        return sample(self, key, n_chains, config, critic, start)

    monkeypatch.setattr(Engine, "sample", spy)
    serving = SessionConfig(n_iters=3, temperature=0.3, seed=1)
    config = ExperimentConfig(n_ratings=4, n_eval=2, eval_min_iters=2, eval_max_iters=5,
                              snapshots=(2,), calibration_loops=3)
    rater = make_user("dense", bundled_kit, audio=default_calibration)
    result = run_experiment(bundled_kit, rater, config, session_config=serving,
                            progress=True)
    # Its bars: the start's steps, then each of the 3 groups and the calibration drawn.
    frames = capsys.readouterr().err.replace("\n", "\r").split("\r")
    assert any("phase I" in f and "0/4" in f and "compiling the learner…" in f for f in frames)
    assert any(f.startswith("phase I:") and "4/4" in f for f in frames)
    for note in ("drawing group 1 of 3…", "drawing group 3 of 3…",
                 "drawing 3 calibration loops…"):
        assert any("phase II" in f and note in f for f in frames), note
    assert any(f.startswith("phase II:") and "6/6" in f for f in frames)
    phase_two = [(c, critic) for c, critic in calls if c.mode == "until"]
    want = SamplerConfig("until", 5, 0.3, threshold=0.95, min_iters=2)
    assert [c for c, _ in phase_two] == [want] * 3  # init, final, after 2: one sampler
    assert all(c == serving.sampler for c, _ in calls if c.mode == "mh" and c.n_iters)
    critics = [jax.tree_util.tree_leaves(critic) for _, critic in phase_two]
    assert not all(np.array_equal(a, b) for a, b in zip(critics[0], critics[1]))
    assert sorted(b["group"] for b in result["phase2"]) == sorted(
        ["init"] * 2 + ["final"] * 2 + ["after_2"] * 2)
    snapshot = result["snapshots"]["2"]
    liked = [b["liked"] for b in result["phase2"] if b["group"] == "after_2"]
    assert snapshot["theta_final"] == pytest.approx(np.mean(liked))
    assert result["calibration"]["n"] == 3


def test_calibration_error_is_the_binned_gap():
    scores = np.array([0.05, 0.05, 0.95, 0.95, 0.55, 0.55])
    liked = np.array([0, 1, 1, 1, 0, 0], bool)
    # bins 0, 9, 5: |0.5 - 0.05| * 2/6 + |1 - 0.95| * 2/6 + |0 - 0.55| * 2/6
    assert calibration(scores, liked)["ece"] == pytest.approx((0.45 + 0.05 + 0.55) / 3)
    assert calibration(scores, liked)["like_rate"] == pytest.approx(0.5)


def test_summary_is_the_papers_table():
    runs = [{"theta_init": 0.3, "theta_final": 0.6, "delta": 0.3},
            {"theta_init": 0.4, "theta_final": 0.3, "delta": -0.1},
            {"theta_init": 0.2, "theta_final": 0.35, "delta": 0.15}]
    table = summarize(runs)
    assert table["theta_init_mean"] == pytest.approx(0.3)
    assert table["theta_final_mean"] == pytest.approx(0.41666, abs=1e-4)
    assert table["share_delta_positive"] == pytest.approx(2 / 3)
    assert table["share_delta_ge_0_2"] == pytest.approx(1 / 3)


def test_raters_load_from_files_and_modules(tmp_path, bundled_kit):
    (tmp_path / "mine.py").write_text("def rate(loop):\n    return loop.score > 0.5\n")
    rater = load_rater(f"{tmp_path / 'mine.py'}:rate", bundled_kit)
    assert rater(type("L", (), {"score": 0.7})) is True
    assert load_rater("json:dumps", bundled_kit) is json.dumps
    from ddjax.errors import DdjaxError
    for bad in ("nope", f"{tmp_path / 'mine.py'}:missing", "no_such_module_x:f"):
        with pytest.raises(DdjaxError):
            load_rater(bad, bundled_kit)


@pytest.mark.slow
def test_experiment_command_with_a_rater_file(tmp_path, capsys):
    (tmp_path / "rater.py").write_text(
        "def likes_busy(loop):\n    return int(loop.grid.sum()) > 32\n")
    code = main(["experiment", "--rater", f"{tmp_path / 'rater.py'}:likes_busy",
                 "--ratings", "2", "--eval", "1", "--steps-per-rating", "1",
                 "--out", str(tmp_path / "out")])
    assert code == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["rater"] == "likes_busy" and len(result["history"]) == 2
    assert "theta_init" in capsys.readouterr().out
