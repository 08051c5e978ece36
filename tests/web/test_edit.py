"""The edit stage: which tracks sound, what a rated version is, and one line per bad field,
against the rules spelled out case by case."""

import itertools

import numpy as np
import pytest

from ddjax.web.edit import EditError, parse


def test_which_tracks_sound_for_every_mute_and_solo():
    """A track sounds when it is not muted and either nothing is soloed or it is: checked
    for all 256 mute and solo settings of 4 tracks."""
    grid = np.ones((4, 16), int).tolist()
    for mute in itertools.product([False, True], repeat=4):
        for solo in itertools.product([False, True], repeat=4):
            edit = parse({"grid": grid, "mute": list(mute), "solo": list(solo)}, (4, 16))
            heard, _ = edit.heard()
            for track in range(4):
                sounds = not mute[track] and (solo[track] or not any(solo))
                assert heard[track].all() == sounds and heard[track].any() == sounds


def test_an_edit_changes_the_loop_only_where_it_sounds_different():
    grid = np.zeros((2, 4), bool)
    grid[0, 0] = grid[1, 2] = True
    velocity = np.full((2, 4), 100)
    same = parse({"grid": grid.astype(int).tolist(), "velocity": velocity.tolist()}, (2, 4))
    assert not same.changes(grid, velocity)
    quiet_off_cell = velocity.copy()
    quiet_off_cell[0, 3] = 1  # a cell that is off: its velocity is not heard
    assert not parse({"grid": grid.tolist(), "velocity": quiet_off_cell.tolist()},
                     (2, 4)).changes(grid, velocity)
    louder = velocity.copy()
    louder[0, 0] = 127
    assert parse({"grid": grid.tolist(), "velocity": louder.tolist()}, (2, 4)).changes(
        grid, velocity)
    assert parse({"grid": grid.tolist(), "mute": [False, True]}, (2, 4)).changes(grid, velocity)
    toggled = grid.copy()
    toggled[1, 3] = True
    assert parse({"grid": toggled.tolist()}, (2, 4)).changes(grid, velocity)
    # No velocities on either side means every hit at 127.
    assert not parse({"grid": grid.tolist()}, (2, 4)).changes(grid, None)
    assert parse({"grid": grid.tolist()}, (2, 4)).changes(grid, velocity)


@pytest.mark.parametrize("body,field", [
    ({"grid": None}, "grid"), ({"grid": [[1, 0, 0, 0]]}, "grid"), ({"grid": [[1, 0, 0], [0, 0, 0]]}, "grid"),
    ({"grid": [[1, 0, 0, 0], [0, 0, 0, 0.5]]}, "grid"), ({"grid": "on"}, "grid"),
    ({"velocity": [[64] * 4, [200] * 4]}, "velocity"), ({"mute": [True, "no"]}, "mute"),
    ({"solo": [True]}, "solo"), ({"bpm": 59}, "bpm"), ({"bpm": True}, "bpm"),
    ({"swing": -1}, "swing"), ({"swing": 49}, "swing"), ({"swing": 76}, "swing"),
])
def test_a_bad_field_is_one_line_that_names_it(body, field):
    body = {"grid": [[1, 0, 0, 0], [0, 0, 1, 0]], **body}
    with pytest.raises(EditError, match=f"'{field}'") as error:
        parse(body, (2, 4))
    assert "\n" not in str(error.value)


def test_an_edit_without_a_grid_is_refused():
    with pytest.raises(EditError, match="needs the loop's 'grid'"):
        parse({"mute": [True, False]}, (2, 4))
