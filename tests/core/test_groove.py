"""Swing's scale: MPC/Ableton percent now, the old "percent of half a 16th" read from old
files. The reference is the old scale's own rule, written out here: an odd step
``old / 200`` of a 16th late."""

import numpy as np
import pytest

from ddjax.core.groove import recorded_swing, swing_record
from ddjax.core.render import RenderConfig
from ddjax.errors import DdjaxError


@pytest.mark.parametrize("old,mpc", [(0, 50.0), (20, 55.0), (50, 62.5), (75, 68.75)])
def test_an_old_files_swing_reads_as_its_mpc_value(old, mpc):
    assert recorded_swing({"swing": old}) == mpc


@pytest.mark.parametrize("old", [0.0, 12.0, 20.0, 66.7, 75.0])
def test_an_old_files_swing_keeps_its_timing(old):
    """Every step starts where the old scale put it: int((j + old/200 * (j % 2)) * step)."""
    step = 44100 * 60 / 120 / 4
    expected = [int((j + old / 200 * (j % 2)) * step) for j in range(16)]
    config = RenderConfig(swing=recorded_swing({"swing": old}))
    assert list(config.step_offsets) == expected


def test_new_files_and_files_without_swing():
    assert recorded_swing({}) == 50.0  # no swing: straight, old or new
    assert recorded_swing({"swing": 66.67, "swing_scale": "mpc"}) == 66.67
    assert recorded_swing({"swing": 50, "swing_scale": "mpc"}) == 50.0


@pytest.mark.parametrize("swing", [50.0, 54.0, 200 / 3, 75.0])
def test_what_a_file_keeps_reads_back_the_same(swing):
    assert recorded_swing(swing_record(swing)) == swing
    assert (swing_record(swing) == {}) == (swing == 50.0)  # straight files carry nothing


@pytest.mark.parametrize("record,words", [
    ({"swing": 49, "swing_scale": "mpc"}, "50 to 75"),
    ({"swing": 80}, "0 to 75"),
    ({"swing": "55"}, "'swing'"),
    ({"swing": True}, "'swing'"),
    ({"swing": 60, "swing_scale": "akai"}, "'swing_scale'"),
])
def test_a_bad_swing_is_one_clear_error(record, words):
    with pytest.raises(DdjaxError, match=words) as err:
        recorded_swing(record, "loop.json")
    assert str(err.value).startswith("loop.json: ")


def test_the_old_scales_top_is_inside_the_new_range():
    assert 50.0 <= recorded_swing({"swing": 75}) <= 75.0
    np.testing.assert_allclose(recorded_swing({"swing": 66.7}), 66.675)
