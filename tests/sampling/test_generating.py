"""``generate --midi``: a .mid beside each WAV whose notes are the JSON's grid, written
before the JSON and taken back with the loop's audio if the JSON cannot be written."""

import json
import pathlib

import mido

from ddjax.cli.main import main
from ddjax.errors import DdjaxError
from ddjax.sampling import generating

ARGS = ["generate", "--n", "2", "--chains", "2", "--iters", "2", "--seed", "4", "--midi"]


def test_generate_midi_writes_each_loops_grid_as_named_tracks_of_distinct_notes(tmp_path):
    assert main([*ARGS, "--out", str(tmp_path)]) == 0
    loops = sorted(tmp_path.glob("loop_*.json"))
    assert [p.stem for p in loops] == ["loop_0000", "loop_0001"]
    for path in loops:
        record = json.loads(path.read_text())
        velocity = record.get("velocity", [[127] * 16] * len(record["grid"]))
        assert path.with_suffix(".wav").is_file()
        midi = mido.MidiFile(str(path.with_suffix(".mid")))
        assert midi.type == 1 and len(midi.tracks) == 1 + len(record["grid"])
        notes = []
        for t, (track, row) in enumerate(zip(midi.tracks[1:], record["grid"])):
            # The reference: a plain loop over the JSON's grid, straight 16ths of 120 ticks.
            want = {(120 * j, velocity[t][j]) for j, on in enumerate(row) if on}
            now, got, names = 0, set(), []
            for message in track:
                now += message.time
                if message.type == "track_name":
                    names.append(message.name)
                if message.type == "note_on" and message.velocity > 0:
                    got.add((now, message.velocity))
                    notes.append((t, message.note))
            assert got == want
            assert names == [pathlib.PurePosixPath(record["samples"][t]).stem]
        per_track = {t: {n for s, n in notes if s == t} for t, _ in notes}
        assert all(len(n) == 1 for n in per_track.values())  # one note per track
        assert len(set().union(*per_track.values())) == len(per_track)  # all distinct


def test_generate_midi_is_taken_back_when_the_json_cannot_be_written(tmp_path, monkeypatch):
    def fail(path, record):
        raise DdjaxError(f"cannot write {path}")

    monkeypatch.setattr(generating, "write_loop_json", fail)
    assert main([*ARGS, "--out", str(tmp_path)]) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_loop_is_written_as_a_group_and_an_orphan_is_never_overwritten(tmp_path, capsys,
                                                                           monkeypatch):
    """The one-bar WAV's write fails after the preview's: neither stays. A preview left
    without its JSON by a crash is reported, kept, and numbered past."""
    real = generating.export_loop

    def second_write_fails(stem, record, **kw):
        (stem.parent / f"{stem.name}.wav").write_bytes(b"first file")  # written, then
        raise DdjaxError(f"cannot write {stem.name}_1bar_120bpm.wav: no space left")

    monkeypatch.setattr(generating, "export_loop", second_write_fails)
    assert main([*ARGS, "--loop-wav", "--out", str(tmp_path)]) == 2
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(generating, "export_loop", real)
    (tmp_path / "loop_0000.wav").write_bytes(b"a crash's orphan")
    capsys.readouterr()
    assert main([*ARGS, "--out", str(tmp_path)]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "no JSON" in line]
    assert len(warned) == 1 and "loop 0 has loop_0000.wav" in warned[0]
    assert (tmp_path / "loop_0000.wav").read_bytes() == b"a crash's orphan"
    assert sorted(p.name for p in tmp_path.glob("loop_*.json")) == ["loop_0001.json",
                                                                     "loop_0002.json"]
