"""The learner registry: which learner a session learns with, and the pipeline it needs.

Learners are registered by kind (``LEARNERS``: ``"head"``, the default Bayesian head,
and ``"cnn"``, the paper's CNN), each with what it needs of the pipeline (``fit``) and
its factory (``build``). The user's ``--pretrained`` value, the same string session.json
records, is read once, at the boundary, by ``choose_learner``: None is the packaged taste
prior, ``"none"`` the paper's CNN, anything else a prior file. Below that, code sees a
``LearnerChoice`` and never a path.

Settings are built once, at the top: the shell (``Session.__init__``) calls
``learner_pipeline`` once for the pipeline the learner scores with and passes it down;
``make_learner`` only checks that it fits.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable, NamedTuple

import numpy as np

from ddjax.core.critic import CriticConfig
from ddjax.core.pipeline import Pipeline
from ddjax.errors import DdjaxError
from ddjax.learning.base import Learner, compiled
from ddjax.learning.bayes_head import bayes_head
from ddjax.learning.paper_cnn import paper_cnn
from ddjax.learning.taste_prior import Prior, load_prior
from ddjax.learning.training import TrainConfig

NONE = "none"  # the --pretrained value (and session.json's) for the paper's CNN


class LearnerChoice(NamedTuple):
    """A learner kind (a key of ``LEARNERS``) and, for the head, its taste prior."""

    kind: str
    prior: Prior | None = None


class LearnerKind(NamedTuple):
    """``fit(prior, pipeline) -> Pipeline``: the pipeline with the critic this learner
    learns (idempotent); ``build(prior, pipeline, train) -> Learner``; ``shared_init``:
    its ``init`` ignores the key, so sessions on one kit may share the initial state."""

    fit: Callable[[Prior | None, Pipeline], Pipeline]
    build: Callable[[Prior | None, Pipeline, TrainConfig], Learner]
    shared_init: bool = False


def _fit_head(prior: Prior, pipeline: Pipeline) -> Pipeline:
    bar = pipeline.render.bar_samples
    head = dataclasses.replace(  # the prior is per descriptor; the input follows the pipeline
        prior.head, n_mfcc=pipeline.features.n_mfcc, n_frames=pipeline.features.n_frames(bar),
        bar_samples=bar, sr=pipeline.features.sr, hop_length=pipeline.features.hop_length,
        n_mels=pipeline.features.n_mels)
    if head.n_steps != pipeline.loops.n_steps:
        raise DdjaxError(f"the prior {prior.source} is for {head.n_steps}-step loops, not"
                         f" {pipeline.loops.n_steps}; pass --pretrained none")
    return dataclasses.replace(pipeline, critic=head)


def _fit_cnn(prior: None, pipeline: Pipeline) -> Pipeline:
    # A CNN the caller sized (``Pipeline.sized``, a bench's small one) is kept as it is.
    critic = pipeline.critic if isinstance(pipeline.critic, CriticConfig) else CriticConfig()
    return dataclasses.replace(pipeline, critic=critic)


LEARNERS: dict[str, LearnerKind] = {
    "head": LearnerKind(_fit_head, lambda prior, pipeline, train: bayes_head(
        np.asarray(prior.mean), np.asarray(prior.scale), pipeline), shared_init=True),
    "cnn": LearnerKind(_fit_cnn, lambda prior, pipeline, train: paper_cnn(pipeline, train)),
}


def choose_learner(pretrained: str | os.PathLike | None) -> LearnerChoice:
    """The learner for a ``--pretrained`` value: None for the packaged taste prior,
    ``"none"`` for the paper's CNN from scratch, else a prior file's path.

    Raises:
      DdjaxError: the prior file is missing or damaged (``taste_prior.load_prior``).
    """
    if str(pretrained) == NONE:
        return LearnerChoice("cnn")
    return LearnerChoice("head", load_prior(pretrained))


def shares_initial_state(choice: LearnerChoice) -> bool:
    """Whether sessions with ``choice`` on one kit start from one state (its ``init``
    ignores the key: the head's does; the CNN's weights are drawn from it)."""
    return LEARNERS[choice.kind].shared_init


def learner_pipeline(choice: LearnerChoice, pipeline: Pipeline) -> Pipeline:
    """``pipeline`` with the critic ``choice`` learns and scores with; call it once, at
    the top, and pass the result down.

    Raises:
      DdjaxError: the prior does not fit the pipeline's loops.
    """
    return LEARNERS[choice.kind].fit(choice.prior, pipeline)


@functools.lru_cache(maxsize=None)
def _learner(choice: LearnerChoice, pipeline: Pipeline, train: TrainConfig) -> Learner:
    return compiled(LEARNERS[choice.kind].build(choice.prior, pipeline, train))


def make_learner(choice: LearnerChoice, pipeline: Pipeline,
                 train: TrainConfig = TrainConfig()) -> Learner:
    """The jit-compiled learner for ``choice``, shared by every caller with the same
    settings.

    Args:
      choice: from ``choose_learner``.
      pipeline: from ``learner_pipeline(choice, ...)``.
      train: the CNN's training settings (unused by the head).

    Raises:
      ValueError: ``pipeline``'s critic is not the one ``choice`` learns (a caller that
        skipped ``learner_pipeline``).
    """
    if learner_pipeline(choice, pipeline) != pipeline:
        raise ValueError(f"the pipeline's critic {pipeline.critic!r} is not the"
                         f" {choice.kind!r} learner's; build it with learner_pipeline")
    return _learner(choice, pipeline, train)
