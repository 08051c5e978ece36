"""ddjax: DeepDrummer's generator, critic and sampler as jit-compiled, vmapped JAX.

The package is one subpackage per layer, in the order data flows; a module imports its
own layer and the layers below it, never one above (``tests/test_layers.py`` checks it):

    cli        the ``ddjax`` command: parsing, the terminal player, thin shells
    web        ``ddjax serve``: the HTTP app, rating desks, studies, edits
    rescore    offline rescoring of many loops by K critics, sharded and resumable
    session    one person's session: the durable log, belief, experiments
    raters     simulated users and the zoo, for experiments and benchmarks
    learning   ratings -> a critic: learners, training, the taste prior
    sampling   chains over loops: kernels, drivers, the engine
    io         files: kits and what each sample is, loops, audio, MIDI, critics
    core       pure arrays: loops, render, features, critics, the pipeline

``errors`` and ``limits`` sit under every layer. The names below are the public API,
imported on first use so that ``import ddjax`` stays light.
"""

from __future__ import annotations

import importlib

from ddjax.errors import DdjaxError

__version__ = "0.1.0"

_PUBLIC = {
    "Loop": "ddjax.core.loops", "LoopConfig": "ddjax.core.loops",
    "RenderConfig": "ddjax.core.render", "FeatureConfig": "ddjax.core.features",
    "Humanize": "ddjax.core.groove", "CriticConfig": "ddjax.core.critic",
    "HeadConfig": "ddjax.core.critic", "init_critic": "ddjax.core.critic",
    "prob_like": "ddjax.core.critic", "Pipeline": "ddjax.core.pipeline",
    "critic_score": "ddjax.core.pipeline", "Kit": "ddjax.io.kit", "load_kit": "ddjax.io.kit",
    "bundled_kit": "ddjax.io.kit", "load_critic": "ddjax.io.critics",
    "save_critic": "ddjax.io.critics", "load_ensemble": "ddjax.io.critics",
    "Engine": "ddjax.sampling.engine", "SamplerConfig": "ddjax.sampling.sampler",
    "TrainConfig": "ddjax.learning.training", "load_prior": "ddjax.learning.taste_prior",
    "Session": "ddjax.session.session", "SessionConfig": "ddjax.session.config",
}
__all__ = ["DdjaxError", "__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'ddjax' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
