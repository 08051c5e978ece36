"""Loudness normalization against reference meters: pyloudnorm, and a plain BS.1770-4 meter
written here from the standard's K-weighting coefficients at 48 kHz; true peak against an
independent 8x FFT oversampling."""

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import lfilter, resample

from ddjax.core.render import RenderConfig, host_listening_render
from ddjax.io.encode import audio_bytes
from ddjax.io.kit import cut
from ddjax.io.loudness import (
    DEFAULT_LUFS,
    integrated_lufs,
    normalize,
    normalize_stems,
    true_peak_db,
)

# ITU-R BS.1770-4, Table 1 and Table 2: the K-weighting filter's two biquads at 48 kHz.
SHELF_B = [1.53512485958697, -2.69169618940638, 1.19839281085285]
SHELF_A = [1.0, -1.69065929318241, 0.73248077421585]
HIGHPASS_B = [1.0, -2.0, 1.0]
HIGHPASS_A = [1.0, -1.99004745483398, 0.99007225036621]


def bs1770_lufs(x, sr=48000):
    """Integrated loudness of a mono signal at 48 kHz, BS.1770-4 written out: K-weighting,
    400 ms blocks every 100 ms, -0.691 + 10 log10(mean square), the -70 LUFS absolute gate,
    then the gate 10 LU under the loudness of the blocks above it."""
    assert sr == 48000
    y = lfilter(HIGHPASS_B, HIGHPASS_A, lfilter(SHELF_B, SHELF_A, np.asarray(x, float)))
    size, hop = int(0.4 * sr), int(0.1 * sr)
    power = np.array([np.mean(y[i:i + size] ** 2)
                      for i in range(0, len(y) - size + 1, hop)])
    loud = -0.691 + 10 * np.log10(power)
    above = power[loud > -70]
    gate = -0.691 + 10 * np.log10(above.mean()) - 10
    return -0.691 + 10 * np.log10(power[(loud > -70) & (loud > gate)].mean())


def sine(amplitude_db, seconds=5.0, sr=48000, hz=997.0):
    t = np.arange(int(seconds * sr)) / sr
    return (10 ** (amplitude_db / 20) * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_the_reference_meter_reads_the_standards_calibration_tone():
    """BS.1770: a full-scale 997 Hz sine reads -3.01 LUFS (mono), on the plain meter and on
    ours, at 48 and 44.1 kHz."""
    assert bs1770_lufs(sine(0.0)) == pytest.approx(-3.01, abs=0.02)
    for sr in (48000, 44100):
        assert integrated_lufs(sine(0.0, sr=sr), sr) == pytest.approx(-3.01, abs=0.02)


@pytest.mark.parametrize("target", [-30.0, DEFAULT_LUFS, -16.0, -14.0])
def test_a_sine_reaches_the_target_on_both_meters(target):
    """A 997 Hz sine at -20 dBFS (-23.01 LUFS): normalized, within 0.1 LU of the target as
    pyloudnorm and as the plain reference measure it; a sine's gain is exact."""
    x = sine(-20.0)
    y = normalize(x, 48000, target)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert pyloudnorm.Meter(48000).integrated_loudness(y) == pytest.approx(target, abs=0.1)
    assert bs1770_lufs(y) == pytest.approx(target, abs=0.1)
    assert y[1000] / x[1000] == pytest.approx(10 ** ((target + 23.01) / 20), rel=3e-3)


def test_a_target_the_peak_cannot_reach_stops_at_minus_one_dbtp():
    """Full scale is -3 LUFS for a sine: a -2 LUFS target would need a peak over 0 dBFS,
    so the gain stops where the true peak is -1 dBTP (a sine's peak is its amplitude)."""
    y = normalize(sine(-20.0), 48000, -2.0)
    assert -1.02 <= 20 * np.log10(np.abs(y).max()) <= -1.0


def random_loops(kit, n, seed):
    """``n`` random 4-track loops of ``kit`` at 120 BPM: (listening render, 1-bar loop)."""
    config = RenderConfig()
    bar_config = RenderConfig(repeats=3, tail_seconds=0.0)
    audio, rng = np.asarray(kit.audio), np.random.default_rng(seed)
    loops = []
    for _ in range(n):
        ids = rng.choice(len(audio), 4, replace=False)
        grid = rng.random((4, 16)) < rng.uniform(0.1, 0.5, (4, 1))
        grid[:, 0] |= ~grid.any(axis=1)
        rows = cut(audio[ids], config.bar_samples, kit.sr)
        listening = host_listening_render(rows, grid, None, config)
        # Bar 2 of three: the steady-state bar, with the tails of bar 1 wrapped in.
        bar = host_listening_render(rows, grid, None, bar_config)[
            config.bar_samples:2 * config.bar_samples]
        loops.append((listening, bar))
    return loops


def periodic_true_peak_db(bar, factor=32):
    """The loop's peak as it repeats, oversampled ``factor`` times by FFT (band-limited
    periodic interpolation: the bar is one period): a grid 4x as fine as ours, with no
    refinement between its points."""
    return 20 * np.log10(np.abs(resample(np.asarray(bar, float), factor * len(bar))).max())


def test_sixteen_random_loops_come_out_level(bundled_kit):
    """16 random loops of the bundled kit: previews and 1-bar loops (as they repeat, 4x)
    all within 0.5 LU of each other (pyloudnorm), from a spread of many LU before."""
    meter = pyloudnorm.Meter(bundled_kit.sr)
    loops = random_loops(bundled_kit, 16, seed=0)
    before = [meter.integrated_loudness(x) for x, _ in loops]
    previews = [meter.integrated_loudness(normalize(x, bundled_kit.sr)) for x, _ in loops]
    bars = [meter.integrated_loudness(np.tile(normalize(b, bundled_kit.sr, looping=True), 4))
            for _, b in loops]
    assert max(before) - min(before) > 5.0
    assert max(previews) - min(previews) < 0.5 and max(bars) - min(bars) < 0.5
    assert np.median(previews) == pytest.approx(DEFAULT_LUFS, abs=0.1)
    assert np.median(bars) == pytest.approx(DEFAULT_LUFS, abs=0.1)


@pytest.mark.parametrize("target", [DEFAULT_LUFS, -10.0])
def test_a_normalized_loop_stays_under_minus_one_dbtp(bundled_kit, target):
    """At the default and at a target most loops cannot reach (-10 LUFS), every 1-bar loop
    peaks at or under -1 dBTP by a 32x oversampling (FFT, as the loop repeats), and every
    preview by 16x FFT oversampling of the preview followed by silence."""
    for listening, bar in random_loops(bundled_kit, 8, seed=1):
        looped = normalize(bar, bundled_kit.sr, target, looping=True)
        assert periodic_true_peak_db(looped) <= -1.0
        preview = normalize(listening, bundled_kit.sr, target)
        padded = np.concatenate([preview, np.zeros(len(preview), np.float32)])  # no wrap
        assert periodic_true_peak_db(padded, 16) <= -1.0


def test_the_true_peak_finds_what_lies_between_the_samples():
    """A sine at a quarter of the rate, sampled 45 degrees off its crests: every sample is
    at 0.707 of its amplitude (-3 dB), and the true peak is the amplitude (0 dBTP)."""
    n = np.arange(4800)
    x = np.sin(2 * np.pi * n / 4 + np.pi / 4)
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_db(x, 48000, looping=True) == pytest.approx(0.0, abs=0.05)


def test_a_two_second_bar_is_measured_as_it_loops(bundled_kit):
    """A 2 s bar (120 BPM) repeated 4x: the meter's 400 ms blocks see the loop as it
    plays; one bar alone reads within a fraction of a LU of that."""
    meter = pyloudnorm.Meter(bundled_kit.sr)
    _, bar = random_loops(bundled_kit, 1, seed=2)[0]
    assert len(bar) == 88200
    y = normalize(bar, bundled_kit.sr, -20.0, looping=True)
    assert meter.integrated_loudness(np.tile(y, 4)) == pytest.approx(-20.0, abs=0.1)
    assert meter.integrated_loudness(y) == pytest.approx(-20.0, abs=1.0)


def test_off_silence_and_stems():
    """None (``--loudness off``): the very same bytes; silence: unchanged; stems: one gain,
    the one their sum gets, so they still sum to the normalized mix."""
    rng = np.random.default_rng(3)
    x = (0.1 * rng.standard_normal((2, 48000))).astype(np.float32)
    assert audio_bytes(normalize(x[0], 48000, None), 48000) == audio_bytes(x[0], 48000)
    silence = np.zeros(48000, np.float32)
    assert np.array_equal(normalize(silence, 48000, -14.0), silence)
    stems = normalize_stems(x, 48000, -20.0)
    np.testing.assert_allclose(stems.sum(axis=0), normalize(x.sum(axis=0), 48000, -20.0),
                               atol=1e-6)
    assert (stems[0] / x[0]).std() < 1e-5  # one gain
