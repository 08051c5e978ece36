"""MIDI a DAW takes as it is: one named track and one distinct note per loop track; stems
that sum to the mix, against a plain NumPy render."""

import json

import mido
import numpy as np
import pytest
import soundfile as sf

from ddjax.cli.main import main
from ddjax.core.render import RenderConfig
from ddjax.io.export import export_loop, loop_stems, track_notes

BAR_TICKS = 16 * 120  # one bar of 16ths at 480 ticks a beat


def _read_tracks(path):
    """Per MIDI track after the first: (name, set of notes played, end tick)."""
    midi = mido.MidiFile(str(path))
    tracks = []
    for track in midi.tracks[1:]:
        now, name, notes = 0, None, set()
        for message in track:
            now += message.time
            if message.type == "track_name":
                name = message.name
            if message.type == "note_on" and message.velocity > 0:
                assert message.channel == 9  # channel 10
                notes.add(message.note)
        tracks.append((name, notes, now))
    return midi, tracks


# Per track, the sample's GM note (Kit.notes) or kind, and the notes written by hand: the
# GM note where no earlier track took it; a taken tom -> the next free tom above
# (41, 43, 45, 47, 48, 50, wrapping); anything else -> the next free pad note from 60.
CASES = [
    ([39, 39, 36, 36], [39, 60, 36, 61]),  # two claps, two kicks
    ([45, 45, 45, 50], [45, 47, 48, 50]),  # three mid toms, a high tom
    ([50, 50], [50, 41]),  # the high tom taken: wraps to the floor tom
    ([None, None, 38, None], [60, 61, 38, 62]),  # unknown kinds
    (["clap", "clap", "kick", None], [39, 60, 36, 61]),  # kinds instead of notes
    ([36] * 8, [36, 60, 61, 62, 63, 64, 65, 66]),  # MAX_TRACKS kicks
    ([41] * 8, [41, 43, 45, 47, 48, 50, 60, 61]),  # more toms than tom notes
    ([None, 60, 61, 60], [60, 61, 62, 63]),  # pad notes taken by an unknown kind first
]


@pytest.mark.parametrize("own,want", CASES)
def test_each_track_plays_its_own_note_read_back_with_mido(tmp_path, own, want):
    tracks = len(own)
    grid = np.zeros((tracks, 16), int)
    for t in range(tracks):
        grid[t, t::4] = 1  # every track plays, several tracks on one step
    samples = [f"kit/s{t}.wav" for t in range(tracks)]
    record = {"grid": grid.tolist(), "samples": samples, "bpm": 120}
    export_loop(tmp_path / "loop", record, notes=track_notes(own), write_json=False)
    midi, read = _read_tracks(tmp_path / "loop.mid")
    assert midi.type == 1 and len(read) == tracks
    assert [notes for _, notes, _ in read] == [{n} for n in want]
    assert len(set(want)) == tracks


def test_midi_tracks_are_named_after_their_samples_and_end_at_the_bar(tmp_path):
    grid = np.zeros((4, 16), int)
    grid[0, ::4] = grid[1, 4::8] = grid[2, ::2] = 1  # track 3 is silent: still a track
    samples = ["808/clean/kick01.wav", "snare/Snare Tight.flac", "hh/hat_c.wav", "x/perc.aif"]
    record = {"grid": grid.tolist(), "samples": samples, "bpm": 96}
    export_loop(tmp_path / "loop", record, notes=[36, 38, 42, 60], write_json=False)
    midi, read = _read_tracks(tmp_path / "loop.mid")
    assert [name for name, _, _ in read] == ["kick01", "Snare Tight", "hat_c", "perc"]
    assert [notes for _, notes, _ in read] == [{36}, {38}, {42}, set()]
    assert all(end == BAR_TICKS for _, _, end in read)
    first = midi.tracks[0]
    assert {m.type for m in first} == {"set_tempo", "time_signature", "end_of_track"}
    assert sum(m.time for m in first) == BAR_TICKS
    assert midi.length == pytest.approx(4 * 60 / 96)  # one bar at 96 BPM


PEAK = 10 ** (-1 / 20)  # -1 dBFS


def _reference_render(rows, grid, config, only=None):
    """A plain loop render of the documented rule (no swing, no humanize): each hit at
    int(j * sr * 60 / bpm / 4), at volume, the bar repeated, one gain min(1, PEAK / p) from
    the whole loop; ``only``: that track's hits alone, at the whole loop's gain."""
    bar = round(config.sr * 60 / config.bpm * 4)
    step = config.sr * 60 / config.bpm / 4

    def unwrapped(tracks):
        out = np.zeros(2 * bar)
        for t in tracks:
            for j in np.nonzero(grid[t])[0]:
                start = int(j * step)
                out[start:start + rows.shape[1]] += config.volume * rows[t]
        return out

    whole = unwrapped(range(grid.shape[0]))
    peak = max(np.abs(whole[:bar] + whole[bar:]).max(), np.abs(whole).max())
    gain = min(1.0, PEAK / peak)
    part = whole if only is None else unwrapped([only])
    total = config.repeats * bar + round(config.tail_seconds * config.sr)
    out = np.zeros(max(total, (config.repeats + 1) * bar))
    for r in range(config.repeats):
        out[r * bar:(r + 2) * bar] += part
    return gain * out[:total]


def test_stems_are_each_track_alone_and_sum_to_the_mix():
    config = RenderConfig(bpm=120.0)
    rng = np.random.default_rng(3)
    rows = (rng.uniform(-0.9, 0.9, (3, 30000)) * np.exp(-np.arange(30000) / 4000)
            ).astype(np.float32)
    grid = np.zeros((3, 16), bool)
    grid[0, ::4] = grid[1, 4::8] = grid[2, ::2] = True
    stems = loop_stems(rows, grid, None, config)
    mix = _reference_render(rows, grid, config)
    assert PEAK / np.abs(mix).max() < 1.01  # loud enough that the loop's gain matters
    assert stems.shape == (3, mix.size)
    np.testing.assert_allclose(stems.sum(axis=0), mix, atol=1e-5)
    for t in range(3):
        np.testing.assert_allclose(stems[t], _reference_render(rows, grid, config, t),
                                   atol=1e-5)


def test_export_command_writes_stems_that_sum_to_the_wav(tmp_path, bundled_kit):
    loop = tmp_path / "loop.json"
    samples = ["kick/kick_01.wav", "snare/snare_01.wav", "closed_hat/closed_hat_01.wav",
               "kick/kick_02.wav"]
    grid = [[1, 0, 0, 0] * 4, [0, 0, 1, 0] * 4, [1] * 16, [0, 0, 0, 1] * 4]
    loop.write_text(json.dumps({"grid": grid, "samples": samples, "bpm": 120}))
    assert main(["export", str(loop), "--stems", "--format", "float32"]) == 0
    mix = sf.read(tmp_path / "loop.wav")[0]
    names = ["kick_01", "snare_01", "closed_hat_01", "kick_02"]
    stems = [sf.read(tmp_path / f"loop_track{t + 1}_{n}.wav")[0] for t, n in enumerate(names)]
    np.testing.assert_allclose(np.sum(stems, axis=0), mix, atol=1e-5)
    assert all(np.abs(s).max() > 0 for s in stems)
    _, read = _read_tracks(tmp_path / "loop.mid")  # two kicks: two notes
    assert [(name, notes) for name, notes, _ in read] == [
        ("kick_01", {36}), ("snare_01", {38}), ("closed_hat_01", {42}), ("kick_02", {60})]
