"""Session: one person's ratings, the critic that learns from them, and the disk.

``session.Session`` proposes loops (``session_loop.SessionLoop``, picked as
``config.SessionConfig`` says), records ratings and learns from them through a
``belief.Belief``; ``journal`` keeps its log and checkpoints, ``startup`` times its start,
``bundle`` zips the liked loops. ``experiment`` runs the paper's two-phase protocol with
any rater, and ``plots`` draws its results.

May import: core, io, sampling, learning, raters, ``ddjax.errors`` and ``ddjax.limits``;
not rescore, web or cli.
"""
