"""Core: the pure array code of every stage, on device and jit-able.

Loops (the grid, its prior and proposal), render (loops -> audio), groove, features
(MFCC), descriptors, the critics (the paper's CNN and the Bayesian head) and the pipeline
that chains them into one score. Nothing here reads or writes a file or keeps state.

May import: numpy, jax, flax, ``ddjax.errors`` and ``ddjax.limits``; no other layer.
"""
