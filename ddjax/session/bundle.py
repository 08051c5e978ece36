"""Bundles: every liked loop of a session in one zip a DAW user unpacks.

For each liked loop ``loop_NNNNN``: its Standard MIDI File (``.mid``), exactly one bar that
loops seamlessly (``loop_NNNNN_1bar_<bpm>bpm.wav``, 24-bit, with its tempo), and its JSON
(``ddjax render`` plays it again); and a ``README.txt`` that lists the tempo, the swing and
each loop's samples. The same zip comes from the rating page's "Download all liked" and
from ``ddjax export --session DIR --liked --out FILE.zip``.
"""

from __future__ import annotations

import io
import zipfile

import jax
import numpy as np

from ddjax.core.loops import Loop, with_velocity
from ddjax.core.render import RenderConfig, loop_render
from ddjax.io.encode import audio_bytes
from ddjax.io.export import loop_bar_path, midi_bytes, track_notes
from ddjax.io.files import loop_json, loop_record
from ddjax.io.kit import Kit
from ddjax.session.journal import Rating

_render_bars = jax.jit(loop_render, static_argnums=2)


def _readme(liked: list[Rating], kit: Kit, render: RenderConfig, title: str) -> str:
    lines = [f"{title}: {len(liked)} liked loops", "",
             f"Tempo: {render.bpm:g} BPM, 4/4, one bar of 16th notes per loop.",
             f"Swing: {render.swing:g}%." if render.swing else "Swing: none (straight 16ths).",
             f"Kit: {kit.root}", "",
             "Each loop: NAME.mid (General MIDI drums, channel 10), NAME_1bar_<bpm>bpm.wav"
             " (one bar that loops seamlessly, 24-bit), NAME.json (ddjax render NAME.json"
             " plays it again).", ""]
    for rating in liked:
        lines.append(f"loop_{rating.loop_id:05d}: "
                     + ", ".join(kit.names[i] for i in rating.samples))
    return "\n".join(lines) + "\n"


def liked_zip(ratings: list[Rating], kit: Kit, render: RenderConfig,
              notes: list[int | None], title: str = "ddjax") -> bytes:
    """The zip of the liked ``ratings``, as bytes.

    Args:
      ratings: a session's ratings in force (``Session.history``).
      kit: the session's kit.
      render: the session's render settings (tempo, swing).
      notes: the General MIDI note of every kit sample (``Kit.notes``).
      title: the README's first words.
    """
    liked = [r for r in ratings if r.liked]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", _readme(liked, kit, render, title))
        if liked:
            loops = with_velocity(Loop(
                np.stack([r.grid for r in liked]), np.stack([r.samples for r in liked]),
                np.stack([np.full(r.grid.shape, 127, np.int32) if r.velocity is None
                          else r.velocity for r in liked])))
            bars = np.asarray(_render_bars(kit.audio, loops, render))
        for rating, bar in zip(liked, bars if liked else []):
            name = f"loop_{rating.loop_id:05d}"
            track = track_notes([notes[i] for i in rating.samples])
            archive.writestr(f"{name}.mid", midi_bytes(rating.grid, track, render.bpm,
                                                       render.swing, rating.velocity,
                                                       render.humanize))
            archive.writestr(loop_bar_path(name, render.bpm).name,
                             audio_bytes(bar, kit.sr,
                                         tempo=(render.bpm, rating.grid.shape[-1] // 4)))
            record = loop_record(rating.grid, [kit.names[i] for i in rating.samples],
                                 bpm=render.bpm, score=rating.score, swing=render.swing,
                                 velocity=rating.velocity, humanize=render.humanize)
            archive.writestr(f"{name}.json", loop_json(record))
    return buffer.getvalue()
