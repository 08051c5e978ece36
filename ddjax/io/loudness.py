"""Loudness stage (host side): the audio people hear and get -> one integrated loudness.

Every loop that is played or written (the listening render, its WAV/FLAC, the one-bar loop
file, an audition) is scaled by one gain so that its integrated loudness (ITU-R BS.1770-4:
K-weighting, 400 ms blocks with 75 % overlap, the -70 LUFS absolute and -10 LU relative
gates; measured by ``pyloudnorm`` with the filter that reproduces the standard's
coefficients at 48 kHz, its "DeMan" class: a full-scale 997 Hz sine reads -3.01 LUFS) is
``target_lufs``, unless that gain would push its true peak above ``TRUE_PEAK_DB`` (-1
dBTP): then the largest gain that keeps it there.
There is no limiter or compressor: the result is the raw mix times one number, so a loop
keeps its dynamics, and ``--loudness off`` gives the raw mix itself.

The critic never hears this: its features (``ddjax.core.features``) are computed from the
render's own levels (``ddjax.core.render``), so what the critic learns does not depend on
the loudness target.

- True peak: the largest magnitude of the signal oversampled ``OVERSAMPLE`` times, in dB
  relative to full scale (dBTP), by band-limited (FFT) interpolation, as
  ``scipy.signal.resample`` (in single precision). BS.1770-4 Annex 2 asks for at least 4x with a polyphase
  filter; on the bundled kit, whose samples reach close to 22 kHz, ``resample_poly``'s
  default 4x filter read loops up to 1.25 dB under their band-limited peak, 4x FFT up to
  0.24 dB and 8x FFT up to 0.06 dB under it. So: 8x FFT, then each local maximum of the
  8x grid within ``REFINE_DB`` of its largest refined to the crest of the sinusoid
  through it and its two neighbours (the peak between grid points). That reads within
  0.002 dB of a 64x FFT grid (48 random loops); the gain aims ``PEAK_MARGIN_DB`` under
  the ceiling to cover it.
- A loop that repeats (``looping=True``: a one-bar loop file, an audition of whole bars)
  is measured as it plays: its loudness on the bar repeated ``LOOP_REPEATS`` times, so the
  400 ms gating blocks see the wrap-around (a bar is 1.2 to 4 s), and its true peak on the
  periodic signal (the FFT's own assumption), so the join from last to first sample
  counts. Other audio is measured with silence after it.
- Silence (no block above the absolute gate) and audio shorter than one 400 ms block
  (and not looping) are returned as they are.

Audio is ``float[..., samples]``, mono, in [-1, 1]; leading axes are loops, each with its
own gain. Sample rates are in Hz.
"""

from __future__ import annotations

import numpy as np

DEFAULT_LUFS = -23.0
"""The default target, in LUFS (integrated, BS.1770): EBU R128's programme loudness, the
standard whose true-peak ceiling (-1 dBTP) is ours.

Streaming services play at about -14 LUFS and drum loops are often mixed hot, but this
stage has no limiter: the true peak must stay at or below -1 dBTP with the mix unchanged,
so a loop reaches a target T only if its peak-to-loudness ratio (true peak minus
integrated loudness, PLR) is at most -1 - T. A drum loop's PLR is high, since most of its
energy is in short hits: over 300 random 4-track previews of the bundled kit at 120 BPM
its median is 15.7 dB, and it is above 13, 15, 19 and 22 dB for 72 %, 58 %, 8 % and 1 %
of them. At -14 or -16 LUFS most loops would stop at the ceiling short of the target and
loops would again differ in level; at -23 LUFS 99 % reach it, so loops sit level with one
another, with the headroom a producer expects of a loop to mix. ``--loudness LUFS``
picks another target (e.g. -14 to hear them at streaming level, the densest loops
reaching it), ``--loudness off`` none."""

TRUE_PEAK_DB = -1.0  # dBTP: the ceiling of every normalized loop
PEAK_MARGIN_DB = 0.01  # the true-peak reading's error, and more
OVERSAMPLE = 8  # BS.1770-4 Annex 2: at least 4x; see the module docstring
REFINE_DB = 0.2  # grid maxima this close to the largest are refined (8x under-reads less)
GUARD_SAMPLES = 4096  # silence after audio that does not loop, before the FFT wraps it
LOOP_REPEATS = 4  # a looping bar is measured repeated this many times
BLOCK_SECONDS = 0.4  # BS.1770's gating block


def _meter(sr: int):
    import pyloudnorm  # imported here: the CLI starts without scipy's import time
    return pyloudnorm.Meter(sr, filter_class="DeMan", block_size=BLOCK_SECONDS)


def integrated_lufs(audio: np.ndarray, sr: int, *, looping: bool = False) -> float:
    """The integrated loudness of one mono signal ``float[samples]``, in LUFS (-inf for
    silence); with ``looping``, of the signal repeated ``LOOP_REPEATS`` times (and at least
    one gating block long)."""
    x = np.asarray(audio, np.float64)
    if looping:
        repeats = max(LOOP_REPEATS, int(np.ceil(BLOCK_SECONDS * sr / max(len(x), 1))))
        x = np.tile(x, repeats)
    if len(x) < BLOCK_SECONDS * sr or not np.any(x):
        return float("-inf")
    return float(_meter(sr).integrated_loudness(x))


def _refined_peak(up: np.ndarray) -> float:
    """The largest value of a smooth periodic signal's magnitude, ``up`` (``float[n]``,
    sampled finely): each local maximum near the largest, replaced by the crest of the
    sinusoid through it and its two neighbours (exact for one sinusoid: with l, c, r
    equally spaced samples of A cos(w t + p), cos(w) = (l + r) / 2c and A^2 = c^2 +
    ((r - l) / (2 sin w))^2)."""
    if not len(up):
        return 0.0
    top = float(up.max())
    near = np.flatnonzero(up >= top * 10.0 ** (-REFINE_DB / 20.0))  # few: the loudest
    n = len(up)
    l, c, r = (up[(near - 1) % n].astype(np.float64), up[near].astype(np.float64),
               up[(near + 1) % n].astype(np.float64))
    crest_of = (c >= l) & (c >= r)  # the local maxima among them
    l, c, r = l[crest_of], c[crest_of], r[crest_of]
    cos_w = np.clip((l + r) / (2.0 * c), -1.0, 1.0 - 1e-12)
    crest = np.sqrt(c ** 2 + ((r - l) / (2.0 * np.sqrt(1.0 - cos_w ** 2))) ** 2)
    return float(max(top, np.max(crest, initial=0.0)))


def _oversampled(x: np.ndarray, factor: int) -> np.ndarray:
    """``x`` (one period, float32) at ``factor`` times its rate by band-limited (FFT)
    interpolation: ``scipy.signal.resample``'s result, in single precision (its rounding,
    about 1e-7 of the peak, is 1e-6 dB), which is 2.5 times quicker."""
    from scipy.fft import irfft, rfft
    n = len(x)
    spectrum = rfft(x)
    if n % 2 == 0:  # the Nyquist bin is split between the two halves of the new spectrum
        spectrum[-1] *= 0.5
    padded = np.zeros(factor * n // 2 + 1, spectrum.dtype)
    padded[:len(spectrum)] = spectrum
    return irfft(padded, factor * n) * np.float32(factor)


def true_peak_db(audio: np.ndarray, sr: int, *, looping: bool = False) -> float:
    """The true peak of one mono signal ``float[samples]``, in dBTP: its largest magnitude
    after ``OVERSAMPLE``-times FFT oversampling, refined between grid points (-inf for
    silence). With ``looping``, of the
    signal as it repeats (one period of it). ``sr`` is the rate the signal is at; the peak
    does not depend on it."""
    from scipy.fft import next_fast_len
    x = np.asarray(audio, np.float32)
    if not looping:  # silence after it, so the FFT's wrap-around joins nothing
        x = np.concatenate([x, np.zeros(next_fast_len(len(x) + GUARD_SAMPLES, real=True)
                                        - len(x), np.float32)])
    up = np.abs(_oversampled(x, OVERSAMPLE)) if len(x) else x
    peak = max(_refined_peak(up), float(np.max(np.abs(x), initial=0.0)))
    return 20.0 * np.log10(peak) if peak > 0.0 else float("-inf")


def loudness_gain(audio: np.ndarray, sr: int, target_lufs: float, *,
                  looping: bool = False) -> float:
    """The linear gain ``normalize`` applies to one mono signal ``float[samples]``:
    ``10 ** ((target_lufs - L) / 20)``, L its integrated loudness, or less where that
    would put its true peak above ``TRUE_PEAK_DB``; 1 for silence."""
    lufs = integrated_lufs(audio, sr, looping=looping)
    if not np.isfinite(lufs):
        return 1.0
    gain_db = target_lufs - lufs
    peak_db = true_peak_db(audio, sr, looping=looping)
    if np.isfinite(peak_db):
        gain_db = min(gain_db, TRUE_PEAK_DB - PEAK_MARGIN_DB - peak_db)
    return float(10.0 ** (gain_db / 20.0))


def normalize(audio: np.ndarray, sr: int, target_lufs: float | None = DEFAULT_LUFS, *,
              looping: bool = False) -> np.ndarray:
    """``audio`` (``float[..., samples]``, each row a loop) at ``target_lufs`` integrated
    loudness with its true peak at most ``TRUE_PEAK_DB``, one gain per row
    (``loudness_gain``), in ``audio``'s dtype. ``target_lufs`` None: ``audio`` unchanged
    (the raw mix, ``--loudness off``). ``looping``: each row is a loop that repeats."""
    audio = np.asarray(audio)
    if target_lufs is None:
        return audio
    rows = audio.reshape(-1, audio.shape[-1]) if audio.ndim else audio.reshape(1, 1)
    gains = np.array([loudness_gain(row, sr, target_lufs, looping=looping) for row in rows])
    out = rows.astype(np.float64) * gains[:, None]
    return out.reshape(audio.shape).astype(audio.dtype, copy=False)


def normalize_stems(stems: np.ndarray, sr: int, target_lufs: float | None = DEFAULT_LUFS,
                    ) -> np.ndarray:
    """One loop's stems (``float[tracks, samples]``, summing to its listening render) all
    scaled by the gain that ``normalize`` gives their sum, so they still sum to the mix as
    it is heard and written. ``target_lufs`` None: unchanged."""
    stems = np.asarray(stems)
    if target_lufs is None:
        return stems
    gain = loudness_gain(stems.astype(np.float64).sum(axis=0), sr, target_lufs)
    return (stems.astype(np.float64) * gain).astype(stems.dtype, copy=False)
