"""The liked-loops zip's README names the swing on the MPC scale, and its one-bar loops
are at the loudness asked (the raw mix without one)."""

import io
import zipfile

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from test_bundle import _kit, _rating

from ddjax.core.render import RenderConfig
from ddjax.session.bundle import liked_zip


def readme(render):
    data = liked_zip([], _kit(), render, list(_kit().notes))
    return zipfile.ZipFile(io.BytesIO(data)).read("README.txt").decode()


def test_the_readme_names_the_swing_on_the_mpc_scale():
    assert "Swing: none (straight 16ths)." in readme(RenderConfig())
    assert "Swing: 66.67% (MPC/Ableton scale" in readme(RenderConfig(swing=66.67))


def test_the_one_bar_loops_are_at_the_loudness_asked():
    kit, ratings = _kit(), [_rating(3, [0, 1, 3, 5], True)]
    raw = zipfile.ZipFile(io.BytesIO(liked_zip(ratings, kit, RenderConfig(), list(kit.notes))))
    loud = zipfile.ZipFile(io.BytesIO(liked_zip(ratings, kit, RenderConfig(), list(kit.notes),
                                                loudness=-20.0)))
    name = "loop_00003_1bar_120bpm.wav"
    bar, sr = sf.read(io.BytesIO(loud.read(name)))
    meter = pyloudnorm.Meter(sr, filter_class="DeMan")
    assert meter.integrated_loudness(np.tile(bar, 4)) == pytest.approx(-20.0, abs=0.1)
    before, _ = sf.read(io.BytesIO(raw.read(name)))
    assert abs(meter.integrated_loudness(np.tile(before, 4)) + 20.0) > 1.0  # it did move
    assert raw.read("loop_00003.mid") == loud.read("loop_00003.mid")  # MIDI untouched
