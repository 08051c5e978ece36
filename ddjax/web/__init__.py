"""Web: the rating page of ``ddjax serve`` and what stands behind it.

The HTTP server (``server``, with ``free_routes``, ``study_routes`` and
``researcher_routes``), the desks it serves (``desk`` for one session rated alone,
``study`` for a study's participants, with ``study_steps``, ``consent``, ``headphones``
and ``study_archive``; both ``desks_protocol.RatingDesk``), the registry that opens them
(``registry``) and lets participants in (``admission``), the researcher's view
(``researcher``), the edits a page may send (``edit``), the HTTP refusals
(``http_errors``), a study server's memory (``memory``), and the page itself: plain HTML,
CSS and JS, no build step.

May import: every layer below it (core, io, sampling, learning, raters, session,
rescore), ``ddjax.errors`` and ``ddjax.limits``; not ``ddjax.cli``.
"""
