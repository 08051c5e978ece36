"""The loop as the person meets it (``SessionLoop``): the arrays of a ``ddjax.core.loops.Loop``
with what the person hears and is told about them (audio, sample names, score, tempo).
``ddjax.session.session`` proposes them; the rating desks, the terminal player and the
experiments read them.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ddjax.core.groove import STRAIGHT, Humanize
from ddjax.core.loops import Loop as LoopArrays
from ddjax.core.render import RenderConfig
from ddjax.io.files import loop_record

__all__ = ["SessionLoop"]


@dataclasses.dataclass(frozen=True)
class SessionLoop:
    """A loop as the person meets it.

    Attributes:
      id: unique within the session.
      audio: float32[samples], the listening render.
      grid: bool[tracks, steps].
      samples: int[tracks], kit indices.
      sample_paths: each track's sample, relative to the kit folder.
      score: the proposing critic's P(like).
      critic_version: how many ratings that critic had trained on.
      bpm: tempo.
      swing: percent, MPC scale (``RenderConfig.swing``).
      velocity: int[tracks, steps], each cell's MIDI velocity, or None: every hit at 127.
      proposed: the loop as the sampler proposed it, when the person edited it into this
        one (``Session.edited``); None for a loop as proposed.
      humanize: the render's seeded jitter (``RenderConfig.humanize``).
    """

    id: int
    audio: np.ndarray
    grid: np.ndarray
    samples: np.ndarray
    sample_paths: tuple[str, ...]
    score: float
    critic_version: int
    bpm: float
    swing: float = STRAIGHT
    velocity: np.ndarray | None = None
    proposed: "SessionLoop | None" = None
    humanize: Humanize = Humanize()

    @classmethod
    def of(cls, loop_id: int, arrays: LoopArrays, audio: np.ndarray, *,
           kit_names: Sequence[str], score: float, critic_version: int,
           render: RenderConfig) -> "SessionLoop":
        """One loop (unbatched ``arrays``: grid, samples, velocity, kept as given) with its
        listening render ``audio``, named from the kit's ``kit_names`` and played at
        ``render``'s tempo, swing and humanize."""
        return cls(loop_id, audio, arrays.grid, arrays.samples,
                   tuple(kit_names[i] for i in arrays.samples), score, critic_version,
                   render.bpm, render.swing, arrays.velocity, humanize=render.humanize)

    def record(self) -> dict:
        """The loop's JSON object (``files.loop_record``)."""
        return loop_record(self.grid, list(self.sample_paths), bpm=self.bpm, score=self.score,
                           swing=self.swing, velocity=self.velocity,
                           humanize=self.humanize)
