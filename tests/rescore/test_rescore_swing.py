"""Rescore's inputs on the MPC swing scale: it renders straight 16ths (50%), so a loop file
from before the scale with swing 0 is scored, one with swing 20 (MPC 55) is skipped with a
warning that names 55%, and a JSONL line is read the same way."""

import json

import pytest

from ddjax.core.pipeline import Pipeline
from ddjax.rescore.inputs import Inputs, Reporter, RescoreWarning, iter_sources

SAMPLES = ["kick/kick_01.wav", "snare/snare_02.wav", "closed_hat/closed_hat_03.wav",
           "clap/clap_01.wav"]


def test_old_and_new_swing_values_are_read_on_one_scale(tmp_path, bundled_kit):
    loop = {"grid": [[1, 0] * 8] * 4, "samples": SAMPLES, "bpm": 120}
    files = []
    for name, extra in (("old_straight", {"swing": 0}), ("new_straight", {"swing": 50,
                        "swing_scale": "mpc"}), ("plain", {}), ("old_swung", {"swing": 20})):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps({**loop, **extra}))
    (tmp_path / "log.jsonl").write_text(json.dumps({**loop, "swing": 20}) + "\n")
    files.append(tmp_path / "log.jsonl")
    inputs = Inputs(bundled_kit, Pipeline.sized(), seed=0)
    report = Reporter()
    with pytest.warns(RescoreWarning, match="55% swing") as caught:
        items = inputs.load(list(iter_sources(files)), report)
    assert [item is not None for item in items] == [True, True, True, False, False]
    assert report.skipped == 2 and len(caught) == 1  # one warning per cause
