"""Session: one person's ratings, the critic that learns from them, and the disk.

``session.Session`` proposes loops (``session_loop.SessionLoop``, picked by a
``dealer.Dealer`` as ``config.SessionConfig`` says), records ratings and learns from them
through a ``belief.Belief``; ``hub.Hub`` lets many sessions share one engine and batches
their device work; ``journal`` keeps the log and checkpoints (``records`` checks what it
reads back), ``startup`` times the start, ``bundle`` zips the liked loops. ``experiment``
runs the paper's two-phase protocol with any rater, ``plots`` draws its results, and
``terminal`` shows the progress of long commands.

May import: core, io, sampling, learning, raters, ``ddjax.errors`` and ``ddjax.limits``;
not rescore, web or cli.
"""
