"""MFCC front end: audio -> the critic's input features.

The transform is torchaudio's ``MFCC`` as the original DeepDrummer used it, with the
mel band edges corrected for 44.1 kHz audio (the original kept torchaudio's 16 kHz
default). It equals ``librosa.feature.mfcc(y, sr=44100, n_mfcc=60, n_fft=400,
hop_length=200, window='hann', center=True, pad_mode='reflect', n_mels=128, fmin=0,
fmax=22050, htk=True, norm=None, power=2, dct_type=2, norm='ortho', top_db=80)``
with ``power_to_db(ref=1.0, amin=1e-10)``.

References: Davis & Mermelstein (1980) for MFCCs; Young et al., *The HTK Book*, for
the mel scale ``mel = 2595 log10(1 + f / 700)``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ddjax.core.batching import in_chunks


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Parameters of the MFCC transform.

    Attributes:
      sr: sample rate of the audio, in Hz.
      n_mfcc: number of cepstral coefficients kept.
      n_fft: FFT size and window length, in samples.
      hop_length: hop between frames, in samples.
      n_mels: number of triangular mel bands.
      fmin: lower edge of the lowest band, in Hz.
      fmax: upper edge of the highest band, in Hz (Nyquist at 44.1 kHz).
      amin: floor on power before the log.
      top_db: dynamic range kept below each clip's peak, in dB.
    """

    sr: int = 44100
    n_mfcc: int = 60
    n_fft: int = 400
    hop_length: int = 200
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float = 22050.0
    amin: float = 1e-10
    top_db: float = 80.0

    def n_frames(self, n_samples: int) -> int:
        """Frames in a centred STFT of ``n_samples`` samples."""
        return 1 + n_samples // self.hop_length


def hz_to_mel(f_hz):
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f_hz, np.float64) / 700.0)


def mel_to_hz(mel):
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """Triangular HTK mel filters without area normalisation.

    Returns:
      float64[n_fft // 2 + 1, n_mels]: weight of each FFT bin in each band.
    """
    fft_hz = np.linspace(0.0, config.sr / 2, config.n_fft // 2 + 1)
    edges_hz = mel_to_hz(
        np.linspace(hz_to_mel(config.fmin), hz_to_mel(config.fmax), config.n_mels + 2))
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    return np.maximum(0.0, np.minimum(rising, falling)).T


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II as a matrix, so ``x @ dct_matrix(n, k)`` keeps k coefficients.

    Returns:
      float64[n_in, n_out].
    """
    n = np.arange(n_in)[:, None]
    k = np.arange(n_out)[None, :]
    basis = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    basis[:, 0] /= np.sqrt(2.0)
    return basis


def periodic_hann(n: int) -> np.ndarray:
    """Hann window for spectral analysis (``scipy.signal.get_window('hann', n)``)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


_GROUP_OVERHEAD = 1000  # cost of one more matmul in _band_groups, in multiply-adds


def _band_groups(weights: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Splits the bands of a banded ``[bins, bands]`` matrix into runs of consecutive
    bands, each computed from the bins it touches only (fewest multiply-adds, by dynamic
    programming). Returns ``(first_bin, end_bin, first_band, end_band)`` per run."""
    n_bins, n_bands = weights.shape
    nonzero = weights != 0
    lo = np.array([np.argmax(col) if col.any() else n_bins for col in nonzero.T])
    hi = np.array([n_bins - np.argmax(col[::-1]) if col.any() else 0 for col in nonzero.T])

    def span(a, b):
        first, end = lo[a:b].min(), hi[a:b].max()
        return int(first), int(max(first, end))

    best = [0] + [None] * n_bands
    start = [0] * (n_bands + 1)
    for b in range(1, n_bands + 1):
        for a in range(b):
            first, end = span(a, b)
            cost = best[a] + (b - a) * (end - first) + _GROUP_OVERHEAD
            if best[b] is None or cost < best[b]:
                best[b], start[b] = cost, a
    groups, b = [], n_bands
    while b:
        a = start[b]
        groups.append((*span(a, b), a, b))
        b = a
    return groups[::-1]


def _mel_power_rows(audio: jax.Array, config: FeatureConfig) -> jax.Array:
    """``mel_power`` of ``float32[n, samples]``: ``float32[n, frames, n_mels]``."""
    n_fft, hop = config.n_fft, config.hop_length
    n_samples = audio.shape[-1]
    n_frames = config.n_frames(n_samples)
    pad = n_fft // 2
    padded = jnp.pad(audio, ((0, 0), (pad, pad)), mode="reflect")
    window = periodic_hann(n_fft)
    if n_fft == 2 * hop and n_samples % hop == 0:
        # Frames are pairs of consecutive hop-sized blocks: a reshape, no gather.
        blocks = padded.reshape(audio.shape[0], -1, hop)
        frames = jnp.concatenate(
            [blocks[:, :-1, :] * jnp.asarray(window[:hop], audio.dtype),
             blocks[:, 1:, :] * jnp.asarray(window[hop:], audio.dtype)], axis=-1)
    else:
        starts = hop * np.arange(n_frames)[:, None] + np.arange(n_fft)[None, :]
        frames = padded[:, starts] * jnp.asarray(window, audio.dtype)
    spectrum = jnp.fft.rfft(frames, axis=-1)
    power = jnp.square(spectrum.real) + jnp.square(spectrum.imag)
    # The mel filters are narrow bands: project each run of bands from its bins only.
    filters = mel_filterbank(config)
    return jnp.concatenate(
        [power[..., first:end] @ jnp.asarray(filters[first:end, a:b], audio.dtype)
         if end > first else jnp.zeros(power.shape[:-1] + (b - a,), audio.dtype)
         for first, end, a, b in _band_groups(filters)], axis=-1)


def mfcc_from_mel(mel_power: jax.Array, config: FeatureConfig = FeatureConfig()) -> jax.Array:
    """The MFCC of a mel power spectrogram: float32[..., frames, n_mels] ->
    float32[..., n_mfcc, frames] (dB with the ``top_db`` floor below each clip's peak, then
    the orthonormal DCT)."""
    # max(10 log10(max(p, amin)), peak_db - top_db) = 10 log10(max(p, floor)): the clamp
    # moves before the log, and the dB scale into the DCT.
    peak = jnp.max(mel_power, axis=(-2, -1), keepdims=True)
    floor = jnp.maximum(peak * (10.0 ** (-config.top_db / 10.0)), config.amin)
    log_mel = jnp.log(jnp.maximum(mel_power, floor))
    dct = (10.0 / np.log(10.0)) * dct_matrix(config.n_mels, config.n_mfcc)
    return jnp.einsum("tm,...fm->...tf", jnp.asarray(dct.T, mel_power.dtype), log_mel)


def window_responses(config: FeatureConfig = FeatureConfig()) -> tuple[np.ndarray, np.ndarray]:
    """What a DC offset and white noise add to the mel power, per unit.

    Returns:
      ``(dc, noise)``, float64[n_mels] each: the mel power of a constant 1 (window energy in
      bins 0 and 1 of the periodic Hann window's spectrum), and the expected mel power of
      white noise of variance 1 (the window's energy ``sum(w^2)`` in every bin).
    """
    window = periodic_hann(config.n_fft)
    filters = mel_filterbank(config)
    dc_bins = np.abs(np.fft.rfft(window)) ** 2
    return dc_bins @ filters, np.sum(window ** 2) * filters.sum(axis=0)


def mel_power(audio: jax.Array, config: FeatureConfig = FeatureConfig()) -> jax.Array:
    """The mel power spectrogram the MFCC is computed from.

    Args:
      audio: float32[..., samples] mono audio at ``config.sr``.

    Returns:
      float32[..., frames, n_mels]; ``mfcc(a) == mfcc_from_mel(mel_power(a))``.
    """
    n_samples = audio.shape[-1]
    shape = (config.n_frames(n_samples), config.n_mels)

    def clips(x):  # x: [..., samples]
        return _mel_power_rows(x.reshape(-1, n_samples), config).reshape(x.shape[:-1] + shape)

    return in_chunks(clips, audio, audio.ndim - 1)


def mfcc(audio: jax.Array, config: FeatureConfig = FeatureConfig()) -> jax.Array:
    """MFCCs of a batch of clips.

    Args:
      audio: float32[..., samples] mono audio at ``config.sr``.
      config: the transform's parameters.

    Returns:
      float32[..., n_mfcc, frames] with ``frames = 1 + samples // hop_length``;
      (60, 442) for one 2 s bar at 44.1 kHz.
    """
    n_samples = audio.shape[-1]
    shape = (config.n_mfcc, config.n_frames(n_samples))

    def clips(x):  # x: [..., samples]
        rows = mfcc_from_mel(_mel_power_rows(x.reshape(-1, n_samples), config), config)
        return rows.reshape(x.shape[:-1] + shape)

    return in_chunks(clips, audio, audio.ndim - 1)
