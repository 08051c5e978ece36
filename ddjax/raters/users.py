"""Simulated users: raters with a taste defined on the audio, for the paper's protocol.

Each built-in user measures one property of the loop's steady-state bar (the first bar
of its listening render after the wrap-around is added back) and likes loops above a
threshold. The threshold is calibrated on random loops of the session's kit so that the
user likes about 35% of them, as the paper's participants liked 37% of loops from an
untrained critic. A noisy variant flips a share of its ratings.

Tastes:
- ``bright`` / ``dark``: spectral centroid of the bar, high / low.
- ``dense`` / ``sparse``: onset strength summed over the 16 steps, relative to the
  strongest step: many / few strong hits.
- ``pulse``: share of onset energy that falls on the quarter notes (steps 0, 4, 8, 12).
- ``punchy``: share of energy below 150 Hz (kicks and low toms).
- ``smooth``: little energy above 8 kHz, relative to the total (hates harsh noise).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import numpy as np

from ddjax.core.loops import LoopConfig, allowed_samples, random_loop
from ddjax.core.render import RenderConfig, listening_render
from ddjax.io.kit import Kit

LIKE_SHARE = 0.35
CALIBRATION_LOOPS = 256
ONSET_SECONDS = 0.010


def _bar(audio: np.ndarray, config: RenderConfig) -> np.ndarray:
    bar = config.bar_samples
    return audio[bar:2 * bar]  # bar 2 of the render: the steady state


def _step_flux(bar: np.ndarray, config: RenderConfig) -> np.ndarray:
    """Rise of RMS at the start of each step: float[steps]."""
    width = int(ONSET_SECONDS * config.sr)
    after = np.array([np.sqrt(np.mean(np.square(np.take(bar, np.arange(o, o + width),
                                                            mode="wrap"))))
                      for o in config.step_offsets])
    before = np.array([np.sqrt(np.mean(np.square(np.take(bar, np.arange(o - width, o),
                                                             mode="wrap"))))
                       for o in config.step_offsets])
    return np.maximum(after - before, 0.0)


def _band_share(bar: np.ndarray, sr: int, low_hz: float, high_hz: float) -> float:
    power = np.square(np.abs(np.fft.rfft(bar)))
    freqs = np.fft.rfftfreq(bar.size, 1.0 / sr)
    return float(np.sum(power[(freqs >= low_hz) & (freqs < high_hz)]) / max(power.sum(), 1e-20))


def _centroid(bar: np.ndarray, sr: int) -> float:
    power = np.square(np.abs(np.fft.rfft(bar)))
    return float(np.sum(np.fft.rfftfreq(bar.size, 1.0 / sr) * power) / max(power.sum(), 1e-20))


def _density(bar: np.ndarray, config: RenderConfig) -> float:
    flux = _step_flux(bar, config)
    return float(flux.sum() / max(flux.max(), 1e-9))


TASTES: dict[str, Callable[[np.ndarray, RenderConfig], float]] = {
    "bright": lambda bar, c: _centroid(bar, c.sr),
    "dark": lambda bar, c: -_centroid(bar, c.sr),
    "dense": lambda bar, c: _density(bar, c),
    "sparse": lambda bar, c: -_density(bar, c),
    "pulse": lambda bar, c: float(_step_flux(bar, c)[::4].sum()
                                  / max(_step_flux(bar, c).sum(), 1e-9)),
    "punchy": lambda bar, c: _band_share(bar, c.sr, 0.0, 150.0),
    "smooth": lambda bar, c: -_band_share(bar, c.sr, 8000.0, c.sr / 2),
}
BUILT_IN = tuple(TASTES) + tuple(f"{t}-noisy" for t in TASTES)


@dataclasses.dataclass
class SimulatedUser:
    """A rater: ``user(loop) -> bool`` on a ``session.SessionLoop`` (uses ``loop.audio``).

    Attributes:
      taste: a key of ``TASTES``.
      threshold: likes loops whose taste value exceeds this.
      flip: probability of flipping each rating (noisy variants).
      render: the render settings the audio was made with.
      seed: seeds the flips.
    """

    taste: str
    threshold: float
    flip: float = 0.0
    render: RenderConfig = RenderConfig()
    seed: int = 0

    def __post_init__(self):
        self._rng = np.random.default_rng(self.seed)

    def value(self, audio: np.ndarray) -> float:
        return TASTES[self.taste](_bar(np.asarray(audio, np.float64), self.render), self.render)

    def __call__(self, loop) -> bool:
        liked = self.value(loop.audio) > self.threshold
        if self.flip and self._rng.random() < self.flip:
            liked = not liked
        return bool(liked)


def calibration_audio(kit: Kit, render: RenderConfig = RenderConfig(),
                      n: int = CALIBRATION_LOOPS, seed: int = 12345,
                      n_tracks: int = 4) -> np.ndarray:
    """Listening renders of ``n`` random loops of ``n_tracks`` tracks from the paper's
    generator (the uniform loop prior: users are defined the same whatever prior the
    sampler uses)."""
    config = LoopConfig(prior="uniform", n_tracks=n_tracks)
    allowed = jax.numpy.asarray(allowed_samples(config, kit.is_kick))
    loops = jax.vmap(lambda k: random_loop(k, allowed, config))(
        jax.random.split(jax.random.key(seed), n))
    return np.asarray(jax.jit(lambda l: listening_render(kit.audio, l, render))(loops))


def make_user(name: str, kit: Kit, *, seed: int = 0, render: RenderConfig = RenderConfig(),
              audio: np.ndarray | None = None, n_tracks: int = 4) -> SimulatedUser:
    """A built-in user (``BUILT_IN``), calibrated to like ~35% of random loops of ``kit``.

    Args:
      name: a taste, optionally with ``-noisy`` (15% of ratings flipped).
      kit: the kit the loops come from.
      seed: seeds the noisy flips.
      render: render settings.
      audio: precomputed ``calibration_audio(kit)``, to share between users.
      n_tracks: tracks of the calibration loops (without ``audio``).
    """
    taste, _, noisy = name.partition("-")
    if taste not in TASTES or noisy not in ("", "noisy"):
        raise KeyError(name)
    if audio is None:
        audio = calibration_audio(kit, render, n_tracks=n_tracks)
    user = SimulatedUser(taste, 0.0, render=render)
    values = np.array([user.value(a) for a in audio])
    threshold = float(np.quantile(values, 1.0 - LIKE_SHARE))
    return SimulatedUser(taste, threshold, 0.15 if noisy else 0.0, render, seed)
