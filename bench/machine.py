"""What the benchmarks ran on, for their JSON lines."""

from __future__ import annotations

import os
import pathlib
import platform

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_model() -> str:
    """The CPU's model name, its core count and the vector units it has, in one string."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    units = ", ".join(f for f in FLAGS if f in flags)
    return f"{name}, {os.cpu_count()} cores" + (f" ({units})" if units else "")
