"""A study's headphone check: the antiphase test of Woods et al. (2017), "Headphone
screening to facilitate web-based auditory experiments", Attention, Perception, &
Psychophysics 79(7), 2064-2072.

Each trial is three 1 s, 200 Hz pure tones in stereo, in random order: the reference;
the same tone with its right channel inverted (antiphase); and the reference 6 dB quieter.
Over headphones the antiphase tone is as loud as the reference, so the quiet one is the
quietest. Over loudspeakers the two channels of the antiphase tone cancel in the air, so
it sounds quietest, and the answer is wrong. ``N_TRIALS`` trials; ``PASS_CORRECT`` right
answers pass.

Pure NumPy, seeded per participant: trial ``index`` of attempt ``attempt`` is the same
every time it is asked for, so nothing but the answers needs storing.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
import soundfile as sf

SR = 44100  # Hz
TONE_HZ = 200.0
TONE_SECONDS = 1.0
RAMP_SECONDS = 0.1  # raised-cosine on- and offset ramps, against clicks
GAP_SECONDS = 0.5  # silence between the three tones
LEVEL = 0.2  # the reference tone's peak amplitude (full scale 1.0)
QUIET_DB = -6.0
VOLUME_SECONDS = 4.0  # the tone played to set a comfortable level
N_TRIALS = 6
PASS_CORRECT = 5
ATTEMPTS = 2  # a failed check may be taken once more
KINDS = ("reference", "antiphase", "quiet")


class Trial(NamedTuple):
    """One trial: ``audio`` float32[samples, 2] (tone, gap, tone, gap, tone), ``order``
    the kind of each tone, and ``answer`` the 1-based position of the quiet one."""

    audio: np.ndarray
    order: tuple[str, str, str]
    answer: int


def tone(seconds: float = TONE_SECONDS, *, gain_db: float = 0.0, antiphase: bool = False,
         sr: int = SR) -> np.ndarray:
    """A ``TONE_HZ`` sine of ``seconds`` at ``LEVEL`` plus ``gain_db``, with
    ``RAMP_SECONDS`` raised-cosine ramps: float32[samples, 2], the right channel inverted
    where ``antiphase``."""
    n = round(seconds * sr)
    t = np.arange(n) / sr
    mono = LEVEL * 10 ** (gain_db / 20) * np.sin(2 * np.pi * TONE_HZ * t)
    ramp = round(RAMP_SECONDS * sr)
    envelope = np.ones(n)
    envelope[:ramp] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    envelope[n - ramp:] = envelope[:ramp][::-1]
    mono = mono * envelope
    return np.stack([mono, -mono if antiphase else mono], axis=1).astype(np.float32)


def trial(seed: int, attempt: int, index: int, sr: int = SR) -> Trial:
    """Trial ``index`` (0-based) of attempt ``attempt`` for the participant seeded
    ``seed``."""
    rng = np.random.default_rng([seed, attempt, index])
    order = tuple(KINDS[i] for i in rng.permutation(len(KINDS)))
    tones = {"reference": tone(sr=sr), "antiphase": tone(antiphase=True, sr=sr),
             "quiet": tone(gain_db=QUIET_DB, sr=sr)}
    gap = np.zeros((round(GAP_SECONDS * sr), 2), np.float32)
    audio = np.concatenate([tones[order[0]], gap, tones[order[1]], gap, tones[order[2]]])
    return Trial(audio, order, order.index("quiet") + 1)


def volume_tone(sr: int = SR) -> np.ndarray:
    """The tone to set the volume by: the reference tone, in phase, ``VOLUME_SECONDS``
    long: float32[samples, 2]."""
    return tone(VOLUME_SECONDS, sr=sr)


def passed(correct: int) -> bool:
    return correct >= PASS_CORRECT


def wav_bytes(audio: np.ndarray, sr: int = SR) -> bytes:
    """``audio`` float32[samples, channels] as 16-bit PCM WAV bytes."""
    out = io.BytesIO()
    sf.write(out, audio, sr, format="WAV", subtype="PCM_16")
    return out.getvalue()
