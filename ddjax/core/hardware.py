"""What the device computes fast, read once from JAX and the CPU's flags."""

from __future__ import annotations

import functools
import os
import pathlib

import jax

BF16_UNITS = ("amx_bf16", "avx512_bf16")  # x86 units that multiply bfloat16 natively


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The first CPU's flags from /proc/cpuinfo (empty where there is none)."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bfloat16() -> bool:
    """True on a GPU or TPU, and on a CPU with AMX or AVX512-BF16: there, a bfloat16
    matmul with float32 accumulation runs several times faster than float32."""
    if jax.default_backend() != "cpu":
        return True
    return bool(set(BF16_UNITS) & cpu_flags())


DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def use_all_cores() -> None:
    """Gives JAX one CPU device per core this process may run on, so that independent
    chains run side by side (``Engine.sample``): XLA's CPU backend runs parts of a program
    (the FFT, for one) on a single core. Sets ``XLA_FLAGS``, so it takes effect only when
    called before JAX first uses its backend, and leaves a device count already set there
    alone. Other backends (GPU, TPU) are not affected."""
    flags = os.environ.get("XLA_FLAGS", "")
    if DEVICE_COUNT_FLAG in flags:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    os.environ["XLA_FLAGS"] = f"{flags} {DEVICE_COUNT_FLAG}={max(1, cores or 1)}".strip()
