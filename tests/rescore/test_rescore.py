"""``ddjax rescore``: every row against critics scored one at a time with ``prob_like``;
the same rows on 8 devices, on 2 hosts, and after a run killed midway and resumed."""

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from conftest import REPO

from ddjax.cli.main import main
from ddjax.core.critic import CriticConfig, init_critic, prob_like
from ddjax.core.features import mfcc
from ddjax.core.loops import Loop
from ddjax.core.render import RenderConfig, critic_view, render_tables
from ddjax.io.critics import load_critic, save_critic

N_CRITICS = 3
MISSING = "nope/missing.wav"


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def critic_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("critics")
    for k in range(N_CRITICS):
        save_critic(folder / f"c{k}.critic", init_critic(jax.random.key(20 + k)),
                    CriticConfig())
    return folder


def loop_json(grid, names, bpm=120):
    return json.dumps({"grid": np.asarray(grid, int).tolist(), "samples": names, "bpm": bpm})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, bundled_kit):
    """A folder of 5 loop files (2 with a sample the kit lacks), a JSONL file of 2 loops,
    a short WAV, an unreadable WAV; and what each scored input is, in input order."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    names = bundled_kit.names
    expected = []  # (source, loop or audio bar)
    files = {}
    for i in range(5):
        grid = rng.random((4, 16)) < 0.5
        chosen = [names[j] for j in rng.choice(len(names), 4, replace=False)]
        if i in (1, 3):
            chosen[2] = MISSING
        files[f"loop_{i}.json"] = (grid, chosen)
    lines = []
    for _ in range(2):
        grid = rng.random((4, 16)) < 0.5
        lines.append((grid, [names[j] for j in rng.choice(len(names), 4, replace=False)]))
    (folder / "more.jsonl").write_text(
        "".join(loop_json(g, n) + "\n" for g, n in lines))
    for name, (grid, chosen) in files.items():
        (folder / name).write_text(loop_json(grid, chosen))
    clip = (0.3 * rng.standard_normal(50000)).astype(np.float32)  # shorter than a bar
    sf.write(str(folder / "take.wav"), clip, 44100, subtype="FLOAT")
    (folder / "zz_broken.wav").write_bytes(b"RIFF\x00\x00 this is no wave file")
    (folder / "zz_deep.json").write_text("[" * 100_000 + "]" * 100_000)  # skipped, not fatal
    # Sorted input order: loop_0..loop_4.json, more.jsonl (2 lines), take.wav, zz_broken.
    for i, name in enumerate(sorted(files)):
        grid, chosen = files[name]
        if MISSING not in chosen:
            expected.append((str(folder / name), i, ("loop", grid, chosen)))
    for n, (grid, chosen) in enumerate(lines, start=1):
        expected.append((f"{folder / 'more.jsonl'}:{n}", 4 + n, ("loop", grid, chosen)))
    bar = np.zeros(88200, np.float32)
    bar[:clip.size] = clip
    expected.append((str(folder / "take.wav"), 7, ("audio", bar)))
    return folder, expected


_one_critic = jax.jit(prob_like)


@pytest.fixture(scope="module")
def reference(inputs, critic_dir, bundled_kit):
    """float64[rows, K]: each critic alone on each input's features."""
    _, expected = inputs
    critics = [load_critic(critic_dir / f"c{k}.critic")[0] for k in range(N_CRITICS)]
    tables = render_tables(bundled_kit.audio, RenderConfig())
    probs = []
    for _, _, what in expected:
        if what[0] == "loop":
            loop = Loop(jnp.asarray(what[1]), jnp.asarray(
                [bundled_kit.names.index(s) for s in what[2]], jnp.int32))
            audio = critic_view(tables, loop, RenderConfig())
        else:
            audio = jnp.asarray(what[1])
        features = mfcc(audio)
        probs.append([float(_one_critic(v, features)) for v in critics])
    return np.array(probs)


def rescore_args(critic_dir, folder, out, *extra):
    return ["rescore", "--critics", str(critic_dir), "--loops", str(folder), "--batch", "3",
            "--per-critic", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def one_device_run(inputs, critic_dir, tmp_path_factory):
    folder, _ = inputs
    out = tmp_path_factory.mktemp("one") / "scores.csv"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):  # the CLI prints each warning as one line
        assert main(rescore_args(critic_dir, folder, out, "--top", "2", "--bottom",
                                 "1")) == 0
    return out, [line for line in err.getvalue().splitlines() if "warning" in line]


def test_rows_are_the_critics_scored_one_at_a_time(one_device_run, inputs, reference):
    out, _ = one_device_run
    _, expected = inputs
    header, rows = read_csv(out)
    assert header == ["id", "source", "mean", "vote", "std", "critic:c0", "critic:c1",
                      "critic:c2"]
    assert [(r[1], int(r[0])) for r in rows] == [(src, i) for src, i, _ in expected]
    got = np.array([[float(x) for x in r[2:]] for r in rows])
    np.testing.assert_allclose(got[:, 3:], reference, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got[:, 0], reference.mean(axis=1), atol=1e-5, rtol=0)
    np.testing.assert_allclose(got[:, 1], (reference > 0.5).mean(axis=1), atol=1e-6, rtol=0)
    np.testing.assert_allclose(got[:, 2], reference.std(axis=1), atol=1e-5, rtol=0)


def test_missing_samples_are_listed_once_and_bad_audio_reported(one_device_run):
    _, messages = one_device_run
    assert sum(MISSING in m for m in messages) == 1  # two loops use it: listed once
    assert sum("zz_broken.wav" in m and "not readable" in m for m in messages) == 1
    assert sum("zz_deep.json" in m and "nested too deeply" in m for m in messages) == 1


def test_top_and_bottom_are_the_best_and_worst_inputs(one_device_run, inputs, reference):
    out, _ = one_device_run
    _, expected = inputs
    order = np.argsort(-reference.mean(axis=1), kind="stable")
    for label, picks in (("top", order[:2]), ("bottom", order[::-1][:1])):
        for rank, row in enumerate(picks, start=1):
            stem = out.parent / f"scores_{label}" / f"{label}_{rank:03d}"
            record = json.loads(stem.with_suffix(".json").read_text())
            source, index, what = expected[row]
            assert record["id"] == index and record["source"] == source
            assert record["score"] == pytest.approx(reference[row].mean(), abs=1e-5)
            info = sf.info(str(stem.with_suffix(".wav")))
            if what[0] == "loop":
                assert record["grid"] == np.asarray(what[1], int).tolist()
                assert record["samples"] == what[2]
                assert info.frames == 4 * 88200 + 44100
            else:
                assert info.frames == 88200
    assert not list(out.parent.glob("scores_top/top_003.*"))


def test_eight_devices_give_the_same_rows_in_the_same_order(one_device_run, inputs,
                                                            critic_dir, tmp_path):
    folder, _ = inputs
    out = tmp_path / "eight.csv"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    # 8 devices as 4 loop shards x 2 critic shards: 3 critics are padded to 4.
    done = subprocess.run([sys.executable, "-m", "ddjax.cli.main",
                           *rescore_args(critic_dir, folder, out, "--model-shards", "2")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "on 8 devices" in done.stdout
    header, rows = read_csv(out)
    header_1, rows_1 = read_csv(one_device_run[0])
    assert header == header_1 and [r[:2] for r in rows] == [r[:2] for r in rows_1]
    diff = np.abs(np.array([r[2:] for r in rows], float) - np.array([r[2:] for r in rows_1],
                                                                    float))
    assert diff.max() <= 1e-5


def test_two_hosts_write_shards_that_partition_the_rows(one_device_run, inputs, critic_dir,
                                                        tmp_path):
    folder, _ = inputs
    out = tmp_path / "hosts.csv"
    for host in ("0", "1"):
        with contextlib.redirect_stderr(io.StringIO()):
            assert main(rescore_args(critic_dir, folder, out, "--num-processes", "2",
                                     "--process-id", host)) == 0
    _, part0 = read_csv(tmp_path / "hosts.part000-of-002.csv")
    _, part1 = read_csv(tmp_path / "hosts.part001-of-002.csv")
    _, whole = read_csv(one_device_run[0])
    # Batches of 3 inputs alternate between hosts: ids 0-2 and 6-8 on host 0.
    assert {int(r[0]) // 3 % 2 for r in part0} == {0} and {int(r[0]) // 3 % 2 for r in
                                                            part1} == {1}
    merged = sorted(part0 + part1, key=lambda r: int(r[0]))
    assert [r[:2] for r in merged] == [r[:2] for r in whole]
    np.testing.assert_allclose(np.array([r[2:] for r in merged], float),
                               np.array([r[2:] for r in whole], float), atol=1e-6)


@pytest.mark.slow
def test_killed_run_resumes_to_an_identical_csv(critic_dir, tmp_path):
    args = ["rescore", "--critics", str(critic_dir / "c0.critic"), str(critic_dir / "c1.critic"),
            "--generate", "40", "--batch", "2", "--seed", "3"]
    whole = tmp_path / "whole.csv"
    assert main([*args, "--out", str(whole)]) == 0

    out = tmp_path / "killed.csv"
    progress = tmp_path / "killed.csv.progress"
    # The command gives JAX one CPU device per core; this process has its own count, and
    # scores are equal across counts only up to float rounding: match it, for equal bytes.
    env = {**os.environ,
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={jax.device_count()}"}
    child = subprocess.Popen([sys.executable, "-m", "ddjax.cli.main", *args, "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                             env=env)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if progress.is_file() and json.loads(progress.read_text())["batches_done"] >= 2:
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done = json.loads(progress.read_text())["batches_done"]
    assert 2 <= done < 20
    with open(out, "a") as f:
        f.write("38,random:3:38,0.1")  # a torn write, past the recorded length
    assert main([*args, "--out", str(out), "--resume"]) == 0
    assert out.read_bytes() == whole.read_bytes()
    assert not progress.exists()
    _, rows = read_csv(out)
    assert [int(r[0]) for r in rows] == list(range(40))


def error_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_bad_critics_and_resume_are_one_line_errors_naming_the_file(capsys, critic_dir,
                                                                    tmp_path):
    broken = tmp_path / "broken.critic"
    broken.write_bytes(b"garbage")
    base = ["--generate", "2", "--out", str(tmp_path / "x.csv")]
    assert "broken.critic" in error_line(capsys, ["rescore", "--critics", str(critic_dir),
                                                  str(broken), *base])
    small = CriticConfig(hidden=64)
    save_critic(tmp_path / "small.critic", init_critic(jax.random.key(0), small), small)
    assert "small.critic has another architecture" in error_line(
        capsys, ["rescore", "--critics", str(critic_dir), str(tmp_path / "small.critic"),
                 *base])
    assert "nothing to resume" in error_line(
        capsys, ["rescore", "--critics", str(critic_dir), *base, "--resume"])
    assert "does not exist" in error_line(
        capsys, ["rescore", "--critics", str(critic_dir), "--loops", str(tmp_path / "no"),
                 "--out", str(tmp_path / "x.csv")])
