"""``ddjax export`` of MIDI and previews runs on the host: no JAX, and many loops per call.

The preview is checked against a plain NumPy sum of the hits and the MIDI against the grid
read back with mido; the import checks run the command in a fresh interpreter.
"""

import json
import pathlib
import subprocess
import sys

import mido
import numpy as np
import pytest
import soundfile as sf

from ddjax.cli.main import main

SR = 44100
BPM = 120.0
BAR = 88200  # samples in a bar at 120 BPM
STEP = BAR / 16
GRIDS = {"one": [[1, 0, 0, 0] * 4, [0, 0, 1, 0] * 4],
         "two": [[1, 1] + [0] * 14, [0] * 15 + [1]]}


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> pathlib.Path:
    """Two quiet one-shots: no render of them reaches the -1 dBFS gain."""
    folder = tmp_path_factory.mktemp("kit")
    rng = np.random.default_rng(0)
    sf.write(folder / "a.wav", 0.05 * rng.standard_normal(900) * np.linspace(1, 0, 900), SR,
             subtype="FLOAT")
    sf.write(folder / "b.wav", 0.05 * np.sin(np.arange(400) * 0.3), SR, subtype="FLOAT")
    return folder


def _loops(folder: pathlib.Path) -> list[pathlib.Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, grid in GRIDS.items():
        paths.append(folder / f"{name}.json")
        paths[-1].write_text(json.dumps({"grid": grid, "samples": ["a.wav", "b.wav"],
                                         "bpm": BPM}))
    return paths


def _reference_preview(kit: pathlib.Path, grid: list[list[int]]) -> np.ndarray:
    """The listening render by hand: 4 bars and a 1 s tail, each hit at volume 0.5."""
    rows = [sf.read(kit / name)[0] for name in ("a.wav", "b.wav")]
    out = np.zeros(4 * BAR + SR + BAR)
    for bar in range(4):
        for track, row in enumerate(rows):
            for step in np.nonzero(grid[track])[0]:
                start = bar * BAR + int(step * STEP)
                out[start:start + len(row)] += 0.5 * row
    return out[:4 * BAR + SR]


def _note_on_ticks(path: pathlib.Path) -> list[list[int]]:
    """Each MIDI track's note-on ticks, the tempo track left out."""
    ticks = []
    for track in mido.MidiFile(path).tracks[1:]:
        now, ons = 0, []
        for message in track:
            now += message.time
            if message.type == "note_on" and message.velocity > 0:
                ons.append(now)
        ticks.append(ons)
    return ticks


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                          text=True, timeout=120)


def test_export_of_midi_and_preview_never_imports_jax(kit, tmp_path):
    loops = _loops(tmp_path / "in")
    done = _fresh_python(
        "import sys\nfrom ddjax.cli.main import main\n"
        f"code = main(['export', *{[str(p) for p in loops]!r}, '--kit', {str(kit)!r},"
        f" '--stems', '--out', {str(tmp_path / 'out')!r}])\n"
        "assert code == 0, code\nassert 'jax' not in sys.modules, 'jax was imported'\n")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "two.mid").is_file()


def test_help_never_imports_jax():
    done = _fresh_python(
        "import sys\nfrom ddjax.cli.main import main\n"
        "try:\n    main(['export', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'jax' not in sys.modules, 'jax was imported'\n")
    assert done.returncode == 0, done.stderr
    assert "LOOP.json" in done.stdout


def test_several_loops_write_their_files_into_out_named_after_their_json(kit, tmp_path):
    loops = _loops(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["export", *map(str, loops), "--kit", str(kit), "--out", str(out),
                 "--format", "float32", "--loudness", "off"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "one.json", "one.mid", "one.wav", "two.json", "two.mid", "two.wav"]
    for name, grid in GRIDS.items():
        audio, sr = sf.read(out / f"{name}.wav")
        assert sr == SR
        np.testing.assert_allclose(audio, _reference_preview(kit, grid), atol=1e-6)
        # 480 ticks a beat: a 16th is 120 ticks
        assert _note_on_ticks(out / f"{name}.mid") == [
            [120 * s for s in np.nonzero(row)[0]] for row in grid]
        assert json.loads((out / f"{name}.json").read_text())["grid"] == grid


def test_several_loops_without_out_write_beside_each_json(kit, tmp_path):
    loops = _loops(tmp_path / "in")
    assert main(["export", *map(str, loops), "--kit", str(kit), "--midi"]) == 0
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [
        "one.json", "one.mid", "two.json", "two.mid"]


@pytest.mark.parametrize("case", ["same_name", "out_is_file", "liked", "foreign_sample"])
def test_a_bad_combination_is_one_line_and_writes_nothing(kit, tmp_path, capsys, case):
    loops = _loops(tmp_path / "in")
    out = tmp_path / "out"
    extra = []
    if case == "same_name":  # in/one.json and other/one.json would both write out/one.*
        loops += [_loops(tmp_path / "other")[0]]
    elif case == "out_is_file":
        out.write_text("a file")
    elif case == "liked":
        extra = ["--session", str(tmp_path), "--liked"]
    else:  # the second loop's sample is not in the kit: found before the first is written
        loops[1].write_text(json.dumps({"grid": GRIDS["two"], "samples": ["a.wav", "c.wav"],
                                        "bpm": BPM}))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    capsys.readouterr()
    assert main(["export", *map(str, loops), "--kit", str(kit), "--out", str(out),
                 *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ddjax export: error: ") and err.count("\n") == 1, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
