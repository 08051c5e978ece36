"""Cache-sized batching for memory-bound stages on CPU.

On this project's CPUs, rendering, MFCC and the critic are bound by memory traffic when
a whole batch goes through each stage at once: every intermediate (0.8 MB per loop after
the first convolution) spills to DRAM. Running a few loops at a time through a stage
keeps them in cache (measured in ``bench/OPTIMIZATION.md``). Accelerators want the whole
batch at once, so there the function is applied unchanged.
"""

from __future__ import annotations

from typing import Callable

import jax

CPU_CHUNK = 4  # loops per step on CPU; 2, 4 and 8 measure alike, 16 is slower


def in_chunks(fn: Callable, tree, n_lead: int, chunk: int = CPU_CHUNK):
    """``fn(tree)``, computed ``chunk`` rows at a time on CPU.

    Args:
      fn: a function batched over any leading axes of every leaf of ``tree``, whose
        outputs keep those leading axes.
      tree: a pytree whose leaves share ``n_lead`` leading (batch) axes.
      n_lead: how many leading axes are batch axes.
      chunk: rows per step.

    Returns:
      What ``fn(tree)`` returns, equal up to float rounding.
    """
    leaves = jax.tree_util.tree_leaves(tree)
    lead = leaves[0].shape[:n_lead]
    n = 1
    for size in lead:
        n *= size
    if jax.default_backend() != "cpu" or n <= chunk:
        return fn(tree)
    flat = jax.tree_util.tree_map(lambda x: x.reshape((n,) + x.shape[n_lead:]), tree)
    out = jax.lax.map(fn, flat, batch_size=chunk)  # fn on one row, vmapped over chunks
    return jax.tree_util.tree_map(lambda y: y.reshape(lead + y.shape[1:]), out)
