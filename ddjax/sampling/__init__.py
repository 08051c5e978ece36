"""ddjax.sampling: chains over loops.

Kernels (``mh``, ``climb``: one per module, pure ``init`` and ``step``, accept/reject once
in ``proposal``), drivers that run any kernel (``drivers``: a fixed number of steps, or
until a score), ``sampler`` (the public face: ``SamplerConfig`` and its modes), and the
engine (``engine``) that binds a kit and a critic to them.

May import ``ddjax.core``, ``ddjax.io``, ``ddjax.errors`` and ``ddjax.limits``; the kernels
and drivers need only JAX and the target they are given.
"""
