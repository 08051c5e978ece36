"""Exports: a loop as WAV, JSON and a Standard MIDI File a DAW opens.

The MIDI file is one bar of 16th notes at the loop's tempo on channel 10 (General MIDI
drums). Each track's note comes from its sample's kind, found from the file name when it
says (``kick``, ``snare``, ``hh``...), else from the audio (the kick rule of
``ddjax.kit``, then spectral centroid and decay for hats and cymbals). Unknown kinds fall
back to a fixed note per track.
"""

from __future__ import annotations

import io
import os
import pathlib
import re

import mido
import numpy as np

from ddjax.files import atomic_write_bytes, write_loop_json, write_wav
from ddjax.kit import Kit, detect_kick

GM_NOTES = {"kick": 36, "rim": 37, "snare": 38, "clap": 39, "closed_hat": 42,
            "open_hat": 46, "crash": 49, "ride": 51, "cowbell": 56, "shaker": 70}
TOM_NOTES = (41, 43, 45, 47, 48, 50)  # low floor tom .. high tom
TOM_PITCH_EDGES_HZ = (110.0, 140.0, 175.0, 220.0, 280.0)
FALLBACK_NOTES = (36, 38, 42, 39, 46, 37, 56, 70)  # by track
TICKS_PER_BEAT = 480
VELOCITY = 100

# Order matters: the first pattern that matches the name wins.
_NAME_PATTERNS = (
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


def kind_from_audio(mono: np.ndarray, sr: int) -> str | None:
    """A kind guessed from the audio alone, or None."""
    if detect_kick(mono, sr):
        return "kick"
    power = np.square(np.abs(np.fft.rfft(mono)))
    centroid_hz = float(np.sum(np.fft.rfftfreq(mono.size, 1.0 / sr) * power) / np.sum(power))
    if centroid_hz < 4000.0:
        return None
    envelope = np.abs(mono)
    seconds = (np.nonzero(envelope >= 0.1 * envelope.max())[0][-1] + 1) / sr
    if seconds < 0.15:
        return "closed_hat"
    return "open_hat" if seconds < 0.8 else "crash"


def tom_note(mono: np.ndarray, sr: int) -> int:
    """Low, mid or high tom from the pitch of the strongest partial."""
    spectrum = np.abs(np.fft.rfft(mono, n=max(8192, mono.size)))
    freqs = np.fft.rfftfreq(max(8192, mono.size), 1.0 / sr)
    band = (freqs > 40.0) & (freqs < 1000.0)
    pitch_hz = float(freqs[band][np.argmax(spectrum[band])])
    return TOM_NOTES[int(np.searchsorted(TOM_PITCH_EDGES_HZ, pitch_hz))]


def _kit_monos(kit: Kit):
    audio = np.asarray(kit.audio)
    return [row[:length].astype(np.float64) for row, length in zip(audio, kit.lengths)]


def kit_kinds(kit: Kit) -> list[str | None]:
    """Every kit sample's kind (``kick``, ``snare``...), None where it is unknown."""
    return [kind_from_name(name) or kind_from_audio(mono, kit.sr)
            for name, mono in zip(kit.names, _kit_monos(kit))]


def kit_notes(kit: Kit) -> list[int | None]:
    """The General MIDI note of every kit sample, None where the kind is unknown."""
    return [tom_note(mono, kit.sr) if kind == "tom" else GM_NOTES.get(kind)
            for kind, mono in zip(kit_kinds(kit), _kit_monos(kit))]


def track_notes(sample_notes: list[int | None]) -> list[int]:
    """Each track's note, with the fixed per-track fallback for unknown kinds."""
    return [FALLBACK_NOTES[t % len(FALLBACK_NOTES)] if n is None else n
            for t, n in enumerate(sample_notes)]


def midi_bytes(grid: np.ndarray, notes: list[int], bpm: float) -> bytes:
    """One bar of the grid as a type-0 Standard MIDI File on channel 10.

    Args:
      grid: bool[tracks, steps], 16th-note steps.
      notes: the GM drum note of each track.
      bpm: tempo in quarter notes per minute.
    """
    ticks_per_step = TICKS_PER_BEAT // 4
    events = []  # (tick, order, message): note-offs before note-ons at the same tick
    for track, note in enumerate(notes):
        for step in np.nonzero(np.asarray(grid[track]))[0]:
            start = int(step) * ticks_per_step
            events.append((start, 1, mido.Message("note_on", channel=9, note=note,
                                                  velocity=VELOCITY)))
            events.append((start + ticks_per_step // 2, 0,
                           mido.Message("note_off", channel=9, note=note, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1], e[2].note))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    now = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    bar_ticks = grid.shape[1] * ticks_per_step
    track.append(mido.MetaMessage("end_of_track", time=bar_ticks - now))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def write_midi(path: str | os.PathLike, grid: np.ndarray, notes: list[int], bpm: float) -> None:
    """``midi_bytes`` written atomically to ``path`` (a .mid file)."""
    atomic_write_bytes(path, midi_bytes(grid, notes, bpm))


def export_loop(stem: str | os.PathLike, record: dict, *, audio: np.ndarray | None = None,
                sr: int = 44100, notes: list[int] | None = None,
                write_json: bool = True) -> list[pathlib.Path]:
    """Writes ``stem``.json (unless ``write_json`` is False), and ``stem``.wav /
    ``stem``.mid where ``audio`` / ``notes`` are given. Returns the paths written."""
    stem = pathlib.Path(stem)
    written = []
    if write_json:
        written.append(stem.with_suffix(".json"))
        write_loop_json(written[-1], record)
    if audio is not None:
        written.append(stem.with_suffix(".wav"))
        write_wav(written[-1], audio, sr)
    if notes is not None:
        written.append(stem.with_suffix(".mid"))
        write_midi(written[-1], np.array(record["grid"], bool), notes, record.get("bpm", 120))
    return written
