"""A session folder written before the package was split into layers resumes as it did.

``data/session-6ef8bcd/`` was written by ddjax at commit 6ef8bcd (the flat package): three
ratings and a skip with the default (head) learner, seed 3, two chains of two iterations;
its WAV files are left out (a resume does not read them). ``session-6ef8bcd.next.json`` is
what that commit's code showed next after resuming it: the loop, its score and a digest of
the resumed critic. The same folder must resume to the same loop, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil

import jax
import numpy as np

from ddjax.learning.training import TrainConfig
from ddjax.session.session import Session, SessionConfig

DATA = pathlib.Path(__file__).resolve().parent / "data"
SETTINGS = dict(train=TrainConfig(steps_per_rating=2, batch_size=4),
                config=SessionConfig(n_chains=2, n_iters=2, seed=3))


def test_a_folder_from_the_flat_package_resumes_to_the_same_next_loop(bundled_kit, tmp_path):
    folder = tmp_path / "session"
    shutil.copytree(DATA / "session-6ef8bcd", folder)
    expected = json.loads((DATA / "session-6ef8bcd.next.json").read_text())
    log = [json.loads(line) for line in (folder / "ratings.jsonl").read_text().splitlines()]
    with Session(bundled_kit, folder, **SETTINGS) as session:
        assert [r.loop_id for r in session.history] == [e["id"] for e in log if "liked" in e]
        loop = session.next_loop()
        critic = session.critic()
    assert loop.id == expected["next_id"]
    assert loop.grid.astype(int).tolist() == expected["grid"]
    assert list(loop.sample_paths) == expected["samples"]
    assert np.asarray(loop.velocity).tolist() == expected["velocity"]
    assert loop.score == expected["score"]
    assert loop.critic_version == expected["critic_version"]
    digest = hashlib.sha256(b"".join(np.asarray(x, np.float32).tobytes()
                                     for x in jax.tree_util.tree_leaves(critic))).hexdigest()
    assert digest == expected["critic_leaves_sha256"]


def test_the_old_sessions_swing_reads_as_straight_on_the_mpc_scale():
    """Its session.json says "swing": 0.0 on the old scale (no "swing_scale"): 50%."""
    from ddjax.session.journal import read_meta, recorded_sizes
    meta = read_meta(DATA / "session-6ef8bcd")
    assert meta["swing"] == 0.0 and "swing_scale" not in meta
    assert recorded_sizes(meta) == (120.0, 4, 50.0)


def test_a_session_at_old_swing_20_resumes_at_55_without_the_swing_refusal(tmp_path):
    """Old swing 20 (odd steps 20/200 of a 16th late) is MPC 55: with no --swing the
    pipeline is at 55 and the size check passes; --swing 55 passes too; 50 is refused."""
    import argparse

    import pytest

    from ddjax.cli.session import session_pipeline
    from ddjax.core.pipeline import Pipeline
    from ddjax.errors import DdjaxError
    from ddjax.session.journal import check_sizes, read_meta
    folder = tmp_path / "session"
    shutil.copytree(DATA / "session-6ef8bcd", folder)
    meta = json.loads((folder / "session.json").read_text())
    (folder / "session.json").write_text(json.dumps({**meta, "swing": 20}))
    args = argparse.Namespace(bpm=None, tracks=None, swing=None, humanize=None)
    pipeline = session_pipeline(args, folder)
    assert pipeline.render.swing == 55.0
    check_sizes(folder, read_meta(folder), pipeline)
    check_sizes(folder, read_meta(folder), Pipeline.sized(swing=55.0))
    with pytest.raises(DdjaxError, match="55% swing, not 120 BPM with 4 and 50%"):
        check_sizes(folder, read_meta(folder), Pipeline.sized())
