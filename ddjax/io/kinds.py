"""Kinds: what each kit sample is (kick, snare, closed hat, noise/fx...), for the loop
prior and for MIDI.

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

from ddjax.io.kind_model import classify
from ddjax.io.kit import Kit

AUDIO_CONFIDENCE = 0.7  # below it, a sample the name does not place stays unknown

GM_NOTES = {"kick": 36, "rim": 37, "snare": 38, "clap": 39, "closed_hat": 42,
            "open_hat": 46, "crash": 49, "ride": 51, "cowbell": 56, "shaker": 70,
            "fx": 71}  # fx: GM's short whistle, a sound no drum kit plays by default
TOM_NOTES = (41, 43, 45, 47, 48, 50)  # low floor tom .. high tom
TOM_PITCH_EDGES_HZ = (110.0, 140.0, 175.0, 220.0, 280.0)
KINDS = ("kick", "snare", "clap", "rim", "closed_hat", "open_hat", "crash", "ride",
         "cowbell", "shaker", "tom", "fx")
BACKBEAT_KINDS = ("snare", "clap", "rim")

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


def kit_monos(kit: Kit):
    audio = np.asarray(kit.audio)
    return [row[:length].astype(np.float64) for row, length in zip(audio, kit.lengths)]


def kit_kinds(kit: Kit) -> list[str | None]:
    """Every kit sample's kind (``kick``, ``snare``...), None where it is unknown."""
    return [kind_from_name(name) or kind_from_audio(mono, kit.sr)
            for name, mono in zip(kit.names, kit_monos(kit))]


def kit_notes(kit: Kit) -> list[int | None]:
    """The General MIDI note of every kit sample, None where the kind is unknown."""
    return [tom_note(mono, kit.sr) if kind == "tom" else GM_NOTES.get(kind)
            for kind, mono in zip(kit_kinds(kit), kit_monos(kit))]




def kind_ids(kinds: list[str | None]) -> np.ndarray:
    """int32[kit]: each kind's position in ``KINDS``, -1 where it is unknown."""
    return np.array([KINDS.index(k) if k in KINDS else -1 for k in kinds], np.int32)
