"""Web: the rating page of ``ddjax serve`` and what stands behind it.

The HTTP server (``server``), the desks it serves (``desk`` for one session rated alone,
``study`` for a study's participants, both ``desks_protocol.RatingDesk``), the registry
that opens them (``registry``), the edits a page may send (``edit``), the HTTP refusals
(``http_errors``), and the page itself: plain HTML, CSS and JS, no build step.

May import: every layer below it (core, io, sampling, learning, raters, session,
rescore), ``ddjax.errors`` and ``ddjax.limits``; not ``ddjax.cli``.
"""
