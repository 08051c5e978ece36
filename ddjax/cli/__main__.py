"""``python -m ddjax.cli``: the ``ddjax`` command."""

import sys

from ddjax.cli.main import entry

sys.exit(entry())
