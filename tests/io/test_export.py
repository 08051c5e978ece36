"""Exports: MIDI that round-trips through mido with the right notes and times."""

import io
import json

import mido
import numpy as np
import pytest

from ddjax.cli.main import main
from ddjax.core.drums import GM_NOTES
from ddjax.core.groove import Humanize
from ddjax.io.export import midi_bytes, track_notes, write_midi
from ddjax.io.kinds import kind_from_name


def test_midi_round_trips_with_notes_at_sixteenth_notes(tmp_path):
    rng = np.random.default_rng(0)
    grid = rng.random((4, 16)) < 0.4
    notes = [36, 38, 42, 56]
    write_midi(tmp_path / "a.mid", grid, notes, 120)
    midi = mido.MidiFile(str(tmp_path / "a.mid"))
    assert midi.ticks_per_beat == 480 and midi.type == 1 and len(midi.tracks) == 1 + 4
    assert abs(midi.length - 2.0) < 1e-9  # one bar at 120 BPM
    tick, hits, tempo = 0, set(), None
    for message in mido.merge_tracks(midi.tracks):
        tick += message.time
        if message.type == "set_tempo":
            tempo = message.tempo
        if message.type == "note_on" and message.velocity > 0:
            assert message.channel == 9  # channel 10
            hits.add((message.note, tick))
    assert tempo == 500000
    expected = {(notes[t], 120 * s) for t in range(4) for s in range(16) if grid[t, s]}
    assert hits == expected


@pytest.mark.parametrize("name,kind", [
    ("kick/kick_03.wav", "kick"), ("808/clean/snare04.wav", "snare"),
    ("DR110_ClosedHat_Clean.wav", "closed_hat"), ("808/warm/hh_open.wav", "open_hat"),
    ("Vermona_Clap_02.wav", "clap"), ("808/clean/tomlo.wav", "tom"),
    ("SR-88_Cymbal_Distorted.wav", "crash"), ("cowbell/cowbell_01.wav", "cowbell"),
    ("shaker/shaker_02.wav", "shaker"), ("ride/ride_01.wav", "ride"), ("rim/rim_02.wav", "rim"),
    ("drumhits/Zapp.wav", "fx"), ("harsh/harsh_03.wav", "fx"), ("drumhits/FX_Hat.wav", "fx"),
    ("drumhits/Perc03.wav", None)])
def test_kinds_from_names(name, kind):
    assert kind_from_name(name) == kind


def test_bundled_kit_notes_follow_the_kinds(bundled_kit):
    notes = list(bundled_kit.notes)
    for name, note in zip(bundled_kit.names, notes):
        folder = name.split("/")[0]
        if folder in GM_NOTES:
            assert note == GM_NOTES[folder], name
        elif folder == "tom":
            assert note in (41, 43, 45, 47, 48, 50)
        else:  # noise and effects: their own note, never a kick's or a hat's
            assert folder == "harsh" and note == GM_NOTES["fx"] == 71, name
    # Unknown kinds get the next free pad note: never a kick (36) or a hat (42, 46).
    assert track_notes([None, 38, None, None]) == [60, 38, 61, 62]


def test_export_command_writes_midi_and_wav(tmp_path, bundled_kit):
    loop = tmp_path / "loop.json"
    grid = [[1, 0, 0, 0] * 4, [0, 0, 1, 0] * 4, [1] * 16, [0] * 15 + [1]]
    loop.write_text(json.dumps({"grid": grid, "samples": [
        "kick/kick_01.wav", "snare/snare_01.wav", "closed_hat/closed_hat_01.wav",
        "cowbell/cowbell_01.wav"], "bpm": 120}))
    assert main(["export", str(loop), "--midi"]) == 0
    assert (tmp_path / "loop.mid").is_file() and not (tmp_path / "loop.wav").exists()
    midi = mido.MidiFile(str(tmp_path / "loop.mid"))
    notes = [m.note for m in mido.merge_tracks(midi.tracks) if m.type == "note_on"]
    assert sorted(set(notes)) == [36, 38, 42, 56] and len(notes) == 4 + 4 + 16 + 1
    assert main(["export", str(loop), "--wav", "--out", str(tmp_path / "x" / "copy")]) == 0
    assert (tmp_path / "x" / "copy.wav").is_file() and (tmp_path / "x" / "copy.json").is_file()


def test_midi_swing_puts_the_off_beat_at_its_share_of_the_eighth_note():
    """Note times from mido, on the MPC/Ableton scale: even steps on the 120-tick grid, each
    odd step at swing% of its 8th note (240 ticks), rounded: 50% on the 16th (tick 120 of
    the pair), 66.67% on the triplet (2/3 of 240 = 160), 75% at 180, 62.5% at 150."""
    grid = np.zeros((2, 16), bool)
    grid[0, ::2] = grid[1, 1::2] = True
    for swing, at in ((50.0, 120), (62.5, 150), (66.67, 160), (200 / 3, 160), (75.0, 180)):
        late = at - 120
        midi = mido.MidiFile(file=io.BytesIO(midi_bytes(grid, [36, 42], 120, swing)))
        now, onsets = 0, []
        for message in mido.merge_tracks(midi.tracks):
            now += message.time
            if message.type == "note_on":
                onsets.append((message.note, now))
        assert sorted(onsets) == sorted([(36, 120 * j) for j in range(0, 16, 2)]
                                        + [(42, 120 * j + late) for j in range(1, 16, 2)])
        assert midi.length == pytest.approx(2.0)  # still one bar at 120 BPM


def test_midi_velocities_are_the_loops_and_127_without_them():
    grid = np.zeros((2, 16), bool)
    grid[0, ::4] = grid[1, 2::4] = True
    velocity = np.full((2, 16), 100)
    velocity[0, 0], velocity[1, 6] = 127, 70
    for given, want in ((velocity, velocity), (None, np.full((2, 16), 127))):
        midi = mido.MidiFile(file=io.BytesIO(midi_bytes(grid, [36, 38], 120, 0.0, given)))
        now, hits = 0, {}
        for message in mido.merge_tracks(midi.tracks):
            now += message.time
            if message.type == "note_on" and message.velocity > 0:
                hits[(message.note, now // 120)] = message.velocity
        assert hits == {(note, step): int(want[t, step]) for t, note in enumerate((36, 38))
                        for step in np.nonzero(grid[t])[0]}


def test_midi_humanize_moves_each_note_by_its_ms_and_velocity():
    """Against the documented jitter (PCG64 [seed, steps], uniform in [-1, 1]): each note at
    its step's tick plus ms converted at the tempo (480 ticks a beat), rounded, never before
    tick 0; each velocity moved and clipped to 1..127."""
    grid = np.zeros((2, 16), bool)
    grid[0, ::2] = grid[1, 1::4] = True
    velocity = np.full((2, 16), 120)
    u = np.random.default_rng([9, 16]).uniform(-1.0, 1.0, (2, 8, 16))
    for bpm in (120.0, 90.0):
        midi = mido.MidiFile(file=io.BytesIO(midi_bytes(grid, [36, 42], bpm, 50.0, velocity,
                                                        Humanize(20.0, 15, 9))))
        now, hits = 0, []
        for message in mido.merge_tracks(midi.tracks):
            now += message.time
            if message.type == "note_on" and message.velocity > 0:
                hits.append((message.note, now, message.velocity))
        want = []
        for t, note in enumerate((36, 42)):
            for j in np.nonzero(grid[t])[0]:
                tick = max(0, 120 * j + round(20.0 * u[0, t, j] / 1000 * bpm / 60 * 480))
                want.append((note, tick, int(np.clip(120 + round(15 * u[1, t, j]), 1, 127))))
        assert sorted(hits) == sorted(want)
        assert len({v for _, _, v in hits}) > 3  # the velocities do move
