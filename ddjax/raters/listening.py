"""What a simulated listener measures in a bar: the zoo's audio features.

Features of the bar (``FEATURES`` gives each one with its unit). Spectral features come
from one rfft of the whole bar. Time-position features come from one short-time spectrum
of ``3 * n_steps`` Hann frames (2048 samples at 120 BPM, shorter at fast tempi): at each
step's onset, half a step later, and just before the onset. The onset strength of a step
in a band is the rise of the frame's RMS in that band from just before the onset to the
onset. A rating costs about 2-3 ms on a 2-s bar; ``audio_features`` and
``ZooUser.values_of`` rate many loops for many users from one feature pass.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ddjax.core.render import RenderConfig
from ddjax.raters.users import _bar

LOW_HZ = 150.0  # kicks, low toms, 808 bass
HIGH_HZ = 5000.0  # hats, cymbals, shakers
AIR_HZ = 8000.0  # where harsh noise lives
TONAL_BAND_HZ = (100.0, 5000.0)
FLATNESS_BAND_HZ = (100.0, 16000.0)
PEAK_BINS = 5  # "tonal" energy: the strongest bins of a frame
MAX_FRAME_SAMPLES = 2048
CHUNK_LOOPS = 32  # loops per batch of frames, to bound memory

FEATURES: dict[str, str] = {
    "centroid_hz": "spectral centroid of the bar, in Hz",
    "low_share": "share of the bar's energy below 150 Hz (0-1)",
    "high_share": "share of the bar's energy above 5 kHz (0-1)",
    "mid_share": "share of the bar's energy between 150 Hz and 5 kHz (0-1)",
    "rms_db": "RMS level of the bar, in dBFS",
    "flatness": "spectral flatness over 100 Hz-16 kHz of the frames at the onsets and half"
                " steps, energy-weighted (0-1: white noise ~0.56, a sine ~0)",
    "harsh": "share of energy above 8 kHz times its spectral flatness over 8-16 kHz (0-1):"
             " loud noise-like top end",
    "ringing_db": "energy of the 5 strongest 100 Hz-5 kHz bins half a step after each onset,"
                  " relative to the 100 Hz-5 kHz energy at the onsets, in dB (ringing tones)",
    "high_tail_db": "energy above 5 kHz half a step after each onset relative to that at the"
                    " onsets, in dB (washing cymbals)",
    "low_tail_db": "energy below 150 Hz half a step after each onset relative to that at the"
                   " onsets, in dB (booming tails)",
    "density": "onset strength summed over the steps over the strongest step's, in steps"
               " (effective number of strong hits, 0-16)",
    "beat_low": "share of the below-150 Hz onset strength on the quarter notes (steps 0, 4,"
                " 8, 12) (0-1)",
    "four_floor": "below-150 Hz onset strength on each quarter note over the strongest step's,"
                  " averaged over the four (0-1: an even kick on every beat is 1)",
    "downbeat": "share of the onset strength on step 0 (0-1)",
    "backbeat": "share of the 150 Hz-5 kHz onset strength on the backbeat (steps 4, 12) (0-1)",
    "offbeat_high": "share of the above-5 kHz onset strength on the odd 8ths (steps 2, 6, 10,"
                    " 14) (0-1)",
    "syncopation": "onset-strength-weighted metrical weakness of the steps (0 on the downbeat,"
                   " 1/4 on step 8, 1/2 on 4 and 12, 3/4 on the other 8ths, 1 on odd 16ths)",
}
FEATURE_NAMES = tuple(FEATURES)

Values = dict[str, np.ndarray]  # feature name -> float[n], raw or z-scored


def _frame_samples(render: RenderConfig) -> int:
    # The longest power of two within half a step: an onset frame ends before the next step.
    return int(min(MAX_FRAME_SAMPLES, 2 ** np.floor(np.log2(render.step_samples / 2))))


def _frame_starts(render: RenderConfig) -> np.ndarray:
    """int[3, steps]: starts of the frames at each step's onset, half a step later, and
    just before the onset.

    An onset frame starts a quarter window early so that a hit on the step sits where the
    Hann window is already at half weight; the "before" frame ends there.
    """
    width = _frame_samples(render)
    onsets = render.step_offsets - width // 4
    half = onsets + int(render.step_samples / 2)
    return np.stack([onsets, half, onsets - width])


def _step_weakness(n_steps: int) -> np.ndarray:
    """float[steps]: 0 on the downbeat, rising by 1/log2(n_steps) per metrical halving."""
    levels = int(np.log2(n_steps))
    depth = [levels - min((s & -s).bit_length() - 1, levels) if s else 0
             for s in range(n_steps)]
    return np.array(depth, np.float64) / levels


class _Tables(NamedTuple):
    index: np.ndarray  # int[3 * steps, width]: sample indices of every frame, wrapped
    window: np.ndarray  # float[width] Hann
    bar_bands: np.ndarray  # float[bar bins, 5]: Hz, <150 Hz, >=5 kHz, >=8 kHz, all
    bands: np.ndarray  # float[frame bins, 4] masks: low, mid, high, all
    flat: slice  # frame bins of the flatness band
    air: slice  # frame bins of 8-16 kHz
    tonal: slice  # frame bins of the tonal band
    weakness: np.ndarray  # float[steps]
    beats: np.ndarray  # bool[steps]
    backbeat: np.ndarray
    offbeat: np.ndarray


def _bins(freqs: np.ndarray, low_hz: float, high_hz: float) -> slice:
    return slice(int(np.searchsorted(freqs, low_hz)), int(np.searchsorted(freqs, high_hz)))


def _tables(render: RenderConfig) -> _Tables:
    width, sr, n = _frame_samples(render), render.sr, render.n_steps
    if n % 8 or n & (n - 1):
        raise ValueError(f"zoo users need a bar of 8, 16, 32... steps, got {n}")
    starts = _frame_starts(render).reshape(-1)
    index = (starts[:, None] + np.arange(width)[None, :]) % render.bar_samples
    f = np.fft.rfftfreq(width, 1.0 / sr)
    bands = np.stack([(f >= 20.0) & (f < LOW_HZ), (f >= LOW_HZ) & (f < HIGH_HZ), f >= HIGH_HZ,
                      f >= 20.0], axis=1).astype(np.float64)
    fb = np.fft.rfftfreq(render.bar_samples, 1.0 / sr)
    bar_bands = np.stack([fb, fb < LOW_HZ, fb >= HIGH_HZ, fb >= AIR_HZ, np.ones_like(fb)],
                         axis=1).astype(np.float64)
    steps = np.arange(n)
    return _Tables(index, np.hanning(width + 1)[:-1], bar_bands, bands,
                   _bins(f, *FLATNESS_BAND_HZ), _bins(f, AIR_HZ, 16000.0),
                   _bins(f, *TONAL_BAND_HZ), _step_weakness(n), steps % (n // 4) == 0,
                   (steps == n // 4) | (steps == 3 * n // 4), steps % (n // 4) == n // 8)


_TABLE_CACHE: dict[RenderConfig, _Tables] = {}


def _cached_tables(render: RenderConfig) -> _Tables:
    if render not in _TABLE_CACHE:
        _TABLE_CACHE[render] = _tables(render)
    return _TABLE_CACHE[render]


def _power(x: np.ndarray) -> np.ndarray:
    spectrum = np.fft.rfft(x, axis=-1)
    return np.square(spectrum.real) + np.square(spectrum.imag)


def _flatness(power: np.ndarray) -> np.ndarray:
    """Geometric over arithmetic mean of ``power`` along its last axis."""
    p = power + 1e-30
    return np.exp(np.mean(np.log(p), axis=-1)) / np.mean(p, axis=-1)


def _weighted_mean(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return np.sum(x * weight, axis=-1) / np.maximum(np.sum(weight, axis=-1), 1e-30)


def _share(x: np.ndarray, mask: np.ndarray, floor: np.ndarray) -> np.ndarray:
    return np.sum(x[..., mask], axis=-1) / (np.sum(x, axis=-1) + floor)


def _db(num: np.ndarray, den: np.ndarray, floor: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10((num + floor) / (den + floor))


def _chunk_features(bars: np.ndarray, t: _Tables) -> Values:
    n_loops, n_steps = bars.shape[0], t.weakness.size
    # Whole-bar spectrum: the spectral-shape features.
    sums = _power(bars) @ t.bar_bands  # [loops, 5]: Hz-weighted, low, high, air, all
    total = np.maximum(sums[:, 4], 1e-30)
    rms = np.sqrt(np.mean(np.square(bars), axis=-1))
    # Short-time spectra around the steps: the time-position features.
    fpower = _power(np.take(bars, t.index, axis=1) * t.window).reshape(n_loops, 3, n_steps, -1)
    energy = fpower @ t.bands  # [loops, 3, steps, band]: low, mid, high, all
    onset, half, before = energy[:, 0], energy[:, 1], energy[:, 2]
    sounding = fpower[:, :2].reshape(n_loops, 2 * n_steps, -1)  # onsets and half steps
    floor = 1e-9 * np.sum(onset[..., 3] + half[..., 3], axis=-1) + 1e-30  # "nothing there"
    amp_floor = np.sqrt(floor)
    strength = np.maximum(np.sqrt(onset) - np.sqrt(before), 0.0)  # [loops, steps, band]
    low, mid, high, every = (strength[..., b] for b in range(4))
    air = sounding[..., t.air]
    tail_tonal = fpower[:, 1, :, t.tonal]  # [loops, steps, bins]
    peaks = np.sum(np.partition(tail_tonal, -PEAK_BINS, axis=-1)[..., -PEAK_BINS:], axis=(-2, -1))
    onset_tonal = np.sum(fpower[:, 0, :, t.tonal], axis=(-2, -1))
    return {
        "centroid_hz": sums[:, 0] / total,
        "low_share": sums[:, 1] / total,
        "high_share": sums[:, 2] / total,
        "mid_share": 1.0 - (sums[:, 1] + sums[:, 2]) / total,
        "rms_db": 20.0 * np.log10(rms + 1e-10),
        "flatness": _weighted_mean(_flatness(sounding[..., t.flat]),
                                   np.sum(sounding[..., t.flat], axis=-1)),
        "harsh": sums[:, 3] / total * _weighted_mean(_flatness(air), np.sum(air, axis=-1)),
        "ringing_db": _db(peaks, onset_tonal, floor),
        "high_tail_db": _db(half[..., 2].sum(-1), onset[..., 2].sum(-1), floor),
        "low_tail_db": _db(half[..., 0].sum(-1), onset[..., 0].sum(-1), floor),
        "density": every.sum(axis=-1) / (every.max(axis=-1) + amp_floor),
        "beat_low": _share(low, t.beats, amp_floor),
        "four_floor": np.mean(low[:, t.beats], axis=-1) / (low.max(axis=-1) + amp_floor),
        "downbeat": every[:, 0] / (every.sum(axis=-1) + amp_floor),
        "backbeat": _share(mid, t.backbeat, amp_floor),
        "offbeat_high": _share(high, t.offbeat, amp_floor),
        "syncopation": np.sum(every * t.weakness, axis=-1) / (every.sum(axis=-1) + amp_floor),
    }


def bar_features(bars: np.ndarray, render: RenderConfig = RenderConfig()) -> Values:
    """Every feature of ``FEATURES`` for a batch of steady-state bars.

    Args:
      bars: float[n, bar_samples], one bar each (circular: its end wraps to its start).
      render: the render settings (sr, tempo, steps).

    Returns:
      feature name -> float64[n].
    """
    bars = np.asarray(bars, np.float64)
    if bars.ndim != 2 or bars.shape[1] != render.bar_samples:
        raise ValueError(f"bars must be [n, {render.bar_samples}], got {bars.shape}")
    t = _cached_tables(render)
    chunks = [_chunk_features(bars[i:i + CHUNK_LOOPS], t)
              for i in range(0, bars.shape[0], CHUNK_LOOPS)]
    return {k: np.concatenate([c[k] for c in chunks]) for k in FEATURE_NAMES}


def audio_features(audio: np.ndarray, render: RenderConfig = RenderConfig()) -> Values:
    """``bar_features`` of the second bar of listening renders ``float[n, samples]``."""
    audio = np.asarray(audio)
    return bar_features(_bar(audio.T, render).T, render)
