"""What the benchmarks ran on, and the machine's own yardstick, for their JSON lines.

Machines change from run to run, so every benchmark measures, in its own process, the
float32 peak of a large square matmul through XLA (``matmul_peak_gflops``), and the
bfloat16 peak (bfloat16 inputs, float32 accumulation) where the hardware multiplies
bfloat16 natively (AVX512-BF16 or AMX on x86, any GPU). A row's ``share_of_peak`` is its
GFLOP/s over the float32 peak.

Importing this module gives JAX one CPU device per core (``hardware.use_all_cores``), as
the ``ddjax`` command does, so the benchmarks measure what the command runs. The matmul
peak is one matmul on the first device, which still uses every core (measured: the same
peak with one device or two on a 2-core machine).
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
from host_cpu import cpu_name  # bench/ is on sys.path for every benchmark

from ddjax.core.hardware import cpu_flags, native_bfloat16, use_all_cores

use_all_cores()  # before JAX first uses its backend: benchmarks import this module early

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
PEAK_SIZE = {"cpu": 2048, "gpu": 8192}  # square matmul sizes: minutes on neither


def cpu_model() -> str:
    """The CPU's model name, its core count and the vector units it has, in one string."""
    name = cpu_name()
    units = ", ".join(f for f in FLAGS if f in cpu_flags())
    return name + (f" ({units})" if units else "")


def device_name() -> str:
    """``platform:kind`` of JAX's first device, e.g. ``cpu:cpu`` or ``gpu:NVIDIA H200``."""
    d = jax.devices()[0]
    return f"{d.platform}:{d.device_kind}"


def matmul_peak_gflops(dtype=jnp.float32, size: int | None = None, repeats: int = 7) -> float:
    """GFLOP/s of one ``size``-square matmul through XLA, median of ``repeats`` after a
    warm-up; float32 accumulation for any input ``dtype``."""
    size = size or PEAK_SIZE.get(jax.devices()[0].platform, 2048)
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32).astype(dtype)
    f = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
    jax.block_until_ready(f(a, b))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(a, b))
        times.append(time.perf_counter() - start)
    return 2.0 * size ** 3 / statistics.median(times) / 1e9


def yardstick() -> dict:
    """The fields every benchmark row carries: device, CPU model and the matmul peaks."""
    row = {"device": device_name(), "devices": jax.device_count(), "cpu": cpu_model(),
           "matmul_peak_gflops": round(matmul_peak_gflops(), 1)}
    row["bf16_peak_gflops"] = (round(matmul_peak_gflops(jnp.bfloat16), 1)
                               if native_bfloat16() else None)
    return row


def with_share(row: dict, peak: dict) -> dict:
    """``row`` with ``share_of_peak`` (its ``gflops_per_s`` over the float32 peak) and the
    yardstick's fields."""
    share = row["gflops_per_s"] / peak["matmul_peak_gflops"]
    return {**row, "share_of_peak": round(share, 3), **peak}
