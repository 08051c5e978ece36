"""Kinds: what each kit sample is (kick, snare, closed hat, noise/fx...), for the loop
prior and for MIDI. ``ddjax.io.kit.load_kit`` asks once per kit (``Kit.kinds``,
``Kit.notes``); nothing else classifies a sample.

A sample's kind comes from its file name when the name says it (``kick``, ``snare``,
``hh``, ``fx``...), else from its audio: the kind model (``ddjax.io.kind_model``, a logistic
regression on the one-shot's spectrum and envelope), where it is at least
``AUDIO_CONFIDENCE`` sure. Across collections it never saw, that model agrees with the
name on 70% of the paper's kit's named files, and on about 85% of those it is that sure
of (``scripts/make_kind_model.py``). Noise and effects ("fx": ``fx``, ``noise``,
``harsh``, ``zap``...) are a kind of their own, with their own MIDI note, never a kick's
or a hat's. A kind that neither says is None: unknown.
"""

from __future__ import annotations

import re

import numpy as np

from ddjax.core.drums import GM_NOTES, TOM_NOTES, TOM_PITCH_EDGES_HZ
from ddjax.io.kind_model import classify

AUDIO_CONFIDENCE = 0.7  # below it, a sample the name does not place stays unknown

# Order matters: the first pattern that matches the name wins.
_NAME_PATTERNS = (
    ("fx", r"\bfx\b|sfx|noise|harsh|zapp?|glitch|laser|riser|sweep"),
    ("open_hat", r"open.?hat|open.?hh|\bohh?\b|hh.?open|hat.?open"),
    ("closed_hat", r"closed.?hat|closed.?hh|\bchh?\b|hh.?closed|hat.?closed|hi.?hat|\bhh\b|hat"),
    ("kick", r"kick|\bbd\b|bass.?drum"),
    ("snare", r"snare|\bsd\b"),
    ("clap", r"clap|\bcp\b"),
    ("rim", r"rim|\brs\b|stick"),
    ("cowbell", r"cowbell|\bcb\b"),
    ("crash", r"crash|cymbal|\bcy\b"),
    ("ride", r"ride"),
    ("shaker", r"shaker|maraca|shk|cabasa"),
    ("tom", r"tom|conga"),
)


def kind_from_name(name: str) -> str | None:
    """The kind a file name announces, e.g. ``808/clean/snare04.wav`` -> ``snare``."""
    text = re.sub(r"[_\-/.]", " ", name.lower())
    for kind, pattern in _NAME_PATTERNS:
        if re.search(pattern, text):
            return kind
    return None


def kind_from_audio(mono: np.ndarray, sr: int,
                    confidence: float = AUDIO_CONFIDENCE) -> str | None:
    """A kind from the audio alone (``kind_model.classify``), or None where the model is
    less than ``confidence`` sure."""
    return classify(mono, sr, threshold=confidence)


def tom_note(mono: np.ndarray, sr: int) -> int:
    """Low, mid or high tom from the pitch of the strongest partial."""
    spectrum = np.abs(np.fft.rfft(mono, n=max(8192, mono.size)))
    freqs = np.fft.rfftfreq(max(8192, mono.size), 1.0 / sr)
    band = (freqs > 40.0) & (freqs < 1000.0)
    pitch_hz = float(freqs[band][np.argmax(spectrum[band])])
    return TOM_NOTES[int(np.searchsorted(TOM_PITCH_EDGES_HZ, pitch_hz))]


def sample_kinds(names, monos, sr: int) -> tuple[str | None, ...]:
    """Every sample's kind (``kick``, ``snare``...), None where it is unknown: from the name
    where it says, else from the audio. ``monos``: float64[samples] each, at ``sr`` Hz."""
    return tuple(kind_from_name(name) or kind_from_audio(mono, sr)
                 for name, mono in zip(names, monos))


def sample_notes(kinds, monos, sr: int) -> tuple[int | None, ...]:
    """The General MIDI note of every sample of these ``kinds``, None where it is unknown."""
    return tuple(tom_note(mono, sr) if kind == "tom" else GM_NOTES.get(kind)
                 for kind, mono in zip(kinds, monos))
