"""Loading a kit: formats, mono mix, resampling, truncation, skipping bad files, kicks."""

import re
import warnings

import numpy as np
import pytest
import soundfile as sf
from conftest import BUNDLED_KIT, SHARED_KIT

from ddjax.errors import DdjaxError
from ddjax.io.kit import KitWarning, load_kit

SR = 44100
BAR = 88200


def reference_clip(path, bar=BAR):
    """What the kit should hold for one file: mean of channels, cut at a bar with a
    10 ms linear fade-out where cut."""
    data, sr = sf.read(str(path), dtype="float64", always_2d=True)
    assert sr == SR
    mono = data.mean(axis=1)
    if mono.size > bar:
        mono = mono[:bar].copy()
        mono[bar - 441:] *= np.linspace(1.0, 0.0, 441)
    return mono


def test_shared_kit_loads_every_file_as_reference_mono(shared_kit):
    files = sorted(p for p in SHARED_KIT.rglob("*.wav"))
    assert len(shared_kit) == len(files) == 292
    assert shared_kit.audio.shape == (292, BAR)
    infos = [sf.info(str(p)) for p in files]
    picks = {
        "stereo": next(i for i, f in enumerate(infos) if f.channels == 2),
        "24-bit": next(i for i, f in enumerate(infos) if f.subtype == "PCM_24"),
        "longer than a bar": next(i for i, f in enumerate(infos) if f.frames > BAR),
    }
    audio = np.asarray(shared_kit.audio)
    for what, i in picks.items():
        name = files[i].relative_to(SHARED_KIT).as_posix()
        row = shared_kit.names.index(name)
        expected = reference_clip(files[i])
        assert shared_kit.lengths[row] == expected.size, what
        np.testing.assert_allclose(audio[row, :expected.size], expected, atol=1e-6, err_msg=what)
        assert not audio[row, expected.size:].any(), what


def test_formats_soundfile_reads_all_load(tmp_path):
    rng = np.random.default_rng(0)
    clip = np.clip(0.2 * rng.standard_normal(4000), -0.9, 0.9) * np.exp(-np.arange(4000) / 800)
    sf.write(tmp_path / "a.flac", clip, SR, subtype="PCM_24")
    sf.write(tmp_path / "b.aiff", np.stack([clip, -clip * 0.5], axis=1), SR, subtype="PCM_16")
    sf.write(tmp_path / "c.wav", clip, SR, subtype="FLOAT")
    tone = 0.5 * np.sin(2 * np.pi * 200 * np.arange(4000) / SR)
    sf.write(tmp_path / "d.ogg", tone, SR)
    kit = load_kit(tmp_path, BAR)
    assert kit.names == ("a.flac", "b.aiff", "c.wav", "d.ogg")
    audio = np.asarray(kit.audio)
    np.testing.assert_allclose(audio[0, :4000], clip, atol=2e-7)
    np.testing.assert_allclose(audio[1, :4000], 0.25 * clip, atol=1e-4)
    np.testing.assert_allclose(audio[2, :4000], clip, atol=1e-7)
    assert np.corrcoef(audio[3, 1000:3000], tone[1000:3000])[0, 1] > 0.99  # lossy


def test_other_sample_rates_are_resampled_band_limited(tmp_path):
    seconds, hz = 0.5, 440.0
    t_in = np.arange(int(seconds * 22050)) / 22050
    sf.write(tmp_path / "sine.wav", 0.5 * np.sin(2 * np.pi * hz * t_in), 22050,
             subtype="FLOAT")
    sf.write(tmp_path / "other.wav", np.full(100, 0.1), SR)
    kit = load_kit(tmp_path, BAR)
    row = kit.names.index("sine.wav")
    assert abs(int(kit.lengths[row]) - int(seconds * SR)) <= 2
    t_out = np.arange(int(seconds * SR)) / SR
    expected = 0.5 * np.sin(2 * np.pi * hz * t_out)
    interior = slice(500, int(seconds * SR) - 500)
    np.testing.assert_allclose(np.asarray(kit.audio)[row, interior], expected[interior],
                               atol=2e-3)


def test_bad_files_are_skipped_with_one_warning_each(tmp_path):
    for i in range(4):
        sf.write(tmp_path / f"good{i}.wav", np.linspace(0.5, 0, 500) * (i + 1) / 4, SR)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is not audio")
    sf.write(tmp_path / "silent.wav", np.zeros(1000), SR)
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2] * 100), SR, subtype="FLOAT")
    sf.write(tmp_path / "noframes.wav", np.zeros(0), SR)
    # Finite in each channel, infinite once mixed: float64 stereo near its largest value.
    sf.write(tmp_path / "huge.wav", np.full((300, 2), 1.7e308), SR, subtype="DOUBLE")
    good = (tmp_path / "good0.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(good[:20])
    (tmp_path / "notes.txt").write_text("ignored: not an audio extension")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kit = load_kit(tmp_path, BAR)
    assert kit.names == ("good0.wav", "good1.wav", "good2.wav", "good3.wav")
    messages = [str(w.message) for w in caught if issubclass(w.category, KitWarning)]
    bad = ["cut.wav", "empty.wav", "huge.wav", "nan.wav", "noframes.wav", "silent.wav",
           "text.wav"]
    assert len(messages) == len(bad)
    for name, message in zip(bad, messages):
        assert name in message
    assert "silent" in messages[bad.index("silent.wav")]
    assert "NaN" in messages[bad.index("nan.wav")]
    assert "not finite once its channels are mixed" in messages[bad.index("huge.wav")]


def test_too_few_usable_samples_is_an_error_naming_the_folder(tmp_path):
    sf.write(tmp_path / "one.wav", np.linspace(0.5, 0, 500), SR)
    with pytest.raises(DdjaxError, match=re.escape(str(tmp_path))):
        load_kit(tmp_path, BAR, min_samples=4)
    with pytest.raises(DdjaxError, match="does not exist"):
        load_kit(tmp_path / "missing", BAR)


def test_kicks_are_found_from_the_audio(bundled_kit, tmp_path):
    named_kick = np.array([n.startswith("kick/") for n in bundled_kit.names])
    np.testing.assert_array_equal(bundled_kit.is_kick, named_kick)
    # Names play no part: a kick and a hat with swapped names.
    t = np.arange(int(0.4 * SR)) / SR
    kick = np.sin(2 * np.pi * np.cumsum(50 + 100 * np.exp(-t / 0.03)) / SR) * np.exp(-t / 0.08)
    hat = np.random.default_rng(1).standard_normal(t.size) * np.exp(-t / 0.02)
    hat = np.diff(hat, prepend=0.0)
    sf.write(tmp_path / "hat.wav", 0.8 * kick, SR)
    sf.write(tmp_path / "kick.wav", 0.3 * hat, SR)
    kit = load_kit(tmp_path, BAR, min_samples=2)
    assert kit.is_kick.tolist() == [True, False]


def test_bundled_kit_is_complete():
    kit = load_kit(BUNDLED_KIT, BAR)
    assert len(kit) >= 48 and kit.audio.shape[1] <= BAR


def test_a_sample_above_full_scale_is_scaled_to_full_scale_with_a_warning(tmp_path):
    hot = np.sin(np.linspace(0, 60, 2000)) * np.linspace(3.1, 0.0, 2000)
    sf.write(tmp_path / "hot.wav", hot, SR, subtype="FLOAT")
    sf.write(tmp_path / "ok.wav", hot / 4, SR, subtype="FLOAT")
    with pytest.warns(KitWarning) as caught:
        kit = load_kit(tmp_path, BAR)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "hot.wav" in message and f"{np.abs(hot).max():.3g}" in message
    audio = np.asarray(kit.audio)
    np.testing.assert_allclose(audio[0, :2000], hot / np.abs(hot).max(), atol=1e-6)
    np.testing.assert_allclose(audio[1, :2000], hot / 4, atol=1e-6)  # in range: untouched


def test_the_bundled_kit_is_found_where_the_package_is_installed():
    from ddjax.io.kit import bundled_kit
    found = bundled_kit()
    assert found.is_dir()
    assert sorted(p.relative_to(found) for p in found.rglob("*.wav")) == sorted(
        p.relative_to(BUNDLED_KIT) for p in BUNDLED_KIT.rglob("*.wav"))
