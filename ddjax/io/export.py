"""Exports: a loop as WAV, JSON and a Standard MIDI File a DAW opens.

The MIDI file is one bar of 16th notes at the loop's tempo on channel 10 (General MIDI
drums). Each track's note comes from its sample's kind (``ddjax.io.kinds``); unknown kinds
fall back to a fixed note per track, never a kick's.
"""

from __future__ import annotations

import io
import os
import pathlib

import mido
import numpy as np

from ddjax.core.groove import Humanize, humanized_velocity, of_record
from ddjax.io.encode import DEFAULT_FORMAT, suffix
from ddjax.io.files import atomic_write_bytes, write_audio, write_loop_json

# Unknown kinds, by track: GM's bongos, congas, timbales and agogo, never a kick or a hat.
FALLBACK_NOTES = (60, 61, 62, 63, 64, 65, 66, 67)
TICKS_PER_BEAT = 480


def track_notes(sample_notes: list[int | None]) -> list[int]:
    """Each track's note, with the fixed per-track fallback for unknown kinds."""
    return [FALLBACK_NOTES[t % len(FALLBACK_NOTES)] if n is None else n
            for t, n in enumerate(sample_notes)]


def midi_bytes(grid: np.ndarray, notes: list[int], bpm: float, swing: float = 0.0,
               velocity: np.ndarray | None = None, humanize: Humanize = Humanize()) -> bytes:
    """One bar of the grid as a type-0 Standard MIDI File on channel 10.

    Args:
      grid: bool[tracks, steps], 16th-note steps.
      notes: the GM drum note of each track.
      bpm: tempo in quarter notes per minute.
      swing: percent (``RenderConfig.swing``): odd steps start ``swing / 200`` of a step
        late, rounded to the nearest of the 120 ticks of a step.
      velocity: int[tracks, steps], each cell's MIDI velocity; None: 127, as rendered.
      humanize: the render's jitter (``ddjax.core.groove``): each cell moves by its timing
        offset, rounded to the nearest tick (never before tick 0), and its velocity by its
        velocity offset.
    """
    shape = np.shape(grid)
    velocity = humanized_velocity(velocity, humanize, shape)
    velocity = np.full(shape, 127) if velocity is None else np.asarray(velocity)
    ticks_per_step = TICKS_PER_BEAT // 4
    late = int(round(swing / 200.0 * ticks_per_step))
    jitter = np.round(humanize.timing_ms(*shape) / 1000.0 * bpm / 60.0 * TICKS_PER_BEAT)
    events = []  # (tick, order, message): note-offs before note-ons at the same tick
    for track, note in enumerate(notes):
        for step in np.nonzero(np.asarray(grid[track]))[0]:
            start = max(0, int(step) * ticks_per_step + late * (int(step) % 2)
                        + int(jitter[track, step]))
            events.append((start, 1, mido.Message("note_on", channel=9, note=note,
                                                  velocity=int(velocity[track, step]))))
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


def write_midi(path: str | os.PathLike, grid: np.ndarray, notes: list[int], bpm: float,
               swing: float = 0.0, velocity: np.ndarray | None = None,
               humanize: Humanize = Humanize()) -> None:
    """``midi_bytes`` written atomically to ``path`` (a .mid file)."""
    atomic_write_bytes(path, midi_bytes(grid, notes, bpm, swing, velocity, humanize))


def loop_bar_path(stem: str | os.PathLike, bpm: float, fmt: str = DEFAULT_FORMAT
                  ) -> pathlib.Path:
    """Where a loop's one-bar file goes: ``STEM_1bar_<bpm>bpm.wav`` (or ``.flac``)."""
    stem = pathlib.Path(stem)
    return stem.with_name(f"{stem.name}_1bar_{bpm:g}bpm{suffix(fmt)}")


def export_loop(stem: str | os.PathLike, record: dict, *, audio: np.ndarray | None = None,
                bar: np.ndarray | None = None, sr: int = 44100,
                notes: list[int] | None = None, write_json: bool = True,
                fmt: str = DEFAULT_FORMAT) -> list[pathlib.Path]:
    """Writes ``stem``.json (unless ``write_json`` is False), the preview ``audio`` as
    ``stem``.wav (or .flac), the seamless ``bar`` as ``loop_bar_path`` with its tempo, and
    ``stem``.mid from ``notes``, for those given. Returns the paths written."""
    stem = pathlib.Path(stem)
    bpm = record.get("bpm", 120)
    written = []
    if write_json:
        written.append(stem.with_suffix(".json"))
        write_loop_json(written[-1], record)
    if audio is not None:
        written.append(stem.with_suffix(suffix(fmt)))
        write_audio(written[-1], audio, sr, fmt)
    if bar is not None:
        written.append(loop_bar_path(stem, bpm, fmt))
        write_audio(written[-1], bar, sr, fmt, tempo=(bpm, len(record["grid"][0]) // 4))
    if notes is not None:
        written.append(stem.with_suffix(".mid"))
        write_midi(written[-1], np.array(record["grid"], bool), notes, bpm,
                   record.get("swing", 0.0), record.get("velocity"),
                   of_record(record))
    return written
