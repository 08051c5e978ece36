"""Bundles: every liked loop of a session in one zip a DAW user unpacks.

For each liked loop ``loop_NNNNN``: its Standard MIDI File (``.mid``), exactly one bar that
loops seamlessly (``loop_NNNNN_1bar_<bpm>bpm.wav``, 24-bit, with its tempo), and its JSON
(``ddjax render`` plays it again); each kit sample the liked loops use, once, as a WAV
under ``one-shots/`` (as the kit stage loaded it: mono, cut to one bar, at the kit's rate);
and a ``README.txt`` that lists the tempo, the swing and, for each loop, which MIDI note
plays which one-shot, so the MIDI plays in any sampler. The same zip comes from the rating page's "Download all liked" and
from ``ddjax export --session DIR --liked --out FILE.zip``.
"""

from __future__ import annotations

import io
import pathlib
import zipfile

import jax
import numpy as np

from ddjax.core.groove import STRAIGHT
from ddjax.core.loops import Loop, with_velocity
from ddjax.core.render import RenderConfig, loop_render
from ddjax.io.encode import audio_bytes
from ddjax.io.export import loop_bar_path, midi_bytes, track_names, track_notes
from ddjax.io.files import loop_json, loop_record
from ddjax.io.kit import Kit
from ddjax.io.loudness import normalize
from ddjax.session.journal import Rating

_render_bars = jax.jit(loop_render, static_argnums=2)


def _one_shot_paths(kit: Kit, used: list[int]) -> dict[int, str]:
    """Where each used kit sample goes in the zip: ``one-shots/<its path>.wav``, made
    unique where two files differ only in their suffix."""
    paths: dict[int, str] = {}
    for i in used:
        base = pathlib.PurePosixPath("one-shots", kit.names[i]).with_suffix("")
        path, n = f"{base}.wav", 1
        while path in paths.values():
            n += 1
            path = f"{base}_{n}.wav"
        paths[i] = path
    return paths


def _readme(liked: list[Rating], kit: Kit, render: RenderConfig, title: str,
            notes: list[list[int]], one_shots: dict[int, str]) -> str:
    lines = [f"{title}: {len(liked)} liked loops", "",
             f"Tempo: {render.bpm:g} BPM, 4/4, one bar of 16th notes per loop.",
             f"Swing: {render.swing:g}% (MPC/Ableton scale: 50 straight, 66.67 triplet)."
             if render.swing != STRAIGHT else "Swing: none (straight 16ths).",
             f"Kit: {kit.root}", "",
             ("Each loop: NAME.mid (channel 10, one track per loop track named after its"
              " sample, one note each), NAME_1bar_<bpm>bpm.wav"
              " (one bar that loops seamlessly, 24-bit), NAME.json (ddjax render NAME.json"
              " plays it again)."), ""]
    lines += [("one-shots/ holds every sample these loops use, as WAV. Load each into a"
               " sampler or drum rack on the MIDI note the loop plays it with:"), ""]
    for rating, loop_notes in zip(liked, notes):
        lines.append(f"loop_{rating.loop_id:05d}: "
                     + ", ".join(kit.names[i] for i in rating.samples))
        lines += [f"  track {t + 1}: note {note} -> {one_shots[i]}"
                  for t, (note, i) in enumerate(zip(loop_notes, rating.samples))]
    return "\n".join(lines) + "\n"


def liked_zip(ratings: list[Rating], kit: Kit, render: RenderConfig,
              notes: list[int | None], title: str = "ddjax",
              loudness: float | None = None) -> bytes:
    """The zip of the liked ``ratings``, as bytes.

    Args:
      ratings: a session's ratings in force (``Session.history``).
      kit: the session's kit.
      render: the session's render settings (tempo, swing).
      notes: the General MIDI note of every kit sample (``Kit.notes``).
      title: the README's first words.
      loudness: each one-bar loop's integrated loudness in LUFS (``ddjax.io.loudness``),
        or None for the raw mix.
    """
    liked = [r for r in ratings if r.liked]
    loop_notes = [track_notes([notes[i] for i in r.samples]) for r in liked]
    used = sorted({int(i) for r in liked for i in r.samples})
    one_shots = _one_shot_paths(kit, used)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", _readme(liked, kit, render, title, loop_notes,
                                               one_shots))
        audio = np.asarray(kit.audio) if used else None
        for i, path in one_shots.items():
            archive.writestr(path, audio_bytes(audio[i, :int(kit.lengths[i])], kit.sr))
        if liked:
            loops = with_velocity(Loop(
                np.stack([r.grid for r in liked]), np.stack([r.samples for r in liked]),
                np.stack([np.full(r.grid.shape, 127, np.int32) if r.velocity is None
                          else r.velocity for r in liked])))
            bars = normalize(np.asarray(_render_bars(kit.audio, loops, render)), kit.sr,
                             loudness, looping=True)
        for rating, bar, track in zip(liked, bars if liked else [], loop_notes):
            name = f"loop_{rating.loop_id:05d}"
            names = track_names([kit.names[i] for i in rating.samples])
            archive.writestr(f"{name}.mid", midi_bytes(rating.grid, track, render.bpm,
                                                       render.swing, rating.velocity,
                                                       render.humanize, names))
            archive.writestr(loop_bar_path(name, render.bpm).name,
                             audio_bytes(bar, kit.sr,
                                         tempo=(render.bpm, rating.grid.shape[-1] // 4)))
            record = loop_record(rating.grid, [kit.names[i] for i in rating.samples],
                                 bpm=render.bpm, score=rating.score, swing=render.swing,
                                 velocity=rating.velocity, humanize=render.humanize)
            archive.writestr(f"{name}.json", loop_json(record))
    return buffer.getvalue()
