"""The command line: generate, render, and one-line errors with exit code 2."""

import io
import json
import shutil
import subprocess

import mido
import numpy as np
import pytest
import soundfile as sf
from conftest import BUNDLED_KIT
from test_render import MINUS_1_DBFS, numpy_gain, numpy_render, spec_jitter

from ddjax.cli.main import main


class Terminal(io.StringIO):
    """stderr as a terminal (tqdm shows bars only where ``isatty`` is true)."""

    def isatty(self):
        return True


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("loops")
    exe = shutil.which("ddjax")
    assert exe, "the ddjax console script is not installed"
    # The raw mix (--loudness off): these tests hold the files to the render's own rule.
    done = subprocess.run([exe, "generate", "--n", "3", "--chains", "2", "--iters", "3",
                           "--seed", "5", "--loudness", "off", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def test_generate_writes_wav_and_json_per_loop(generated):
    stems = sorted(p.stem for p in generated.glob("loop_*.json"))
    assert stems == ["loop_0000", "loop_0001", "loop_0002"]
    for stem in stems:
        record = json.loads((generated / f"{stem}.json").read_text())
        assert np.array(record["grid"]).shape == (4, 16)
        assert len(set(record["samples"])) == 4
        assert all((BUNDLED_KIT / s).is_file() for s in record["samples"])
        assert record["bpm"] == 120 and record["seed"] == 5 and 0 < record["score"] < 1
        info = sf.info(str(generated / f"{stem}.wav"))
        assert info.samplerate == 44100 and info.frames == 4 * 88200 + 44100


def test_generated_wav_is_the_numpy_render_of_its_json(generated, bundled_kit):
    record = json.loads((generated / "loop_0001.json").read_text())
    ids = [bundled_kit.names.index(s) for s in record["samples"]]
    kit_audio, grid = np.asarray(bundled_kit.audio), np.array(record["grid"], bool)
    velocity = np.array(record["velocity"])  # each hit at volume * velocity / 127
    ref, bar = numpy_render(kit_audio, grid, ids, 120.0, bars=4, velocity=velocity)
    gain = numpy_gain(kit_audio, grid, ids, 120.0, velocity=velocity)
    audio, _ = sf.read(str(generated / "loop_0001.wav"), dtype="float32")
    assert sf.info(str(generated / "loop_0001.wav")).subtype == "PCM_24"
    np.testing.assert_allclose(audio, gain * ref[:4 * bar + 44100], atol=1e-5, rtol=0)
    assert np.abs(audio).max() <= MINUS_1_DBFS + 2.0 ** -23


def test_loop_wav_is_one_seamless_bar_in_the_format_asked(generated, bundled_kit, tmp_path):
    """The 1-bar file is bar 2 of the numpy render (bar 1 with the tails that wrap into it),
    at the loop's gain, in FLAC or 16-bit WAV as asked; the preview keeps its 4 bars."""
    record = json.loads((generated / "loop_0002.json").read_text())
    ids = [bundled_kit.names.index(s) for s in record["samples"]]
    kit_audio, grid = np.asarray(bundled_kit.audio), np.array(record["grid"], bool)
    velocity = np.array(record["velocity"])
    ref, bar = numpy_render(kit_audio, grid, ids, 120.0, bars=2, velocity=velocity)
    gain = numpy_gain(kit_audio, grid, ids, 120.0, velocity=velocity)
    shutil.copy(generated / "loop_0002.json", tmp_path / "x.json")
    assert main(["export", str(tmp_path / "x.json"), "--loop-wav", "--wav",
                 "--format", "flac", "--loudness", "off"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.flac", "x.json",
                                                         "x_1bar_120bpm.flac"]
    one_bar, sr = sf.read(str(tmp_path / "x_1bar_120bpm.flac"), dtype="float32")
    assert sr == 44100 and one_bar.shape == (bar,)
    np.testing.assert_allclose(one_bar, gain * ref[bar:2 * bar], atol=1e-5, rtol=0)
    assert sf.info(str(tmp_path / "x.flac")).frames == 4 * bar + 44100
    assert main(["render", str(tmp_path / "x.json"), "--loop-wav", "--format", "pcm16",
                 "--loudness", "off", "--out", str(tmp_path / "bar16.wav")]) == 0
    assert sf.info(str(tmp_path / "bar16.wav")).subtype == "PCM_16"
    again, _ = sf.read(str(tmp_path / "bar16.wav"), dtype="float32")
    np.testing.assert_allclose(again, one_bar, atol=2.0 ** -15)


def test_render_reproduces_a_saved_loop_exactly(generated, tmp_path):
    assert main(["render", str(generated / "loop_0002.json"), "--loudness", "off", "--out",
                 str(tmp_path / "again.wav")]) == 0
    again, _ = sf.read(str(tmp_path / "again.wav"), dtype="float32")
    first, _ = sf.read(str(generated / "loop_0002.wav"), dtype="float32")
    np.testing.assert_array_equal(again, first)


def test_generate_never_overwrites_earlier_loops(generated, tmp_path):
    out = tmp_path / "more"
    shutil.copytree(generated, out)
    before = (out / "loop_0000.wav").read_bytes()
    assert main(["generate", "--n", "1", "--chains", "1", "--iters", "1", "--seed", "9",
                 "--out", str(out)]) == 0
    assert (out / "loop_0003.json").is_file() and (out / "loop_0000.wav").read_bytes() == before


def error_of(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_bad_arguments_are_one_line_and_exit_2(capsys, tmp_path):
    assert "does not exist" in error_of(capsys, ["generate", "--kit", str(tmp_path / "nope"),
                                                 "--out", str(tmp_path)])
    assert "positive" in error_of(capsys, ["generate", "--n", "0", "--out", str(tmp_path)])
    assert "positive" in error_of(capsys, ["generate", "--n", "-3", "--out", str(tmp_path)])
    assert "--out" in error_of(capsys, ["generate"])
    malformed = tmp_path / "bad.json"
    malformed.write_text("{not json")
    assert "not valid JSON" in error_of(capsys, ["render", str(malformed), "--out",
                                                 str(tmp_path / "x.wav")])
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"grid": [[1] * 16] * 4, "samples": [
        "kick/kick_01.wav", "snare/snare_01.wav", "nope/missing.wav", "rim/rim_01.wav"]}))
    assert "nope/missing.wav" in error_of(capsys, ["render", str(foreign), "--out",
                                                   str(tmp_path / "x.wav")])
    assert not (tmp_path / "x.wav").exists()
    missing_critic = ["generate", "--critic", str(tmp_path / "none.critic"), "--out",
                      str(tmp_path)]
    assert "none.critic" in error_of(capsys, missing_critic)


def test_every_command_has_help():
    for argv in (["--help"], ["generate", "--help"], ["render", "--help"]):
        done = subprocess.run(["ddjax", *argv], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "usage: ddjax" in done.stdout


def test_play_help_names_every_key_play_reads(capsys):
    from ddjax.cli.play import KEYS  # what the terminal player acts on

    with pytest.raises(SystemExit) as exit_:
        main(["play", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for key in KEYS.split(", "):
        assert key in text, key


def test_generate_from_a_loop_keeps_its_tempo_and_starts_every_chain_near_it(tmp_path, capsys,
                                                                            monkeypatch):
    origin = tmp_path / "origin.json"
    grid = np.zeros((4, 16), int)
    grid[0, ::4] = grid[1, 4::8] = grid[2, ::2] = 1
    samples = ["kick/kick_01.wav", "snare/snare_02.wav", "closed_hat/closed_hat_03.wav",
               "clap/clap_01.wav"]
    origin.write_text(json.dumps({"grid": grid.tolist(), "samples": samples, "bpm": 100}))
    out = tmp_path / "variations"
    assert main(["generate", "--from", str(origin), "--iters", "0", "--n", "2", "--chains",
                 "2", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote 2 loops to {out}"
    one, terminal = tmp_path / "one", Terminal()
    with monkeypatch.context() as patch:
        patch.setattr("sys.stderr", terminal)  # on a terminal, generate shows its bar
        assert main(["generate", "--from", str(origin), "--iters", "0", "--n", "1",
                     "--chains", "2", "--out", str(one)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote 1 loop to {one}"
    frames = terminal.getvalue().split("\r")
    assert any("generate" in f and "0/1" in f and "compiling…" in f for f in frames)
    assert "1/1" in frames[-1] and "compiling" not in frames[-1]
    for stem in ("loop_0000", "loop_0001"):
        record = json.loads((out / f"{stem}.json").read_text())
        # With no MH step, each loop is its chain's start: 2 to 8 cells away, the same
        # samples, every track that played still playing.
        changed = int((np.array(record["grid"]) != grid).sum())
        assert 2 <= changed <= 8 and record["samples"] == samples
        assert np.array(record["grid"])[:3].any(axis=1).all()
        assert record["bpm"] == 100
        assert sf.info(str(out / f"{stem}.wav")).frames == 4 * 105840 + 44100  # 100 BPM bars
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"grid": grid.tolist(), "samples": samples[:3] + samples[:1]}))
    assert "two tracks" in error_of(capsys, ["generate", "--from", str(foreign), "--out",
                                             str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", ["generate", "play", "serve", "experiment", "rescore"])
def test_tempo_and_size_out_of_range_are_one_line_errors(capsys, tmp_path, command):
    extra = {"generate": ["--out", str(tmp_path)], "experiment": ["--rater", "all"],
             "rescore": ["--critics", "x.critic", "--generate", "1", "--out", "x.csv"]}
    for flags, words in ((["--bpm", "59"], "60 to 200"), (["--bpm", "201"], "60 to 200"),
                         (["--tracks", "0"], "1 to 8"), (["--tracks", "9"], "1 to 8")):
        assert words in error_of(capsys, [command, *flags, *extra.get(command, [])])
    assert not any(tmp_path.iterdir())


def test_generate_makes_loops_of_the_tracks_and_tempo_asked(tmp_path, capsys):
    out = tmp_path / "six"
    assert main(["generate", "--tracks", "6", "--bpm", "140", "--n", "2", "--chains", "2",
                 "--iters", "2", "--out", str(out)]) == 0
    for stem in ("loop_0000", "loop_0001"):
        record = json.loads((out / f"{stem}.json").read_text())
        assert np.array(record["grid"]).shape == (6, 16) and len(set(record["samples"])) == 6
        assert record["bpm"] == 140
        assert sf.info(str(out / f"{stem}.wav")).frames == 4 * 75600 + 44100  # 140 BPM bars


def rendered_as_numpy_and_again(out, tmp_path, kit, grid, ids, **settings):
    """loop_0000.wav in ``out`` is the NumPy loop at 120 BPM with ``settings`` (to 1e-5),
    and ``ddjax render`` of its JSON gives it again."""
    ref, bar = numpy_render(np.asarray(kit.audio), grid, ids, 120.0, bars=4, **settings)
    gain = numpy_gain(np.asarray(kit.audio), grid, ids, 120.0, **settings)
    audio, _ = sf.read(str(out / "loop_0000.wav"), dtype="float32")
    np.testing.assert_allclose(audio, gain * ref[:4 * bar + 44100], atol=1e-5, rtol=0)
    assert main(["render", str(out / "loop_0000.json"), "--format", "float32", "--loudness",
                 "off", "--out", str(tmp_path / "again.wav")]) == 0
    again, _ = sf.read(str(tmp_path / "again.wav"), dtype="float32")
    np.testing.assert_allclose(again, audio, atol=2.0 ** -23)


def test_swung_loops_keep_their_swing_in_json_render_and_midi(tmp_path, capsys, bundled_kit):
    out = tmp_path / "swung"
    assert main(["generate", "--swing", "60", "--n", "1", "--chains", "1", "--iters", "2",
                 "--loudness", "off", "--out", str(out)]) == 0
    record = json.loads((out / "loop_0000.json").read_text())
    assert (record["swing"], record["swing_scale"]) == (60, "mpc")
    ids = [bundled_kit.names.index(s) for s in record["samples"]]
    grid = np.array(record["grid"], bool)
    velocity = np.array(record["velocity"])
    rendered_as_numpy_and_again(out, tmp_path, bundled_kit, grid, ids, swing=60,
                                velocity=velocity)
    assert main(["export", str(out / "loop_0000.json"), "--midi"]) == 0
    midi = mido.MidiFile(str(out / "loop_0000.mid"))
    now, odd = 0, set()
    for message in mido.merge_tracks(midi.tracks):
        now += message.time
        if message.type == "note_on" and now % 120:
            odd.add(now % 120)
    # At 60% the off-beat is at 60% of its 8th (240 ticks): tick 144 of the pair, 24 late.
    assert odd == ({24} if grid[:, 1::2].any() else set())
    record["swing"] = 80
    (tmp_path / "too.json").write_text(json.dumps(record))
    assert "50 to 75" in error_of(capsys, ["render", str(tmp_path / "too.json"), "--out",
                                           str(tmp_path / "x.wav")])
    for bad in ("76", "49", "0"):
        assert "50 to 75" in error_of(capsys, ["generate", "--swing", bad, "--out",
                                               str(tmp_path)])


def test_humanized_loops_keep_their_jitter_in_json_and_render(tmp_path, capsys, bundled_kit):
    """--humanize: the JSON says it, the WAV is the NumPy loop with the documented jitter,
    ``render`` gives it again, ``--from`` keeps it, and a malformed value is one line."""
    out = tmp_path / "human"
    assert main(["generate", "--humanize", "15,25,3", "--loudness", "off", "--n", "1",
                 "--chains", "1", "--iters", "2", "--out", str(out)]) == 0
    record = json.loads((out / "loop_0000.json").read_text())
    assert record["humanize"] == {"ms": 15, "velocity": 25, "seed": 3}
    ids = [bundled_kit.names.index(s) for s in record["samples"]]
    grid, velocity = np.array(record["grid"], bool), np.array(record["velocity"])
    timing, jitter = spec_jitter(3, 4, 16, 15.0, 25)
    rendered_as_numpy_and_again(out, tmp_path, bundled_kit, grid, ids,
                                velocity=np.clip(velocity + jitter, 1, 127), timing_ms=timing)
    for bad, says in (({"ms": 31}, "0 to 30 ms"), ({"ms": "8"}, "'ms' must be a number"),
                      ({"speed": 1}, "'humanize' must be an object")):
        (tmp_path / "bad.json").write_text(json.dumps({**record, "humanize": bad}))
        assert says in error_of(capsys, ["render", str(tmp_path / "bad.json"), "--out",
                                         str(tmp_path / "x.wav")])
    assert not (tmp_path / "x.wav").exists()
    assert "0 to 40" in error_of(capsys, ["generate", "--humanize", "5,41", "--out",
                                          str(tmp_path / "y")])


def test_generated_loops_carry_velocities_the_audio_and_midi_follow(tmp_path, capsys,
                                                                   bundled_kit):
    out = tmp_path / "accents"
    assert main(["generate", "--n", "1", "--chains", "1", "--iters", "3", "--loudness", "off",
                 "--out", str(out)]) == 0
    record = json.loads((out / "loop_0000.json").read_text())
    velocity = np.array(record["velocity"])
    grid = np.array(record["grid"], bool)
    assert velocity.shape == grid.shape and set(np.unique(velocity)) <= {70, 100, 127}
    ids = [bundled_kit.names.index(s) for s in record["samples"]]
    kit_audio = np.asarray(bundled_kit.audio)
    ref, bar = numpy_render(kit_audio, grid, ids, 120.0, bars=4, velocity=velocity)
    gain = numpy_gain(kit_audio, grid, ids, 120.0, velocity=velocity)
    audio, _ = sf.read(str(out / "loop_0000.wav"), dtype="float32")
    np.testing.assert_allclose(audio, gain * ref[:4 * bar + 44100], atol=1e-5, rtol=0)
    assert main(["export", str(out / "loop_0000.json"), "--midi"]) == 0
    midi = mido.MidiFile(str(out / "loop_0000.mid"))
    velocities = sorted(m.velocity for m in mido.merge_tracks(midi.tracks)
                        if m.type == "note_on" and m.velocity > 0)
    assert velocities == sorted(velocity[grid].tolist())
    # Variations keep the loop's velocities where no proposal ran.
    assert main(["generate", "--from", str(out / "loop_0000.json"), "--iters", "0", "--n",
                 "1", "--chains", "1", "--out", str(tmp_path / "same")]) == 0
    again = json.loads((tmp_path / "same" / "loop_0000.json").read_text())
    assert again["velocity"] == record["velocity"]
    for bad in (0, 128):
        record["velocity"][0][0] = bad
        (tmp_path / "bad.json").write_text(json.dumps(record))
        assert "1 to 127" in error_of(capsys, ["render", str(tmp_path / "bad.json"), "--out",
                                               str(tmp_path / "x.wav")])
