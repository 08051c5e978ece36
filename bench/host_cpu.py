"""The CPU's model name and core count, without JAX (``bench/export.py`` measures a
process that must not import it; ``bench/machine.py`` adds the vector units)."""

from __future__ import annotations

import os
import pathlib
import platform


def cpu_name() -> str:
    """``"<model name>, <N> cores"`` from /proc/cpuinfo (the platform's name elsewhere)."""
    name = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"
