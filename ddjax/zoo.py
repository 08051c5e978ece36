"""A zoo of simulated users for the learning benchmark, split once into TUNE and HELD_OUT.

Like ``ddjax.users``, every zoo user hears ``loop.audio`` (the listening render) and judges
its second bar, the steady state. Each one computes a taste value from the audio features
below and likes the loop when the value exceeds a threshold. The threshold is set on
random loops of the kit the user is used with (``users.calibration_audio``), so that it
likes about 35% of them, as the paper's participants liked 37% of an untrained critic's
loops. Weighted mixtures and interactions combine **standardized** features: each feature
is z-scored with its mean and standard deviation over the same calibration loops.

Kinds of user (``ZooSpec.kind``): ``single`` (one feature, either direction), ``mixture``
(a weighted sum of z-scores), ``interaction`` (AND-like ``min``, OR-like ``max`` or XOR-like
products of z-scores), ``dislike`` (hates one kind of sound), ``rhythm`` (where in the bar
the hits fall) and ``noisy`` (a clean user's twin that flips 10-20% of its ratings).

The split was fixed before anything was tuned, by one rule: within each kind, clean users
alternate TUNE, HELD_OUT, TUNE, ... in the order ``ZOO`` lists them, where a mirror pair
(one taste, both directions: ``MIRROR_PAIRS``) counts as one entry, so that no held-out
user is a tuned one turned around; a noisy twin goes to its clean twin's half, so no
held-out taste is ever seen while tuning. The lookalikes of the outside raters of issue 9
(warm and sparse, bright and busy, low end on the quarter notes, its noisy twin) were
listed so that they fall in HELD_OUT. **HELD_OUT is never used for tuning**: tune
defaults on TUNE only, and report HELD_OUT as the result.

Features of the bar (``FEATURES`` gives each one with its unit). Spectral features come
from one rfft of the whole bar. Time-position features come from one short-time spectrum
of ``3 * n_steps`` Hann frames (2048 samples at 120 BPM, shorter at fast tempi): at each
step's onset, half a step later, and just before the onset. The onset strength of a step
in a band is the rise of the frame's RMS in that band from just before the onset to the
onset. A rating costs about 2-3 ms on a 2-s bar; ``audio_features`` and
``ZooUser.values_of`` rate many loops for many users from one feature pass.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Callable, NamedTuple

import numpy as np

from ddjax.kit import Kit
from ddjax.render import RenderConfig
from ddjax.users import LIKE_SHARE, _bar, calibration_audio

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


# --- the zoo ------------------------------------------------------------------------------

Taste = Callable[[Values, Values], np.ndarray]  # (raw, z) -> value float[n]


@dataclasses.dataclass(frozen=True)
class ZooSpec:
    """One simulated user.

    Attributes:
      kind: single, mixture, interaction, dislike, rhythm or noisy.
      taste: one line: what it likes, with units.
      value: ``(raw, z) -> float[n]``: larger is liked more; raw features in their units,
        z the same features z-scored on the calibration loops.
      flip: probability of flipping each rating.
      twin: the clean user a noisy one copies.
    """

    kind: str
    taste: str
    value: Taste
    flip: float = 0.0
    twin: str | None = None


def _single(feature: str, sign: float, taste: str) -> ZooSpec:
    return ZooSpec("single", taste, lambda raw, z: sign * raw[feature])


def _mixture(weights: dict[str, float], taste: str) -> ZooSpec:
    return ZooSpec("mixture", taste, lambda raw, z: sum(w * z[f] for f, w in weights.items()))


def _dislike(feature: str, taste: str) -> ZooSpec:
    return ZooSpec("dislike", taste, lambda raw, z: -raw[feature])


def _rhythm(feature: str, sign: float, taste: str) -> ZooSpec:
    return ZooSpec("rhythm", taste, lambda raw, z: sign * raw[feature])


# Listed in split order: within each kind, entries alternate TUNE, HELD_OUT, TUNE, ...
# where an entry is one user or a mirror pair (one taste, both directions).
_CLEAN: dict[str, ZooSpec] = {
    # single features, both directions
    "shiny": _single("centroid_hz", 1.0, "a high spectral centroid (Hz)"),  # T
    "mellow": _single("centroid_hz", -1.0, "a low spectral centroid (Hz)"),  # T
    "boomy": _single("low_share", 1.0, "much of the energy below 150 Hz (share)"),  # H
    "lean": _single("low_share", -1.0, "little of the energy below 150 Hz (share)"),  # H
    "busy": _single("density", 1.0, "many strong onsets (effective hits per bar)"),  # T
    "minimal": _single("density", -1.0, "few strong onsets (effective hits per bar)"),  # T
    "hissy": _single("flatness", 1.0, "noise-like spectra (spectral flatness, 0-1)"),  # H
    "tonal": _single("flatness", -1.0, "pitched, peaky spectra (spectral flatness, 0-1)"),  # H
    "airy": _single("high_share", 1.0, "much of the energy above 5 kHz (share)"),  # T
    "loud": _single("rms_db", 1.0, "a loud bar (RMS, dBFS)"),  # H
    "soft": _single("rms_db", -1.0, "a quiet bar (RMS, dBFS)"),  # H
    "middy": _single("mid_share", 1.0, "much of the energy between 150 Hz and 5 kHz"
                     " (share)"),  # T
    # weighted mixtures of z-scores (value in standard deviations of the calibration loops)
    "punchy-clean": _mixture({"low_share": 0.5, "downbeat": 0.3, "flatness": -0.2},
                             "low end, a strong one, little noise (z units)"),  # T
    "warm-sparse": _mixture({"centroid_hz": -0.5, "density": -0.5},
                            "dark and few hits (z units)"),  # H
    "bright-busy": _mixture({"centroid_hz": 0.5, "density": 0.5},
                            "bright and many hits (z units)"),  # H
    "heavy": _mixture({"low_share": 0.4, "rms_db": 0.4, "density": 0.2},
                      "loud, low and busy (z units)"),  # T
    "gentle-swing": _mixture({"syncopation": 0.4, "rms_db": -0.3, "harsh": -0.3},
                             "syncopated, quiet and not harsh (z units)"),  # H
    "crisp-groove": _mixture({"high_share": 0.4, "offbeat_high": 0.4, "rms_db": -0.2},
                             "airy off-beat hats, not loud (z units)"),  # T
    # interactions of z-scores
    "bright-if-sparse": ZooSpec("interaction", "bright only when sparse: min(z centroid,"
                                " -z density) (z units)",
                                lambda raw, z: np.minimum(z["centroid_hz"], -z["density"])),
    "dense-if-beat-low": ZooSpec("interaction", "dense only with low end on the beats:"
                                 " min(z density, z beat_low) (z units)",
                                 lambda raw, z: np.minimum(z["density"], z["beat_low"])),
    "loud-and-dark": ZooSpec("interaction", "loud only when dark: min(z rms, -z centroid)"
                             " (z units)",
                             lambda raw, z: np.minimum(z["rms_db"], -z["centroid_hz"])),
    "sync-xor-busy": ZooSpec("interaction", "syncopated and sparse, or straight and busy:"
                             " -z syncopation * z density (z units squared)",
                             lambda raw, z: -z["syncopation"] * z["density"]),
    "hats-with-four": ZooSpec("interaction", "off-beat hats only over a four-on-the-floor:"
                              " min(z offbeat_high, z four_floor) (z units)",
                              lambda raw, z: np.minimum(z["offbeat_high"], z["four_floor"])),
    "backbeat-or-hats": ZooSpec("interaction", "a backbeat or off-beat hats, either will do:"
                                " max(z backbeat, z offbeat_high) (z units)",
                                lambda raw, z: np.maximum(z["backbeat"], z["offbeat_high"])),
    # dislike of one kind of sound: likes unless it is there
    "no-harsh": _dislike("harsh", "likes unless there is harsh noise above 8 kHz (share x"
                         " flatness)"),
    "no-ringing": _dislike("ringing_db", "likes unless tones ring on after the hits (dB)"),
    "no-sizzle": _dislike("high_tail_db", "likes unless cymbals wash on after the hits"
                          " (dB above 5 kHz)"),
    "no-boom-tails": _dislike("low_tail_db", "likes unless the low end booms on after the"
                              " hits (dB below 150 Hz)"),
    # rhythm positions
    "offbeat-hats": _rhythm("offbeat_high", 1.0, "hats on the odd 8ths (share of >5 kHz"
                            " onsets)"),  # T
    "beat-low": _rhythm("beat_low", 1.0, "low end on the quarter notes (share of low-band"
                        " onsets)"),  # H
    "downbeat": _rhythm("downbeat", 1.0, "a strong one (share of onsets on step 0)"),  # T
    "four-floor": _rhythm("four_floor", 1.0, "an even low-end hit on every quarter note"
                          " (0-1)"),  # H
    "backbeat": _rhythm("backbeat", 1.0, "snare-band hits on steps 4 and 12 (share of"
                        " 150 Hz-5 kHz onsets)"),  # T
    "straight": _rhythm("syncopation", -1.0, "hits on strong metrical positions"
                        " (syncopation, 0-1)"),  # H
    "syncopated": _rhythm("syncopation", 1.0, "hits on weak metrical positions"
                          " (syncopation, 0-1)"),  # H
}

MIRROR_PAIRS: tuple[tuple[str, str], ...] = (
    ("shiny", "mellow"), ("boomy", "lean"), ("busy", "minimal"), ("hissy", "tonal"),
    ("loud", "soft"), ("warm-sparse", "bright-busy"), ("straight", "syncopated"))

_NOISY_FLIPS: dict[str, tuple[str, float]] = {  # name: (clean twin, share flipped)
    "shiny-noisy": ("shiny", 0.20),
    "backbeat-noisy": ("backbeat", 0.15),
    "no-harsh-noisy": ("no-harsh", 0.10),
    "beat-low-noisy": ("beat-low", 0.10),
    "warm-sparse-noisy": ("warm-sparse", 0.15),
    "dense-if-beat-low-noisy": ("dense-if-beat-low", 0.20),
}

ZOO: dict[str, ZooSpec] = {
    **_CLEAN,
    **{name: ZooSpec("noisy", f"{_CLEAN[twin].taste}; flips {flip:.0%} of its ratings",
                     _CLEAN[twin].value, flip, twin)
       for name, (twin, flip) in _NOISY_FLIPS.items()},
}
KINDS = ("single", "mixture", "interaction", "dislike", "rhythm", "noisy")

TUNE: tuple[str, ...] = (
    "shiny", "mellow", "busy", "minimal", "airy", "middy",
    "punchy-clean", "heavy", "crisp-groove",
    "bright-if-sparse", "loud-and-dark", "hats-with-four",
    "no-harsh", "no-sizzle",
    "offbeat-hats", "downbeat", "backbeat",
    "shiny-noisy", "backbeat-noisy", "no-harsh-noisy",
)
HELD_OUT: tuple[str, ...] = (  # never used for tuning
    "boomy", "lean", "hissy", "tonal", "loud", "soft",
    "warm-sparse", "bright-busy", "gentle-swing",
    "dense-if-beat-low", "sync-xor-busy", "backbeat-or-hats",
    "no-ringing", "no-boom-tails",
    "beat-low", "four-floor", "straight", "syncopated",
    "beat-low-noisy", "warm-sparse-noisy", "dense-if-beat-low-noisy",
)


# --- calibrated raters --------------------------------------------------------------------

class Calibration(NamedTuple):
    """Features of the calibration loops, and their standardization.

    Attributes:
      raw: feature name -> float[n] over the calibration loops.
      mean: feature name -> mean over them.
      std: feature name -> standard deviation over them (floored).
    """

    raw: Values
    mean: dict[str, float]
    std: dict[str, float]

    def z(self, raw: Values) -> Values:
        return {k: (raw[k] - self.mean[k]) / self.std[k] for k in raw}


def calibrate(audio: np.ndarray, render: RenderConfig = RenderConfig()) -> Calibration:
    """Standardization statistics from listening renders ``float[n, samples]``."""
    raw = audio_features(np.asarray(audio), render)
    return Calibration(raw, {k: float(np.mean(v)) for k, v in raw.items()},
                       {k: max(float(np.std(v)), 1e-12) for k, v in raw.items()})


@dataclasses.dataclass
class ZooUser:
    """A rater: ``user(loop) -> bool`` on a ``session.Loop`` (uses ``loop.audio``).

    Attributes:
      name: its key in ``ZOO``.
      spec: its ``ZooSpec``.
      threshold: likes loops whose taste value exceeds this (the value's units).
      calibration: the standardization it z-scores features with.
      render: the render settings the audio was made with.
      seed: seeds the flips of a noisy user.
    """

    name: str
    spec: ZooSpec
    threshold: float
    calibration: Calibration
    render: RenderConfig = RenderConfig()
    seed: int = 0

    def __post_init__(self):
        self._rng = np.random.default_rng([self.seed, zlib.crc32(self.name.encode())])

    @property
    def flip(self) -> float:
        return self.spec.flip

    def values(self, audio: np.ndarray) -> np.ndarray:
        """Taste values of listening renders ``float[n, samples]``: float[n]."""
        return self.values_of(audio_features(audio, self.render))

    def values_of(self, raw: Values) -> np.ndarray:
        """Taste values from ``audio_features`` computed once for many users: float[n]."""
        return np.asarray(self.spec.value(raw, self.calibration.z(raw)), np.float64)

    def value(self, audio: np.ndarray) -> float:
        """Taste value of one listening render ``float[samples]``."""
        return float(self.values(np.asarray(audio)[None])[0])

    def likes(self, audio: np.ndarray) -> np.ndarray:
        """Clean (unflipped) ratings of listening renders ``float[n, samples]``: bool[n]."""
        return self.values(audio) > self.threshold

    def __call__(self, loop) -> bool:
        liked = self.value(loop.audio) > self.threshold
        if self.spec.flip and self._rng.random() < self.spec.flip:
            liked = not liked
        return bool(liked)


def _calibrated(name: str, calibration: Calibration, seed: int,
                render: RenderConfig) -> ZooUser:
    if name not in ZOO:
        raise KeyError(f"{name!r} is not a zoo user; choose from {', '.join(ZOO)}")
    spec = ZOO[name]
    values = spec.value(calibration.raw, calibration.z(calibration.raw))
    threshold = float(np.quantile(values, 1.0 - LIKE_SHARE))
    return ZooUser(name, spec, threshold, calibration, render, seed)


def make_zoo_user(name: str, kit: Kit, *, seed: int = 0, render: RenderConfig = RenderConfig(),
                  audio: np.ndarray | None = None,
                  calibration: Calibration | None = None) -> ZooUser:
    """A zoo user calibrated to like ~35% of random loops of ``kit``.

    Args:
      name: a key of ``ZOO``.
      kit: the kit the loops come from.
      seed: seeds a noisy user's flips.
      render: render settings.
      audio: precomputed ``users.calibration_audio(kit, render)``, to share between users.
      calibration: precomputed ``calibrate(audio, render)``, cheaper still to share.
    """
    if name not in ZOO:
        raise KeyError(f"{name!r} is not a zoo user; choose from {', '.join(ZOO)}")
    if calibration is None:
        if audio is None:
            audio = calibration_audio(kit, render)
        calibration = calibrate(audio, render)
    return _calibrated(name, calibration, seed, render)


def make_zoo(names, kit: Kit, *, seed: int = 0,
             render: RenderConfig = RenderConfig()) -> dict[str, ZooUser]:
    """Several zoo users, calibrated on one shared set of random loops of ``kit``."""
    calibration = calibrate(calibration_audio(kit, render), render)
    return {name: _calibrated(name, calibration, seed, render) for name in names}
