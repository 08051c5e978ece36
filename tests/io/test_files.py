"""Writing files: faults become one DdjaxError, modes follow the umask, bytes reproduce."""

import errno
import io
import json
import os
import struct
import time

import jax
import numpy as np
import pytest
import soundfile as sf

from ddjax.cli.main import main
from ddjax.core.critic import CriticConfig, init_critic
from ddjax.errors import DdjaxError
from ddjax.io.critics import save_critic
from ddjax.io.encode import audio_bytes, wav_bytes
from ddjax.io.export import midi_bytes
from ddjax.io.files import atomic_write_bytes, loop_json, loop_record, write_audio


@pytest.fixture
def umask():
    """Sets the process umask for one test and restores it."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def _fail_with(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


@pytest.mark.parametrize("call, code, reason", [
    ("write", errno.ENOSPC, "no space left on device"),
    ("fsync", errno.EIO, "input/output error"),
    ("replace", errno.EROFS, "read-only file system"),
    ("open", errno.EACCES, "permission denied"),
])
def test_a_fault_at_any_write_call_is_one_error_and_the_old_file_stays(
        tmp_path, monkeypatch, call, code, reason):
    target = tmp_path / "loops" / "loop_0003.wav"
    target.parent.mkdir()
    target.write_bytes(b"old content")
    monkeypatch.setattr(os, call, _fail_with(code))
    with pytest.raises(DdjaxError) as err:
        atomic_write_bytes(target, b"new content")
    monkeypatch.undo()
    assert str(err.value) == f"cannot write {target}: {reason}"
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in target.parent.iterdir()) == ["loop_0003.wav"]  # no temp


def test_a_folder_or_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(DdjaxError, match=r"cannot write .*taken: .*taken is a folder"):
        atomic_write_bytes(tmp_path / "taken", b"x")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DdjaxError, match=r"cannot create folder .*afile/sub: .*afile is a file"):
        atomic_write_bytes(tmp_path / "afile" / "sub" / "x.json", b"x")


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    atomic_write_bytes(tmp_path / "a.json", b"{}")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == mode


def test_private_makes_the_output_folder_and_its_files_owner_only(tmp_path, umask, capsys):
    results = tmp_path / "results" / "run"
    results.mkdir(parents=True)
    (results / "result.json").write_text(json.dumps(
        {"theta_init": 0.4, "theta_final": 0.6, "delta": 0.2}))
    shared, private = tmp_path / "shared", tmp_path / "private"
    assert main(["experiment", "--from-sessions", str(tmp_path / "results"), "--out",
                 str(shared)]) == 0
    assert main(["experiment", "--from-sessions", str(tmp_path / "results"), "--out",
                 str(private), "--private"]) == 0
    assert os.umask(0o022) == 0o022  # --private left the process's umask as it was
    assert shared.stat().st_mode & 0o777 == 0o755
    assert private.stat().st_mode & 0o777 == 0o700
    for name in ("summary.json", "densities.png"):
        assert (shared / name).stat().st_mode & 0o777 == 0o644
        assert (private / name).stat().st_mode & 0o777 == 0o600


def test_a_float_wav_has_the_same_bytes_at_any_time_and_reads_back_exactly(tmp_path):
    audio = (np.random.default_rng(0).standard_normal(44100) * 1.5).astype(np.float32)
    write_audio(tmp_path / "a.wav", audio, 44100, "float32")
    time.sleep(1.1)  # libsndfile's PEAK chunk would hold a new timestamp now
    write_audio(tmp_path / "b.wav", audio, 44100, "float32")
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    back, sr = sf.read(tmp_path / "a.wav", dtype="float32")
    info = sf.info(tmp_path / "a.wav")
    assert sr == 44100 and info.subtype == "FLOAT" and info.channels == 1
    np.testing.assert_array_equal(back, audio)  # no clipping above full scale either


def test_the_wav_header_is_the_riff_float_layout():
    data = wav_bytes(np.array([0.25, -1.5], np.float32), 48000, "float32")
    assert data[:4] == b"RIFF" and struct.unpack("<I", data[4:8])[0] == len(data) - 8
    assert data[8:16] == b"WAVEfmt "
    fmt_tag, channels, sr, byte_rate, align, bits = struct.unpack("<HHIIHH", data[20:36])
    assert (fmt_tag, channels, sr, byte_rate, align, bits) == (3, 1, 48000, 192000, 4, 32)
    assert b"PEAK" not in data
    assert data[-8:] == np.array([0.25, -1.5], "<f4").tobytes()


def test_critic_json_and_midi_files_are_byte_identical_across_runs(tmp_path):
    config = CriticConfig()
    for name in ("a", "b"):
        save_critic(tmp_path / f"{name}.critic", init_critic(jax.random.key(7), config), config)
    assert (tmp_path / "a.critic").read_bytes() == (tmp_path / "b.critic").read_bytes()
    grid = np.zeros((4, 16), bool)
    grid[0, ::4] = True
    record = loop_record(grid, ["k.wav", "s.wav", "h.wav", "c.wav"], bpm=120, score=0.5)
    assert loop_json(record) == loop_json(json.loads(loop_json(record)))
    assert midi_bytes(grid, [36, 38, 42, 39], 120) == midi_bytes(grid.copy(), [36, 38, 42, 39],
                                                                 120.0)


@pytest.mark.parametrize("fmt,subtype,bits", [("pcm24", "PCM_24", 24), ("pcm16", "PCM_16", 16),
                                              ("flac", "PCM_24", 24)])
def test_pcm_files_hold_the_nearest_step_of_every_sample(fmt, subtype, bits):
    """Against a plain rounding of the samples to integers, read back by libsndfile."""
    rng = np.random.default_rng(1)
    audio = rng.uniform(-0.9, 0.9, 5000).astype(np.float32)
    audio[:4] = [0.0, 0.5, -0.5, 10 ** (-1 / 20)]
    data = audio_bytes(audio, 44100, fmt)
    assert data == audio_bytes(audio.copy(), 44100, fmt)  # the same bytes every time
    info = sf.info(io.BytesIO(data))
    assert info.subtype == subtype and info.samplerate == 44100 and info.channels == 1
    assert info.format == ("FLAC" if fmt == "flac" else "WAV")
    back, _ = sf.read(io.BytesIO(data), dtype="int32")
    want = [int(round(float(x) * 2 ** (bits - 1))) << (32 - bits) for x in audio]
    assert back.tolist() == want


def test_a_tempo_goes_into_an_acid_chunk_a_daw_reads():
    data = wav_bytes(np.zeros(100, np.float32), 44100, tempo=(96.5, 4))
    at = data.index(b"acid")
    assert struct.unpack("<I", data[at + 4:at + 8])[0] == 24
    flags, root, _, _, beats, den, num, bpm = struct.unpack("<IHHfIHHf", data[at + 8:at + 32])
    assert (flags & 0x01, beats, num, den, bpm) == (0, 4, 4, 4, 96.5)  # a loop, not a one-shot
    assert sf.read(io.BytesIO(data))[0].size == 100  # still a WAV that readers open


def test_wav_bytes_take_mono_audio_only():
    with pytest.raises(ValueError):
        wav_bytes(np.zeros((2, 10), np.float32), 44100)
    assert sf.read(io.BytesIO(wav_bytes(np.zeros(0, np.float32), 44100)))[0].size == 0
