"""What a session proposes to the person: how it picks loops (``SessionConfig``) and the
loop as the person meets it (``Loop``). ``ddjax.session.session`` proposes them; the rating desks,
the terminal player and the experiments read them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ddjax.errors import DdjaxError
from ddjax.io.files import loop_record
from ddjax.core.groove import Humanize
from ddjax.core.loops import LOOP_PRIORS
from ddjax.sampling.sampler import SamplerConfig

QUERIES = ("thompson", "mean")


@dataclasses.dataclass(frozen=True)
class SessionConfig:
    """How a session learns and picks loops.

    Attributes:
      n_chains: MH chains run per loop to show; one of them, picked at random, is shown.
        Any one chain's final loop has the same distribution, so 1 (the default) costs
        least; 8 took 0.5 s more per rating on a 2-core CPU, for the same loops in law.
      n_iters: MH iterations per chain (the original's 100).
      temperature: MH temperature. At 0.1 the chain draws loops in proportion to f^10,
        so it prefers what the critic believes you like even while the critic is unsure;
        tuned on the zoo's tuning half (``bench/README.md``).
      seed: seeds the critic's initialisation, the sampler and training.
      query: "thompson" or "mean": which critic a loop's chain targets (see above).
      pretrained: None for the packaged prior, "none" for the paper's CNN from scratch,
        or a prior file (``ddjax.learning.taste_prior``).
      loop_prior: "musical" or "uniform" (the paper's generator): P(x) in the chains'
        target (``ddjax.core.loops``); it replaces the pipeline's.
    """

    n_chains: int = 1
    n_iters: int = 100
    temperature: float = 0.1
    seed: int = 0
    query: str = "thompson"
    pretrained: str | None = None
    loop_prior: str = "musical"

    def __post_init__(self):
        if self.loop_prior not in LOOP_PRIORS:
            raise DdjaxError(f"the loop prior must be one of {', '.join(LOOP_PRIORS)},"
                             f" got {self.loop_prior!r}")
        if self.query not in QUERIES:
            raise DdjaxError(f"query must be one of {', '.join(QUERIES)}, got {self.query!r}")

    @property
    def sampler(self) -> SamplerConfig:
        """The sampler that serves loops to the person."""
        return SamplerConfig("mh", self.n_iters, self.temperature)


@dataclasses.dataclass(frozen=True)
class Loop:
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
      swing: percent (``RenderConfig.swing``).
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
    swing: float = 0.0
    velocity: np.ndarray | None = None
    proposed: "Loop | None" = None
    humanize: Humanize = Humanize()

    def record(self) -> dict:
        """The loop's JSON object (``files.loop_record``)."""
        return loop_record(self.grid, list(self.sample_paths), bpm=self.bpm, score=self.score,
                           swing=self.swing, velocity=self.velocity,
                           humanize=self.humanize)
