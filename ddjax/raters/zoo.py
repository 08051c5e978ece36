"""A zoo of simulated users for the learning benchmark, split once into TUNE and HELD_OUT.

Like ``ddjax.raters.users``, every zoo user hears ``loop.audio`` (the listening render) and judges
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

What a zoo user measures in a bar is ``ddjax.raters.listening``'s.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Callable, NamedTuple

import numpy as np

from ddjax.core.render import RenderConfig
from ddjax.io.kit import Kit
from ddjax.raters.listening import (
    FEATURE_NAMES,
    FEATURES,
    Values,
    audio_features,
    bar_features,
)
from ddjax.raters.users import LIKE_SHARE, calibration_audio

__all__ = ["ZOO", "TUNE", "HELD_OUT", "KINDS", "MIRROR_PAIRS", "ZooSpec", "ZooUser",
           "Calibration", "calibrate", "make_zoo", "make_zoo_user", "audio_features",
           "bar_features", "FEATURES", "FEATURE_NAMES"]


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
    """A rater: ``user(loop) -> bool`` on a ``session.SessionLoop`` (uses ``loop.audio``).

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
