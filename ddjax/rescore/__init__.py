"""Rescoring: every loop of a large set against K critics, streamed, sharded over devices
and hosts, resumable. In data-flow order: ``inputs`` (paths -> items), ``scoring`` (the
sharded device step), ``output`` (CSV rows, progress, ranked exports), ``run`` (the
resumable loop over batches), ``shards`` (each host's settings record, ``--merge``).

May import: ``ddjax.core``, ``ddjax.io``, ``ddjax.sampling``, ``ddjax.learning``,
``ddjax.errors``, ``ddjax.limits``.
"""
