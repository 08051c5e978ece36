"""The command line on the MPC swing scale, with old loop files read as they were meant;
and the loudness of what it writes (``--loudness``)."""

import io
import json

import mido
import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from test_cli import error_of
from test_render import numpy_gain, numpy_render

from ddjax.cli.main import main
from ddjax.core.loops import Loop
from ddjax.core.render import RenderConfig, listening_render
from ddjax.io.encode import audio_bytes

SAMPLES = ["kick/kick_01.wav", "snare/snare_02.wav", "closed_hat/closed_hat_03.wav",
           "clap/clap_01.wav"]


def loop_file(path, **extra):
    grid = np.zeros((4, 16), int)
    grid[0, ::4] = grid[1, 4::8] = grid[2, :] = grid[3, 7] = 1
    path.write_text(json.dumps({"grid": grid.tolist(), "samples": SAMPLES, "bpm": 120,
                                **extra}))
    return path, grid.astype(bool)


def onset_ticks(path):
    midi = mido.MidiFile(str(path))
    now, ticks = 0, set()
    for message in mido.merge_tracks(midi.tracks):
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            ticks.add(now)
    return ticks


def test_an_old_loop_file_renders_and_exports_with_its_old_timing(tmp_path, bundled_kit):
    """An old file's swing 20 (odd steps 20/200 of a 16th late) renders as the NumPy loop
    with odd steps a tenth of a 16th late, as a new file at 55% does; its MIDI puts odd
    steps 12 ticks late (a tenth of 120); --from carries it on as 55 with the marker."""
    old, grid = loop_file(tmp_path / "old.json", swing=20)
    new, _ = loop_file(tmp_path / "new.json", swing=55, swing_scale="mpc")
    for path in (old, new):
        assert main(["render", str(path), "--format", "float32", "--loudness", "off",
                     "--out", str(path.with_suffix(".wav"))]) == 0
    got, _ = sf.read(tmp_path / "old.wav", dtype="float32")
    again, _ = sf.read(tmp_path / "new.wav", dtype="float32")
    np.testing.assert_array_equal(got, again)
    ids = [bundled_kit.names.index(s) for s in SAMPLES]
    audio = np.asarray(bundled_kit.audio)
    ref, bar = numpy_render(audio, grid, ids, 120.0, bars=4, swing=55.0)  # j + 0.1 for odd j
    gain = numpy_gain(audio, grid, ids, 120.0, swing=55.0)
    np.testing.assert_allclose(got, gain * ref[:4 * bar + 44100], atol=1e-5, rtol=0)
    assert main(["export", str(old), "--midi"]) == 0
    # Within each 8th (240 ticks): the even 16th at 0, the odd one at 120 + 12.
    assert {t % 240 for t in onset_ticks(tmp_path / "old.mid")} == {0, 132}
    out = tmp_path / "more"
    assert main(["generate", "--from", str(old), "--iters", "0", "--n", "1", "--chains",
                 "1", "--loop-prior", "uniform", "--loudness", "off", "--out", str(out)]) == 0
    record = json.loads((out / "loop_0000.json").read_text())
    assert (record["swing"], record["swing_scale"]) == (55, "mpc")


def raw_preview(kit, grid):
    loop = Loop(grid[None], np.array([[kit.names.index(s) for s in SAMPLES]], np.int32))
    return np.asarray(listening_render(kit.audio, loop, RenderConfig()))[0]


def test_render_writes_the_loudness_asked_and_off_is_the_raw_mix(tmp_path, bundled_kit):
    """The preview at -23 LUFS (the default) and at -30, as pyloudnorm's BS.1770 meter
    reads it (0.1 LU); the one-bar loop at -23 as it repeats; --loudness off: the bytes of
    the raw mix, as ``render`` wrote them before loudness existed."""
    path, grid = loop_file(tmp_path / "loop.json")
    meter = pyloudnorm.Meter(bundled_kit.sr, filter_class="DeMan")
    for flags, target in (([], -23.0), (["--loudness", "-30"], -30.0)):
        assert main(["render", str(path), "--format", "float32", *flags, "--out",
                     str(tmp_path / "x.wav")]) == 0
        audio, _ = sf.read(tmp_path / "x.wav", dtype="float64")
        assert meter.integrated_loudness(audio) == pytest.approx(target, abs=0.1)
    assert main(["render", str(path), "--loop-wav", "--format", "float32", "--out",
                 str(tmp_path / "bar.wav")]) == 0
    bar, _ = sf.read(tmp_path / "bar.wav", dtype="float64")
    assert meter.integrated_loudness(np.tile(bar, 4)) == pytest.approx(-23.0, abs=0.1)
    assert main(["render", str(path), "--loudness", "off", "--out",
                 str(tmp_path / "raw.wav")]) == 0
    raw = raw_preview(bundled_kit, grid)
    assert (tmp_path / "raw.wav").read_bytes() == audio_bytes(raw, bundled_kit.sr)
    assert sf.read(io.BytesIO(audio_bytes(raw, bundled_kit.sr)))[0].shape == raw.shape


def test_a_bad_loudness_is_one_line(capsys, tmp_path):
    path, _ = loop_file(tmp_path / "loop.json")
    for bad, words in (("loud", "loudness"), ("-50", "-40 to -6"), ("0", "-40 to -6")):
        assert words in error_of(capsys, ["render", str(path), "--loudness", bad, "--out",
                                          str(tmp_path / "x.wav")])
    assert not (tmp_path / "x.wav").exists()
