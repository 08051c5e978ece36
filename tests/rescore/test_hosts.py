"""``ddjax rescore`` on several hosts: the host settings (flags, then ``JAX_*`` variables),
each shard's settings record, ``--merge`` and its refusals, and real processes on
127.0.0.1: one whose peer never comes, and one whose peer is killed mid-run."""

import contextlib
import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import pytest
from conftest import REPO

from ddjax.cli.main import main
from ddjax.cli.parser import build_parser
from ddjax.cli.rescore import Hosts, host_settings
from ddjax.core.critic import CriticConfig, init_critic
from ddjax.errors import DdjaxError
from ddjax.io.critics import save_critic

N_LOOPS = 10


def parse(*flags):
    return build_parser().parse_args(["rescore", "--critics", "c", "--generate", "2",
                                      "--out", "x.csv", *flags])


def test_the_jax_variables_stand_in_for_absent_flags():
    env = {"JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    assert host_settings(parse(), env) == Hosts(False, None, 4, 3)
    assert host_settings(parse("--process-id", "1"), env) == Hosts(False, None, 4, 1)
    assert host_settings(parse(), {}) == Hosts(False, None, None, None)
    joined = host_settings(parse(), {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1234", **env})
    assert joined == Hosts(True, "127.0.0.1:1234", 4, 3)  # the address implies joining


@pytest.mark.parametrize(("env", "expected"), [
    ({"JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"}, "$JAX_NUM_PROCESSES='two'"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "-1"}, "$JAX_PROCESS_ID='-1'"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, "--process-id must be 0 to 1"),
    ({"JAX_NUM_PROCESSES": "2"}, "go together"),
    ({"JAX_COORDINATOR_ADDRESS": "nohost.invalid:12"}, "cannot resolve the host"),
])
def test_a_bad_jax_variable_is_one_error_naming_it(env, expected):
    with pytest.raises(DdjaxError, match=None) as err:
        host_settings(parse(), env)
    assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def critic(tmp_path_factory):
    path = tmp_path_factory.mktemp("critic") / "c.critic"
    save_critic(path, init_critic(jax.random.key(5)), CriticConfig())
    return path


def run(critic, out, *flags):
    argv = ["rescore", "--critics", str(critic), "--generate", str(N_LOOPS), "--seed", "2",
            "--out", str(out), *flags]
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return main(argv)


@pytest.fixture(scope="module")
def shards(critic, tmp_path_factory):
    """One host's CSV, and the two shards of the same run (batch 2) on two hosts."""
    folder = tmp_path_factory.mktemp("shards")
    assert run(critic, folder / "whole.csv", "--batch", "2") == 0
    for host in ("0", "1"):
        assert run(critic, folder / "s.csv", "--batch", "2", "--num-processes", "2",
                   "--process-id", host) == 0
    return folder


def test_every_shard_records_the_settings_that_decide_its_rows(shards, critic):
    record = json.loads((shards / "s.part001-of-002.csv.settings").read_text())
    assert record["batch"] == 2 and record["seed"] == 2 and record["n_inputs"] == N_LOOPS
    assert record["inputs"] == {"generate": N_LOOPS}
    assert record["process_id"] == 1 and record["num_processes"] == 2
    assert len(record["critics"]) == 1 and record["ddjax"]


def test_merged_shards_are_the_single_host_csv_byte_for_byte(shards, capsys):
    parts = [str(shards / f"s.part00{p}-of-002.csv") for p in (1, 0)]  # any order
    assert main(["rescore", "--merge", *parts, "--out", str(shards / "merged.csv")]) == 0
    assert (shards / "merged.csv").read_bytes() == (shards / "whole.csv").read_bytes()
    with open(shards / "merged.csv", newline="") as f:
        assert [int(r[0]) for r in list(csv.reader(f))[1:]] == list(range(N_LOOPS))


def merge_error(capsys, tmp_path, *parts):
    out = tmp_path / "merged.csv"
    capsys.readouterr()
    assert main(["rescore", "--merge", *map(str, parts), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not out.exists() and not list(tmp_path.glob(".merged*"))
    return err


def test_merge_refuses_hosts_given_different_batches(shards, critic, capsys, tmp_path):
    assert run(critic, tmp_path / "s.csv", "--batch", "3", "--num-processes", "2",
               "--process-id", "1") == 0
    err = merge_error(capsys, tmp_path, shards / "s.part000-of-002.csv",
                      tmp_path / "s.part001-of-002.csv")
    assert "different --batch (2 vs 3)" in err


def test_merge_refuses_a_missing_repeated_unfinished_or_foreign_shard(shards, capsys,
                                                                      tmp_path):
    part0, part1 = (shards / f"s.part00{p}-of-002.csv" for p in (0, 1))
    assert "host(s) 1 of 2 is missing" in merge_error(capsys, tmp_path, part0)
    assert "given twice" in merge_error(capsys, tmp_path, part0, part0, part1)
    assert "has no whole.csv.settings" in merge_error(capsys, tmp_path, part0,
                                                       shards / "whole.csv")
    unfinished = tmp_path / part1.name
    unfinished.write_bytes(part1.read_bytes())
    (tmp_path / (part1.name + ".settings")).write_bytes(
        (shards / (part1.name + ".settings")).read_bytes())
    (tmp_path / (part1.name + ".progress")).write_text("{}")
    assert "unfinished" in merge_error(capsys, tmp_path, part0, unfinished)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(critic, out, port, host, *flags):
    return [sys.executable, "-m", "ddjax.cli.main", "rescore", "--critics", str(critic),
            "--out", str(out), "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
            "--process-id", str(host), *flags]


@pytest.mark.slow
def test_a_host_whose_peer_never_comes_gives_up_in_one_line(critic, tmp_path):
    started = time.monotonic()
    done = subprocess.run(command(critic, tmp_path / "x.csv", free_port(), 0, "--generate",
                                  "2", "--coordinator-timeout", "3"),
                          capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "within 3 s (--coordinator-timeout)" in done.stderr
    assert time.monotonic() - started < 20
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_host_whose_peer_is_killed_finishes_its_shard_and_the_peer_resumes(critic,
                                                                          tmp_path):
    out, port = tmp_path / "k.csv", free_port()
    flags = ("--generate", "40", "--batch", "2", "--seed", "2")
    hosts = [subprocess.Popen(command(critic, out, port, host, *flags), cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for host in (0, 1)]
    progress = tmp_path / "k.part001-of-002.csv.progress"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and hosts[1].poll() is None:
            if progress.is_file() and json.loads(progress.read_text())["batches_done"] >= 1:
                hosts[1].send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        assert hosts[0].wait(timeout=120) == 0, hosts[0].stderr.read()
    finally:
        for child in hosts:
            child.kill()
            child.wait()
    assert hosts[1].returncode == -signal.SIGKILL, "host 1 finished before it was killed"
    assert not (tmp_path / "k.part000-of-002.csv.progress").exists()  # shard complete
    # The lost host resumes alone: the same split, without the distributed runtime.
    env = {**os.environ, "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
    done = subprocess.run([sys.executable, "-m", "ddjax.cli.main", "rescore", "--critics",
                           str(critic), "--out", str(out), *flags, "--resume"],
                          capture_output=True, text=True, timeout=120, cwd=REPO, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    merged = tmp_path / "merged.csv"
    assert main(["rescore", "--merge", *map(str, sorted(tmp_path.glob("k.part*.csv"))),
                 "--out", str(merged)]) == 0
    with open(merged, newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert [int(r[0]) for r in rows] == list(range(40))
    assert [r[1] for r in rows] == [f"random:2:{i}" for i in range(40)]
