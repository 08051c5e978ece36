"""How a session picks the loops it proposes to the person (``SessionConfig``); the loop
as the person meets it is ``ddjax.session.session_loop.SessionLoop``.
"""

from __future__ import annotations

import dataclasses

from ddjax.core.loops import DEFAULT_DISTANCE, LOOP_PRIORS
from ddjax.errors import DdjaxError
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
      loop_prior: "musical" (the default: a session's critic learns a taste far better
        under it than under "learned", ``bench/README.md``), "learned" (real patterns, by
        style) or "uniform" (the paper's generator): P(x) in the chains' target
        (``ddjax.core.loops``); it replaces the pipeline's.
      style: the learned prior's style, or None for its mixture of every style.
      distance: the most cells a "more like this" variation changes.
      loudness: the integrated loudness (LUFS) of the loops the person hears and gets
        (``ddjax.io.loudness``; ``ddjax play`` and ``serve`` default to ``DEFAULT_LUFS``),
        or None for the raw mix (simulated raters hear that). Never the critic's input.
    """

    n_chains: int = 1
    n_iters: int = 100
    temperature: float = 0.1
    seed: int = 0
    query: str = "thompson"
    pretrained: str | None = None
    loop_prior: str = "musical"
    style: str | None = None
    distance: int = DEFAULT_DISTANCE
    loudness: float | None = None

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
