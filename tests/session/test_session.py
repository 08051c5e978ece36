"""Sessions: the callback API, durability, resume, and the kill test."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
import zipfile

import jax
import numpy as np
import pytest
import soundfile as sf
from conftest import BUNDLED_KIT

from ddjax.core.loops import LoopConfig
from ddjax.core.pipeline import Pipeline
from ddjax.errors import DdjaxError
from ddjax.learning.training import TrainConfig
from ddjax.session.session import Session, SessionConfig, SessionWarning

FAST = dict(train=TrainConfig(steps_per_rating=2, batch_size=4),
            config=SessionConfig(n_chains=2, n_iters=2, seed=3))
LEARNERS = {"head": FAST,  # the default: the pretrained Bayesian head
            "cnn": dict(FAST, config=SessionConfig(n_chains=2, n_iters=2, seed=3,
                                                    pretrained="none"))}


def leaves(critic):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(critic)]


def likes_kicks(loop):
    """A deterministic rater: likes loops with a kick sample, skips every 5th loop."""
    if loop.id % 5 == 4:
        return None
    return any(p.startswith("kick/") for p in loop.sample_paths)


@pytest.fixture(scope="module", params=sorted(LEARNERS))
def settings(request):
    return LEARNERS[request.param]


@pytest.fixture(scope="module")
def rated(bundled_kit, tmp_path_factory, settings):
    directory = tmp_path_factory.mktemp("session")
    with Session(bundled_kit, directory, **settings) as session:
        rated = session.run(likes_kicks, 6)
        critic = session.critic()
    return directory, rated, critic


def test_run_drives_the_session_through_a_callback(rated, bundled_kit):
    directory, rated, _ = rated
    assert len(rated) == 6
    ids = [loop.id for loop, _ in rated]
    assert ids == sorted(ids) and len(set(ids)) == 6 and 4 not in ids  # loop 4 was skipped
    for loop, liked in rated:
        assert liked == any(p.startswith("kick/") for p in loop.sample_paths)
        assert loop.audio.dtype == np.float32 and loop.audio.shape == (4 * 88200 + 44100,)
        assert loop.grid.shape == (4, 16) and loop.grid.dtype == bool
        assert all((BUNDLED_KIT / p).is_file() for p in loop.sample_paths)
        assert 0.0 <= loop.score <= 1.0


def test_each_loop_comes_from_a_critic_trained_on_all_but_the_last_rating(rated):
    _, rated, _ = rated
    for k, (loop, _) in enumerate(rated):  # loop k is shown after rating k (0-based)
        assert loop.critic_version >= k - 1


def test_everything_is_on_disk(rated):
    directory, rated, _ = rated
    entries = [json.loads(line) for line in
               (directory / "ratings.jsonl").read_text().splitlines()]
    assert [e["skip"] for e in entries if "skip" in e] == [4]  # the skipped loop is logged
    ratings = [e for e in entries if "liked" in e]
    assert len(ratings) == 6 and len(entries) == 7
    for entry, (loop, liked) in zip(ratings, rated):
        assert entry["id"] == loop.id and entry["liked"] == liked
        assert entry["loop"]["grid"] == loop.grid.astype(int).tolist()
        assert entry["loop"]["samples"] == list(loop.sample_paths)
        assert entry["critic_version"] == loop.critic_version and "time" in entry
        audio, sr = sf.read(str(directory / "wav" / f"loop_{loop.id:05d}.wav"), dtype="float32")
        np.testing.assert_array_equal(audio, loop.audio)
    for name in ("checkpoint.msgpack", "latest.critic", "initial.critic", "session.json"):
        assert (directory / name).is_file()


def test_resume_has_the_same_history_and_critic(rated, bundled_kit, settings):
    directory, rated, critic = rated
    with Session(bundled_kit, directory, **settings) as again:
        assert [r.loop_id for r in again.history] == [loop.id for loop, _ in rated]
        assert [r.liked for r in again.history] == [liked for _, liked in rated]
        resumed = again.critic()
        for a, b in zip(leaves(critic), leaves(resumed), strict=True):
            np.testing.assert_array_equal(a, b)
        assert again.next_loop().id > max(loop.id for loop, _ in rated)


def test_undo_takes_the_last_rating_back_on_disk_and_in_the_critic(rated, bundled_kit,
                                                                   tmp_path, settings):
    """Undo right after a rating gives back the critic of the 6 ratings before it, exactly;
    the log keeps the rating and adds an undo; a resume agrees; an undo after a resume (no
    model kept) equals a session that never had that rating; and a crash between the undo's
    log line and its checkpoint resumes from the log, with a warning."""
    directory, rated, critic = rated
    copy = tmp_path / "undo"
    subprocess.run(["cp", "-r", str(directory), str(copy)], check=True)
    log = copy / "ratings.jsonl"
    n_lines = len(log.read_text().splitlines())
    with Session(bundled_kit, copy, **settings) as session:
        loop = session.next_loop()
        session.rate(loop, True)
        session.wait()
        back = session.undo()
        assert back.id == loop.id and back.sample_paths == loop.sample_paths
        np.testing.assert_array_equal(back.grid, loop.grid)
        np.testing.assert_allclose(back.audio, loop.audio, atol=1e-6)
        for a, b in zip(leaves(critic), leaves(session.critic()), strict=True):
            np.testing.assert_array_equal(a, b)
        assert session.n_ratings == 6
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(entries) == n_lines + 2 and entries[-1]["undo"] == loop.id
    assert entries[-2]["id"] == loop.id and entries[-2]["liked"] is True  # nothing deleted
    with Session(bundled_kit, copy, **settings) as again:
        assert [r.loop_id for r in again.history] == [lp.id for lp, _ in rated]
        for a, b in zip(leaves(critic), leaves(again.critic()), strict=True):
            np.testing.assert_array_equal(a, b)
        assert again.next_loop().id > loop.id  # the undone loop's id is not handed out again
        again.undo()  # no model kept across the resume: learns the 5 left again
        five = again.critic()
    # The reference: the first 5 ratings alone, learned from the log with no checkpoint.
    fresh = tmp_path / "five"
    fresh.mkdir()
    shutil.copy(directory / "session.json", fresh / "session.json")
    lines = (directory / "ratings.jsonl").read_text().splitlines()
    kept = [line for line in lines if "liked" in json.loads(line)][:5]
    (fresh / "ratings.jsonl").write_text("\n".join(kept) + "\n")
    with Session(bundled_kit, fresh, **settings) as reference:
        want = reference.critic()
    for a, b in zip(leaves(want), leaves(five), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # A crash after the undo's line, before its checkpoint: the checkpoint learned it.
    crashed = tmp_path / "crashed"
    subprocess.run(["cp", "-r", str(directory), str(crashed)], check=True)
    with open(crashed / "ratings.jsonl", "a") as f:
        f.write(json.dumps({"undo": rated[-1][0].id}) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Session(bundled_kit, crashed, **settings) as again:
            assert again.n_ratings == 5
            for a, b in zip(leaves(want), leaves(again.critic()), strict=True):
                np.testing.assert_allclose(a, b, atol=1e-5)
    assert any("taken back" in str(w.message) for w in caught)


def test_checkpoint_behind_the_log_catches_up(rated, bundled_kit, tmp_path, settings):
    directory, rated, critic = rated
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(directory), str(copy)], check=True)
    os.remove(copy / "checkpoint.msgpack")  # as if killed before the first checkpoint
    with Session(bundled_kit, copy, **settings) as again:
        assert again.belief.n_trained == 6
        caught_up = again.critic()
    for a, b in zip(leaves(caught_up), leaves(critic), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_torn_last_line_is_reported_and_skipped(rated, bundled_kit, tmp_path, settings):
    directory, _, _ = rated
    copy = tmp_path / "torn"
    subprocess.run(["cp", "-r", str(directory), str(copy)], check=True)
    with open(copy / "ratings.jsonl", "ab") as f:
        f.write(b'{"id": 99, "loop": {"grid": [[1, 0')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Session(bundled_kit, copy, **settings) as again:
            assert again.n_ratings == 6
            loop = again.next_loop()
            again.rate(loop, True)
    assert any(issubclass(w.category, SessionWarning) and "torn" in str(w.message)
               for w in caught)
    lines = (copy / "ratings.jsonl").read_text().splitlines()
    assert len(lines) == 8 and all(json.loads(line) for line in lines)  # 7 and a skip


def test_a_failed_resume_changes_no_file_and_says_what_to_do(rated, bundled_kit, tmp_path,
                                                            settings):
    directory, _, _ = rated
    copy = tmp_path / "ahead"
    subprocess.run(["cp", "-r", str(directory), str(copy)], check=True)
    lines = (copy / "ratings.jsonl").read_bytes().splitlines(keepends=True)
    # Three whole ratings and a torn fourth: the checkpoint (6 ratings) is ahead of the log.
    (copy / "ratings.jsonl").write_bytes(b"".join(lines[:3]) + b'{"id": 3, "loop": {"gr')
    before = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    with pytest.raises(DdjaxError) as err, pytest.warns(SessionWarning, match="torn"):
        Session(bundled_kit, copy, **settings)
    message = str(err.value)
    assert "move checkpoint.msgpack away to retrain from the log (3 ratings)" in message
    assert "\n" not in message
    after = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert after == before  # the torn line is still there: nothing was rewritten


def test_a_session_from_another_kit_lists_what_is_missing(rated, tmp_path, settings):
    directory, rated, _ = rated
    other = tmp_path / "other_kit"
    other.mkdir()
    for i in range(4):
        sf.write(other / f"s{i}.wav", np.linspace(0.5, 0.0, 300), 44100)
    with pytest.raises(DdjaxError) as err:
        Session.open(directory, other, **settings)
    used = {p for loop, _ in rated for p in loop.sample_paths}
    assert "missing from the kit" in str(err.value)
    assert all(p in str(err.value) for p in used)


WORKER = r"""
import sys
from ddjax.io.kit import load_kit
from ddjax.session.session import Session, SessionConfig
from ddjax.learning.training import TrainConfig
session = Session.open(sys.argv[1], sys.argv[2], train=TrainConfig(steps_per_rating=2,
    batch_size=4), config=SessionConfig(n_chains=2, n_iters=2, seed=3))
print("ready", session.n_ratings, flush=True)
while True:
    loop = session.next_loop()
    session.rate(loop, loop.id % 3 == 0)
    print("ack", loop.id, flush=True)
"""


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_rating(tmp_path):
    directory = tmp_path / "killed"
    acked, rng = [], np.random.default_rng(0)
    for attempt in range(2):
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(directory),
                                 str(BUNDLED_KIT)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().startswith("ready")
            for _ in range(int(rng.integers(2, 5))):
                line = proc.stdout.readline()
                assert line.startswith("ack"), line
                acked.append(int(line.split()[1]))
            time.sleep(float(rng.uniform(0.0, 0.5)))  # kill at a random point
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        # Ratings printed after our last read were acknowledged too: read what is left.
        acked += [int(l.split()[1]) for l in proc.stdout.read().splitlines()
                  if l.startswith("ack")]
        proc.stdout.close()
    logged = [json.loads(l)["id"] for l in (directory / "ratings.jsonl").read_text()
              .splitlines() if l.strip().endswith("}")]
    assert set(acked) <= set(logged)
    # Both workers are dead (waited for): resume here, not in a third process.
    with Session.open(directory) as resumed:
        assert resumed.n_ratings >= len(set(acked))


def test_a_sessions_critic_drives_generate_and_rescore(rated, tmp_path):
    from ddjax.cli.main import main
    from ddjax.core.critic import prob_like
    from ddjax.core.features import mfcc
    from ddjax.core.loops import Loop
    from ddjax.core.pipeline import Pipeline
    from ddjax.core.render import critic_view, render_tables
    from ddjax.io.critics import load_critic
    from ddjax.io.files import read_loop_json
    from ddjax.io.kit import load_kit
    directory, _, _ = rated
    critic = directory / "latest.critic"
    assert main(["generate", "--critic", str(critic), "--n", "2", "--chains", "2",
                 "--iters", "2", "--out", str(tmp_path / "loops")]) == 0
    assert main(["rescore", "--critics", str(critic), "--loops", str(tmp_path / "loops"),
                 "--out", str(tmp_path / "scores.csv")]) == 0
    rows = (tmp_path / "scores.csv").read_text().splitlines()[1:]
    variables, config = load_critic(critic)
    pipeline = Pipeline(critic=config)
    kit = load_kit(BUNDLED_KIT, 88200)
    for row in rows:
        record = read_loop_json(row.split(",")[1])
        loop = Loop(np.array(record["grid"], bool)[None],
                    np.array([kit.index(s) for s in record["samples"]], np.int32)[None],
                    np.array(record["velocity"], np.int32)[None])
        audio = critic_view(render_tables(kit.audio, pipeline.render), loop, pipeline.render)
        want = float(prob_like(variables, mfcc(audio), config)[0])
        assert abs(float(row.split(",")[2]) - want) < 1e-5


def test_the_same_seed_gives_the_same_session(bundled_kit):
    def one_run():
        with Session(bundled_kit, None, config=SessionConfig(n_iters=5, seed=11)) as session:
            rated = session.run(lambda loop: bool(loop.grid[:, ::4].sum() > 6), 5)
            return rated, session.critic()

    (first, critic_a), (second, critic_b) = one_run(), one_run()
    for (a, liked_a), (b, liked_b) in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.grid, b.grid)
        np.testing.assert_array_equal(a.samples, b.samples)
        np.testing.assert_array_equal(a.audio, b.audio)
        assert a.score == b.score and liked_a == liked_b
    for x, y in zip(leaves(critic_a), leaves(critic_b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_more_like_this_starts_the_next_chain_from_a_rated_loop(bundled_kit):
    """With no MH iterations, the variation is its chain's start: 2 to --distance cells
    from the rated loop, with its samples."""
    config = SessionConfig(n_iters=0, seed=3, distance=5)
    with Session(bundled_kit, None, config=config) as session:
        first = session.next_loop()
        session.rate(first, liked=True)
        session.more_like(first.id)
        again = session.next_loop()
        assert 2 <= int(np.sum(again.grid != first.grid)) <= 5
        np.testing.assert_array_equal(again.samples, first.samples)
        assert again.id != first.id
        with pytest.raises(DdjaxError, match="no rated loop 999"):
            session.more_like(999)


@pytest.mark.parametrize("ahead", [1, 2])
def test_loops_prepared_ahead_come_from_the_critic_of_their_time(bundled_kit, ahead):
    """With ``ahead`` loops prepared, the n-th loop shown (0-based, no skips) was queued
    when n - ahead ratings were in, so its critic had learned max(0, n - ahead) of them;
    the same seed gives the same loops; "more like this" comes before the prepared ones."""
    def one_run():
        with Session(bundled_kit, None, config=SessionConfig(n_iters=3, seed=5),
                     ahead=ahead, **{k: v for k, v in FAST.items() if k != "config"}) as s:
            shown = []
            for n in range(5):
                loop = s.next_loop()
                shown.append(loop)
                assert loop.critic_version == max(0, n - ahead), (n, loop.critic_version)
                s.rate(loop, liked=n % 2 == 0)
            s.more_like(shown[0].id)
            variation = s.next_loop()
            assert variation.id not in [loop.id for loop in shown]
            return shown + [variation]

    first, second = one_run(), one_run()
    for a, b in zip(first, second, strict=True):
        assert a.id == b.id and a.score == b.score
        np.testing.assert_array_equal(a.grid, b.grid)
        np.testing.assert_array_equal(a.samples, b.samples)


def test_an_edited_loop_is_rated_as_edited_and_resumed_so(bundled_kit, tmp_path):
    """``edited`` keeps the loop's id and samples, takes the new grid and velocities, and
    renders and scores it again; the log keeps the loop as proposed beside it, and a
    resumed session has the edited loop in its history. A grid the loop space does not
    allow (--four-on-floor) is refused."""
    with Session(bundled_kit, tmp_path / "s", **FAST) as session:
        loop = session.next_loop()
        grid = ~loop.grid
        velocity = np.full(grid.shape, 90, np.int32)
        edited = session.edited(loop, grid, velocity)
        assert (edited.id, tuple(edited.samples)) == (loop.id, tuple(loop.samples))
        np.testing.assert_array_equal(edited.grid, grid)
        np.testing.assert_array_equal(edited.velocity, velocity)
        assert edited.proposed is loop and not np.allclose(edited.audio, loop.audio)
        session.rate(edited, liked=True)
    entry = json.loads((tmp_path / "s" / "ratings.jsonl").read_text().splitlines()[0])
    assert entry["loop"]["grid"] == grid.astype(int).tolist()
    assert entry["proposed"]["grid"] == loop.grid.astype(int).tolist()
    with Session(bundled_kit, tmp_path / "s", **FAST) as session:
        np.testing.assert_array_equal(session.history[0].grid, grid)
        np.testing.assert_array_equal(session.history[0].velocity, velocity)
    floor = Pipeline(loops=LoopConfig(four_on_the_floor=True))
    with Session(bundled_kit, None, pipeline=floor, **FAST) as session:
        loop = session.next_loop()
        with pytest.raises(DdjaxError, match="four-on-floor"):
            session.edited(loop, ~loop.grid, None)


@pytest.mark.slow
def test_a_humanized_session_renders_records_and_holds_to_its_jitter(bundled_kit, tmp_path,
                                                                     capsys):
    """A session with humanize plays each loop with each cell moved by its documented
    jitter (the NumPy loop, 1e-5); session.json records it, the log's loops carry it, and
    resuming with other jitter is one line (exit 2 from the command line), no file
    changed; the liked zip's JSON carries it, so ``ddjax render`` plays the loop again."""
    from test_render import numpy_gain, numpy_render, spec_jitter

    from ddjax.cli import main as cli
    from ddjax.core.groove import Humanize
    pipeline = Pipeline.sized(humanize=Humanize(10.0, 20, 3))
    directory = tmp_path / "s"
    with Session(bundled_kit, directory, pipeline=pipeline,
                 config=SessionConfig(n_iters=2, seed=1)) as session:
        loop = session.next_loop()
        session.rate(loop, liked=True)
    timing, jitter = spec_jitter(3, 4, 16, 10.0, 20)
    moved = np.clip(loop.velocity + jitter, 1, 127)
    audio = np.asarray(bundled_kit.audio)
    ref, bar = numpy_render(audio, loop.grid, loop.samples, 120.0, bars=4, velocity=moved,
                            timing_ms=timing)
    gain = numpy_gain(audio, loop.grid, loop.samples, 120.0, velocity=moved, timing_ms=timing)
    np.testing.assert_allclose(loop.audio, gain * ref[:4 * bar + 44100], atol=1e-5, rtol=0)
    meta = json.loads((directory / "session.json").read_text())
    assert meta["humanize"] == {"ms": 10, "velocity": 20, "seed": 3}
    entry = json.loads((directory / "ratings.jsonl").read_text().splitlines()[0])
    assert entry["loop"]["humanize"] == meta["humanize"]
    before = {p.name: p.read_bytes() for p in directory.rglob("*") if p.is_file()}
    with pytest.raises(DdjaxError, match="made with humanize 10,20,3, not none"):
        Session(bundled_kit, directory, config=SessionConfig(n_iters=2, seed=1))
    capsys.readouterr()
    assert cli.main(["play", "--session", str(directory), "--humanize", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "made with humanize 10,20,3, not 5,0,0" in err and "\n" not in err
    assert {p.name: p.read_bytes() for p in directory.rglob("*") if p.is_file()} == before
    assert cli.main(["export", "--session", str(directory), "--liked", "--out",
                     str(tmp_path / "liked.zip")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (  # the one loop rated, liked
        f"wrote 1 liked loop to {tmp_path / 'liked.zip'}")
    with zipfile.ZipFile(tmp_path / "liked.zip") as archive:
        (tmp_path / "loop.json").write_bytes(archive.read(f"loop_{loop.id:05d}.json"))
    assert json.loads((tmp_path / "loop.json").read_text())["humanize"] == meta["humanize"]
    assert cli.main(["render", str(tmp_path / "loop.json"), "--format", "float32",
                     "--loudness", "off", "--out", str(tmp_path / "again.wav")]) == 0
    again, _ = sf.read(tmp_path / "again.wav", dtype="float32")
    np.testing.assert_allclose(again, loop.audio, atol=2.0 ** -23)


@pytest.mark.slow
def test_a_session_at_another_tempo_and_size_records_both_and_holds_to_them(bundled_kit,
                                                                          tmp_path):
    from ddjax.core.pipeline import Pipeline
    from ddjax.io.kit import load_kit
    pipeline = Pipeline.sized(100.0, 6)
    kit = load_kit(BUNDLED_KIT, pipeline.render.bar_samples, min_samples=6)
    directory = tmp_path / "s"
    with Session(kit, directory, pipeline=pipeline,
                 config=SessionConfig(n_iters=2, seed=1)) as session:
        loop = session.next_loop()
        assert loop.grid.shape == (6, 16) and len(set(loop.samples.tolist())) == 6
        assert loop.audio.shape == (4 * 105840 + 44100,)  # a 100 BPM bar is 2.4 s
        session.rate(loop, liked=True)
    meta = json.loads((directory / "session.json").read_text())
    assert (meta["bpm"], meta["tracks"]) == (100.0, 6)
    assert (meta["swing"], meta["swing_scale"]) == (50.0, "mpc")  # the scale it is on
    before = {p.name: p.read_bytes() for p in directory.rglob("*") if p.is_file()}
    with pytest.raises(DdjaxError, match="made at 100 BPM with 6 tracks and 50% swing, not 120"
                                         " BPM with 4 and 50%"):
        Session(kit, directory, config=SessionConfig(n_iters=2, seed=1))
    assert {p.name: p.read_bytes() for p in directory.rglob("*") if p.is_file()} == before
    with Session(kit, directory, pipeline=pipeline, config=SessionConfig(n_iters=2)) as again:
        assert again.n_ratings == 1
