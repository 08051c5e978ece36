"""CLI: the ``ddjax`` command, the thin, impure shell over every other layer.

``main`` dispatches the commands (``generate``, ``render``, ``export``, ``rescore``,
``play``, ``experiment``, ``serve``), ``parser`` and ``argtypes`` parse and check the
arguments, and ``session``, ``rescore`` and ``play`` run the commands of those layers.
Each command parses, checks and calls the layer that does the work; errors a user can
cause become one line on stderr and exit code 2.

May import: every layer (core, io, sampling, learning, raters, session, rescore, web),
``ddjax.errors`` and ``ddjax.limits``; nothing imports it but ``ddjax.cli`` itself.
"""
