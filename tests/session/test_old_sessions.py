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
