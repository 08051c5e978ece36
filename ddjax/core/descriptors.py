"""Descriptors stage: MFCC -> a short vector of what a listener hears in a bar.

The taste head (``ddjax.core.head``) reads a loop through these numbers rather than through
the raw MFCC map, so a few ratings are enough to weigh them. They describe the sound
(the level in each of ``n_bands`` mel bands) and the rhythm (the level and the attack in
each band at each of the bar's 16th-note steps), all in dB, recovered from the MFCC by
its inverse DCT (Davis & Mermelstein, 1980: the cepstrum is a smoothed log spectrum):

- ``band level`` [bands]: each band's mean power over the bar;
- ``step level`` [bands, steps]: each band's mean power over each step;
- ``attack`` [bands, steps]: how far each band rises at the start of each step above
  the end of the step before (the bar wraps around), floored at 0 dB;
- ``rhythm`` [4 x bands + 4]: per band, the summed attack and the share of it on the
  quarter notes, on the backbeat (steps 4 and 12) and on the off-beat 8ths; then the
  spectral centroid (in bands), the overall level, the number of steps with a hit, and
  the density: the summed attack over the steps relative to the strongest step's.

Everything is a fixed linear map, a log-sum-exp or a ReLU of the MFCC: cheap beside the
MFCC itself, batched over any leading axes, and differentiable.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ddjax.core.features import FeatureConfig, dct_matrix, hz_to_mel, mel_to_hz

_DB = 10.0 / np.log(10.0)  # dB per neper of power
GROUPS = ("band level", "step level", "attack", "rhythm")


@dataclasses.dataclass(frozen=True)
class DescriptorConfig:
    """Which numbers describe a bar.

    Attributes:
      n_bands: mel bands of equal width on the HTK mel scale, from 0 Hz to Nyquist.
      n_steps: steps per bar (16th notes).
      attack_frames: MFCC frames (of ``hop_length`` samples) in a step's attack window,
        and in the window before it.
      hit_db: an attack this many dB counts as a hit in the number of steps with a hit.
    """

    n_bands: int = 8
    n_steps: int = 16
    attack_frames: int = 4
    hit_db: float = 6.0

    @property
    def size(self) -> int:
        """Length of the descriptor vector."""
        return sum(self.group_sizes)

    @property
    def group_sizes(self) -> tuple[int, ...]:
        """Sizes of ``GROUPS``, in order."""
        b, s = self.n_bands, self.n_steps
        return (b, b * s, b * s, 4 * b + 4)

    def band_edges_hz(self, features: FeatureConfig) -> np.ndarray:
        """float64[n_bands + 1]: band edges in Hz."""
        return mel_to_hz(np.linspace(hz_to_mel(features.fmin), hz_to_mel(features.fmax),
                                     self.n_bands + 1))


def _band_weights(features: FeatureConfig, config: DescriptorConfig) -> np.ndarray:
    """float64[n_mels, n_bands]: each band the mean of the mel bands centred in it."""
    mel_edges = np.linspace(hz_to_mel(features.fmin), hz_to_mel(features.fmax),
                            features.n_mels + 2)
    centres = hz_to_mel(mel_to_hz(mel_edges[1:-1]))
    edges = hz_to_mel(config.band_edges_hz(features))
    band = np.clip(np.searchsorted(edges, centres, side="right") - 1, 0, config.n_bands - 1)
    weights = np.zeros((features.n_mels, config.n_bands))
    weights[np.arange(features.n_mels), band] = 1.0
    return weights / weights.sum(axis=0, keepdims=True)


def _frame_weights(n_frames: int, bar_samples: int, features: FeatureConfig,
                   config: DescriptorConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Averaging matrices float64[n_frames, n_steps] over each step, its attack window
    and the window before it. Frame t is centred on sample t * hop (mod the bar) and
    spans n_fft samples; a frame is "before" a step only if it ends before the step does
    not start, so an onset never leaks into its own baseline."""
    hop, n, half = features.hop_length, config.n_steps, features.n_fft // 2
    centre = (np.arange(n_frames) * hop) % bar_samples
    starts = np.floor(np.arange(n) * bar_samples / n).astype(np.int64)
    ends = np.append(starts[1:], bar_samples)
    width = config.attack_frames * hop
    step, attack, before = (np.zeros((n_frames, n)) for _ in range(3))
    for k in range(n):
        step[:, k] = (centre >= starts[k]) & (centre < ends[k])
        attack[:, k] = (centre >= starts[k]) & (centre < starts[k] + width)
        lead = (starts[k] - centre) % bar_samples  # how far the centre is before the step
        before[:, k] = (lead >= half) & (lead < half + width)
    return tuple(m / np.maximum(m.sum(axis=0, keepdims=True), 1.0)
                 for m in (step, attack, before))


def _pool_db(db: jax.Array, weights: np.ndarray) -> jax.Array:
    """10 log10 of the weighted mean power: db float32[..., n] -> float32[..., m]."""
    nepers = db / _DB
    peak = jax.lax.stop_gradient(jnp.max(nepers, axis=-1, keepdims=True))
    mean = jnp.exp(nepers - peak) @ jnp.asarray(weights, db.dtype)
    return _DB * (jnp.log(jnp.maximum(mean, 1e-30)) + peak)


def descriptors(mfccs: jax.Array, features: FeatureConfig = FeatureConfig(),
                config: DescriptorConfig = DescriptorConfig(),
                bar_samples: int = 88200) -> jax.Array:
    """The descriptor vector of each bar.

    Args:
      mfccs: float32[..., n_mfcc, n_frames], ``features.mfcc`` of steady-state bars.
      features: the MFCC's settings.
      config: the descriptors' settings.
      bar_samples: length of the bar the MFCC was computed on, in samples.

    Returns:
      float32[..., config.size]: ``GROUPS`` concatenated, in dB (shares in [0, 1]).
    """
    n_mfcc, n_frames = mfccs.shape[-2:]
    inverse = dct_matrix(features.n_mels, n_mfcc)  # orthonormal: the DCT's transpose
    mel_db = jnp.einsum("mc,...cf->...fm", jnp.asarray(inverse, mfccs.dtype), mfccs)
    band_db = _pool_db(mel_db, _band_weights(features, config))  # [..., frames, bands]
    band_db = jnp.swapaxes(band_db, -1, -2)  # [..., bands, frames]
    step_w, attack_w, before_w = _frame_weights(n_frames, bar_samples, features, config)
    level = _pool_db(band_db, np.full((n_frames, 1), 1.0 / n_frames))[..., 0]
    step_level = _pool_db(band_db, step_w)
    attack = jax.nn.relu(_pool_db(band_db, attack_w) - _pool_db(band_db, before_w))
    total = jnp.sum(attack, axis=-1)
    share = lambda steps: jnp.sum(attack[..., steps], axis=-1) / (total + 1.0)
    quarters = np.arange(0, config.n_steps, 4)
    backbeat = np.arange(4, config.n_steps, 8)
    offbeat = np.arange(2, config.n_steps, 4)
    weights = jax.nn.softmax(level / _DB, axis=-1)
    centroid = jnp.sum(weights * jnp.arange(config.n_bands, dtype=mfccs.dtype), axis=-1)
    overall = _pool_db(level, np.full((config.n_bands, 1), 1.0 / config.n_bands))[..., 0]
    strongest = jnp.max(attack, axis=-2)  # [..., steps], over bands
    hits = jnp.sum(jax.nn.sigmoid((strongest - config.hit_db) / 2.0), axis=-1)
    density = jnp.sum(strongest, axis=-1) / (jnp.max(strongest, axis=-1) + 1.0)
    lead = mfccs.shape[:-2]
    return jnp.concatenate([
        level, step_level.reshape(lead + (-1,)), attack.reshape(lead + (-1,)),
        total, share(quarters), share(backbeat), share(offbeat),
        centroid[..., None], overall[..., None], hits[..., None], density[..., None]],
        axis=-1)
