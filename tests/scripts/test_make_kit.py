"""Tests of scripts/make_kit.py and the committed kit in samples/."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "make_kit.py"
SAMPLES = ROOT / "samples"
SR = 44100

REQUIRED = {
    "kick": 6, "snare": 6, "clap": 4, "closed_hat": 6, "open_hat": 4, "tom": 6,
    "rim": 3, "cowbell": 3, "shaker": 3, "crash": 2, "ride": 2, "harsh": 4,
}


def wav_files(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*.wav"))}


def spectral_centroid(x: np.ndarray, sr: int = SR) -> float:
    """Magnitude-weighted mean frequency of the whole clip, in Hz."""
    magnitude = np.abs(np.fft.rfft(np.asarray(x, np.float64)))
    freqs = np.fft.rfftfreq(len(x), 1.0 / sr)
    return float(np.sum(freqs * magnitude) / np.sum(magnitude))


def load_kind(kind: str) -> list[np.ndarray]:
    return [sf.read(p, dtype="float64")[0] for p in sorted((SAMPLES / kind).glob("*.wav"))]


@pytest.fixture(scope="module")
def committed() -> dict[str, pathlib.Path]:
    files = wav_files(SAMPLES)
    if not files:
        pytest.fail(f"no committed samples in {SAMPLES}; run python scripts/make_kit.py")
    return files


def test_script_regenerates_identical_files(tmp_path, committed):
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    regenerated = wav_files(tmp_path)
    assert set(regenerated) == set(committed)
    differing = [name for name in sorted(committed)
                 if committed[name].read_bytes() != regenerated[name].read_bytes()]
    assert not differing, f"regenerated files differ from samples/: {differing}"
    assert (tmp_path / "README.md").read_bytes() == (SAMPLES / "README.md").read_bytes()


def test_different_seed_gives_different_sounds(tmp_path, committed):
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--seed", "1"],
                   check=True, capture_output=True, timeout=300)
    name = "kick/kick_01.wav"
    assert (tmp_path / name).read_bytes() != committed[name].read_bytes()


def test_layout_and_format(committed):
    assert len(committed) >= 48
    for kind, minimum in REQUIRED.items():
        names = sorted(p.name for p in (SAMPLES / kind).glob("*.wav"))
        assert len(names) >= minimum, kind
        assert names == [f"{kind}_{i:02d}.wav" for i in range(1, len(names) + 1)], kind
    assert (SAMPLES / "README.md").is_file()
    for name, path in committed.items():
        info = sf.info(str(path))
        assert info.samplerate == SR, name
        assert info.channels == 1, name
        assert info.format == "WAV" and info.subtype == "PCM_16", name
        assert 0.05 <= info.duration <= 2.5, name
        x, _ = sf.read(path, dtype="float64")
        peak = np.max(np.abs(x))
        assert peak > 0.5, f"{name} is (nearly) silent"
        assert peak <= 0.96, name
        assert abs(x[-1]) < 1e-3, f"{name} does not fade out"
        assert abs(np.mean(x)) < 0.01 * peak, f"{name} has a DC offset"


def test_kicks_are_low_and_hats_high():
    kicks = [spectral_centroid(x) for x in load_kind("kick")]
    assert max(kicks) < 300.0, kicks
    for kind in ("closed_hat", "open_hat", "shaker", "crash", "ride"):
        centroids = [spectral_centroid(x) for x in load_kind(kind)]
        assert min(centroids) > 2000.0, (kind, centroids)
    others = [spectral_centroid(x) for kind in REQUIRED if kind not in ("kick", "harsh")
              for x in load_kind(kind)]
    assert max(kicks) < min(others)
    assert min(others) > 300.0


def test_kicks_decay_fast():
    """A kick's 10 ms RMS envelope drops 20 dB below its peak within 0.3 s."""
    hop = SR // 100
    for x in load_kind("kick"):
        frames = len(x) // hop
        rms = np.sqrt(np.mean(x[: frames * hop].reshape(frames, hop) ** 2, axis=1))
        peak = int(np.argmax(rms))
        below = np.nonzero(rms[peak:] < 0.1 * rms[peak])[0]
        assert len(below) and below[0] * hop / SR < 0.3
