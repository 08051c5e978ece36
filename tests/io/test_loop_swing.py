"""A loop's JSON keeps its swing on the MPC scale with a marker; files from before the
marker are read on the old scale (an odd step old/200 of a 16th late), converted once."""

import json

import pytest

from ddjax.errors import DdjaxError
from ddjax.io.files import loop_json, loop_record, read_loop_json

GRID = [[1, 0, 1, 0], [0, 1, 0, 1]]
SAMPLES = ["kick/a.wav", "hat/b.wav"]


def write(path, **extra):
    path.write_text(json.dumps({"grid": GRID, "samples": SAMPLES, "bpm": 120, **extra}))
    return path


@pytest.mark.parametrize("old,mpc", [(0, 50.0), (20, 55.0), (66.7, 66.675), (75, 68.75)])
def test_an_old_loop_file_reads_on_the_mpc_scale(tmp_path, old, mpc):
    """50 + old / 4: the odd step is as late as before, 2 * mpc / 100 - 1 = old / 200."""
    record = read_loop_json(write(tmp_path / "old.json", swing=old))
    assert record["swing"] == pytest.approx(mpc) and record["swing_scale"] == "mpc"
    assert 2 * record["swing"] / 100 - 1 == pytest.approx(old / 200)


def test_a_loop_without_swing_is_straight(tmp_path):
    assert read_loop_json(write(tmp_path / "plain.json"))["swing"] == 50.0


def test_a_new_file_carries_the_marker_and_reads_back_as_written(tmp_path):
    record = loop_record([[1, 0], [0, 1]], SAMPLES, bpm=120, swing=55)
    assert (record["swing"], record["swing_scale"]) == (55, "mpc")
    (tmp_path / "new.json").write_text(loop_json(record))
    assert read_loop_json(tmp_path / "new.json")["swing"] == 55.0
    straight = loop_record([[1, 0], [0, 1]], SAMPLES, bpm=120)
    assert "swing" not in straight and "swing_scale" not in straight  # as before


@pytest.mark.parametrize("extra,words", [
    ({"swing": 80}, "0 to 75"), ({"swing": 45, "swing_scale": "mpc"}, "50 to 75"),
    ({"swing": 60, "swing_scale": "ableton"}, "swing_scale"), ({"swing": "60"}, "'swing'"),
])
def test_a_bad_swing_is_one_error_naming_the_file(tmp_path, extra, words):
    path = write(tmp_path / "bad.json", **extra)
    with pytest.raises(DdjaxError, match=words) as err:
        read_loop_json(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
