"""Exports: a loop as WAV, JSON and a Standard MIDI File a DAW opens.

The MIDI file is one bar of 16th notes at the loop's tempo, a type-1 Standard MIDI File: a
first track with the tempo and time signature, then one track per loop track, named after
its sample, all on channel 10 (General MIDI drums). Each track plays its own note
(``track_notes``): its sample's kind's GM note (``ddjax.io.kinds``) where no earlier track
took it, else a free tom or pad note, so a DAW or sampler can tell every track apart.
Stems (``loop_stems``) are each track alone at the mix's gain: they sum to the mix.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib

import mido
import numpy as np

from ddjax.core.drums import GM_NOTES, TOM_NOTES
from ddjax.core.groove import (
    STRAIGHT,
    Humanize,
    humanized_velocity,
    of_record,
    recorded_swing,
    swing_late,
)
from ddjax.core.host_render import RenderConfig, host_listening_render
from ddjax.io.encode import DEFAULT_FORMAT, suffix
from ddjax.io.files import atomic_write_bytes, write_audio, write_loop_json

# Where a track's GM note is unknown or taken: GM's bongos, congas and timbales (no kit's
# kick, snare or hat), then other percussion no kind here plays, then any note left.
PAD_NOTES = (60, 61, 62, 63, 64, 65, 66, 67)
SPARE_NOTES = PAD_NOTES + (68, 69, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81)
TICKS_PER_BEAT = 480


def _own_note(kind_or_note: int | str | None) -> int | None:
    if kind_or_note is None or isinstance(kind_or_note, (int, np.integer)):
        return None if kind_or_note is None else int(kind_or_note)
    return TOM_NOTES[0] if kind_or_note == "tom" else GM_NOTES.get(kind_or_note)


def track_notes(kinds_or_notes) -> list[int]:
    """Each track's MIDI note, distinct within the loop.

    A track keeps its own GM drum note where no earlier track of the loop took it. Else a
    tom gets the next free note of ``TOM_NOTES`` above its own (wrapping round), and any
    other track the first free one of ``SPARE_NOTES``, then of 0-127.

    Args:
      kinds_or_notes: per track, its sample's GM note (``Kit.notes``), or its kind
        (``Kit.kinds``; "tom" is ``TOM_NOTES[0]``), None where it is unknown.

    Returns:
      One note per track, all distinct (any loop of up to 128 tracks).
    """
    taken: list[int] = []
    for item in kinds_or_notes:
        note = _own_note(item)
        if note is None or note in taken:
            toms = (TOM_NOTES[TOM_NOTES.index(note) + 1:] + TOM_NOTES
                    if note in TOM_NOTES else ())
            note = next(n for n in (*toms, *SPARE_NOTES, *range(128)) if n not in taken)
        taken.append(note)
    return taken


def _track_name(name: str) -> str:
    # mido writes meta text as latin-1; a name it cannot carry keeps a '?' there.
    return name.encode("latin-1", "replace").decode("latin-1")


def midi_bytes(grid: np.ndarray, notes: list[int], bpm: float, swing: float = STRAIGHT,
               velocity: np.ndarray | None = None, humanize: Humanize = Humanize(),
               names: list[str] | None = None) -> bytes:
    """One bar of the grid as a type-1 Standard MIDI File on channel 10: a first track with
    the tempo and the 4/4 time signature, then one track per grid track, named ``names``,
    with its ``notes``. Every track ends at the bar's end.

    Args:
      grid: bool[tracks, steps], 16th-note steps.
      notes: the GM drum note of each track (``track_notes``: distinct).
      bpm: tempo in quarter notes per minute.
      swing: percent, MPC scale (``RenderConfig.swing``): odd steps start
        ``groove.swing_late(swing)`` of a step late, rounded to the nearest of the 120
        ticks of a step.
      velocity: int[tracks, steps], each cell's MIDI velocity; None: 127, as rendered.
      humanize: the render's jitter (``ddjax.core.groove``): each cell moves by its timing
        offset, rounded to the nearest tick (never before tick 0), and its velocity by its
        velocity offset.
      names: each track's name (its sample's file stem, ``track_names``); None: "track N".
    """
    shape = np.shape(grid)
    velocity = humanized_velocity(velocity, humanize, shape)
    velocity = np.full(shape, 127) if velocity is None else np.asarray(velocity)
    ticks_per_step = TICKS_PER_BEAT // 4
    late = int(round(swing_late(swing) * ticks_per_step))
    jitter = np.round(humanize.timing_ms(*shape) / 1000.0 * bpm / 60.0 * TICKS_PER_BEAT)
    bar_ticks = shape[1] * ticks_per_step
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
        mido.MetaMessage("end_of_track", time=bar_ticks)]))
    for track, note in enumerate(notes):
        events = []  # (tick, order, message): note-offs before note-ons at the same tick
        for step in np.nonzero(np.asarray(grid[track]))[0]:
            start = max(0, int(step) * ticks_per_step + late * (int(step) % 2)
                        + int(jitter[track, step]))
            events.append((start, 1, mido.Message("note_on", channel=9, note=note,
                                                  velocity=int(velocity[track, step]))))
            events.append((start + ticks_per_step // 2, 0,
                           mido.Message("note_off", channel=9, note=note, velocity=0)))
        events.sort(key=lambda e: (e[0], e[1]))
        name = f"track {track + 1}" if names is None else _track_name(names[track])
        part = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        now = 0
        for tick, _, message in events:
            part.append(message.copy(time=tick - now))
            now = tick
        # A late (humanized) last note may end past the bar: the track ends with it.
        part.append(mido.MetaMessage("end_of_track", time=max(0, bar_ticks - now)))
        midi.tracks.append(part)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def write_midi(path: str | os.PathLike, grid: np.ndarray, notes: list[int], bpm: float,
               swing: float = STRAIGHT, velocity: np.ndarray | None = None,
               humanize: Humanize = Humanize(), names: list[str] | None = None) -> None:
    """``midi_bytes`` written atomically to ``path`` (a .mid file)."""
    atomic_write_bytes(path, midi_bytes(grid, notes, bpm, swing, velocity, humanize, names))


def track_names(sample_names: list[str]) -> list[str]:
    """Each track's name: its sample's file stem (``808/kick01.wav`` -> ``kick01``)."""
    return [pathlib.PurePosixPath(name).stem for name in sample_names]


def loop_stems(rows: np.ndarray, grid: np.ndarray, velocity: np.ndarray | None,
               config: RenderConfig) -> np.ndarray:
    """Each track of one loop alone, as ``render.host_listening_render`` renders the loop
    (NumPy, nothing to compile), all at the whole loop's one gain, so they sum to the mix.

    Args:
      rows: float32[tracks, samples], each track's sample, at most one bar long.
      grid: bool[tracks, steps].
      velocity: int[tracks, steps] or None (every hit at 127).
      config: the render settings.

    Returns:
      float32[tracks, listening_samples].
    """
    grid = np.asarray(grid, bool)
    alone = []
    for track in range(grid.shape[0]):
        only = np.zeros_like(grid)
        only[track] = grid[track]
        # Quiet enough that no sum of its hits reaches the peak: its own gain is 1.
        loudest = 4.0 * config.volume * max(1, int(only.sum())) * float(
            np.max(np.abs(rows[track]), initial=0.0))
        scale = 0.5 / max(loudest, 1e-30)
        quiet = dataclasses.replace(config, volume=config.volume * scale)
        alone.append(host_listening_render(rows, only, velocity, quiet) / np.float64(scale))
    alone = np.stack(alone)
    mix = host_listening_render(rows, grid, velocity, config).astype(np.float64)
    raw = alone.sum(axis=0)
    power = float(raw @ raw)
    gain = float(mix @ raw) / power if power > 0 else 1.0  # the loop's gain, loop_gain
    return (gain * alone).astype(np.float32)


def stem_paths(stem: str | os.PathLike, sample_names: list[str],
               fmt: str = DEFAULT_FORMAT) -> list[pathlib.Path]:
    """Where each track's stem goes: ``STEM_track<N>_<sample>.wav``, N from 1."""
    stem = pathlib.Path(stem)
    return [stem.with_name(f"{stem.name}_track{t + 1}_{name}{suffix(fmt)}")
            for t, name in enumerate(track_names(sample_names))]


def loop_bar_path(stem: str | os.PathLike, bpm: float, fmt: str = DEFAULT_FORMAT
                  ) -> pathlib.Path:
    """Where a loop's one-bar file goes: ``STEM_1bar_<bpm>bpm.wav`` (or ``.flac``)."""
    stem = pathlib.Path(stem)
    return stem.with_name(f"{stem.name}_1bar_{bpm:g}bpm{suffix(fmt)}")


def export_loop(stem: str | os.PathLike, record: dict, *, audio: np.ndarray | None = None,
                bar: np.ndarray | None = None, sr: int = 44100,
                notes: list[int] | None = None, write_json: bool = True,
                fmt: str = DEFAULT_FORMAT, stems: np.ndarray | None = None
                ) -> list[pathlib.Path]:
    """Writes ``stem``.json (unless ``write_json`` is False), the preview ``audio`` as
    ``stem``.wav (or .flac), the seamless ``bar`` as ``loop_bar_path`` with its tempo,
    ``stem``.mid from ``notes`` (``track_notes``), its tracks named after the record's
    samples, and each track's ``stems`` (float32[tracks, samples], ``loop_stems``) at
    ``stem_paths``, for those given. Returns the paths written."""
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
                   recorded_swing(record), record.get("velocity"),
                   of_record(record), track_names(record["samples"]))
    if stems is not None:
        for path, audio_alone in zip(stem_paths(stem, record["samples"], fmt), stems):
            written.append(path)
            write_audio(path, audio_alone, sr, fmt)
    return written
