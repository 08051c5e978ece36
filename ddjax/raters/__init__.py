"""Raters: simulated people that like or dislike a loop by listening to it.

``users`` (the built-in tastes and ``make_user``), ``zoo`` (a population of varied
users), ``listening`` (what they hear of a loop) and ``load`` (a rater from a file, a
module or a built-in name). A rater takes a loop as the person meets it (its ``audio``)
and returns True, False or None.

May import: core, io, sampling, learning, ``ddjax.errors`` and ``ddjax.limits``; not
session or anything above it.
"""
