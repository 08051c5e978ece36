"""Strided convolutions as matmuls, for the critic (``ddjax.core.critic``).

XLA's CPU convolution is slow for the critic's strided kernels, so a convolution whose
kernel is a whole number of strides (4 = 2 x 2 and 8 = 2 x 4) is computed by
space-to-depth: the input is cut into stride-sized blocks, and the convolution becomes a
2 x 2 stride-1 convolution over blocks, i.e. a few matmuls.

Two more arrangements serve training and the sampler on CPU:

- Every matmul is one 2-D matmul, so its gradients are 2-D matmuls too (a matmul that
  contracts several axes ran outside XLA's fast dot path). With ``dtype="bfloat16"`` the
  inputs are bfloat16 and the accumulation float32, in the backward pass too, through a
  custom VJP that keeps every operand row-major: XLA's CPU backend multiplies bfloat16 on
  the matrix units (AMX) only then.
- ``conv_into_blocks`` computes a layer directly in the block layout the next strided
  convolution reads, so the large first-layer activations are never copied into blocks.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Output size of a VALID convolution along one axis."""
    return (size - kernel) // stride + 1


def _transposed_copy(w: jax.Array) -> jax.Array:
    """``w.T`` as a new row-major array. XLA folds a plain transpose into the matmul that
    reads it (and then leaves AMX); a gather it does not fold."""
    k, n = w.shape
    return w.reshape(-1)[np.arange(k * n).reshape(k, n).T.reshape(-1)].reshape(n, k)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _lowp_matmul(x: jax.Array, w: jax.Array, dtype: str) -> jax.Array:
    return jnp.dot(x.astype(dtype), w.astype(dtype), preferred_element_type=jnp.float32)


def _lowp_matmul_fwd(x, w, dtype):
    x, w = x.astype(dtype), w.astype(dtype)
    return jnp.dot(x, w, preferred_element_type=jnp.float32), (x, w)


def _lowp_matmul_bwd(dtype, residuals, dy):
    x, w = residuals
    dy = dy.astype(dtype)
    dx = jnp.dot(dy, _transposed_copy(w), preferred_element_type=jnp.float32)
    dw = jnp.dot(x.T, dy, preferred_element_type=jnp.float32)
    return dx, dw


_lowp_matmul.defvjp(_lowp_matmul_fwd, _lowp_matmul_bwd)


def matmul(x: jax.Array, w: jax.Array, dtype: str = "float32") -> jax.Array:
    """``x @ w`` over the last axis of ``x``, as one 2-D matmul; ``dtype`` "bfloat16"
    multiplies in bfloat16 with float32 accumulation and output, forward and backward."""
    x2 = x.reshape(-1, x.shape[-1])
    y = x2 @ w if dtype == "float32" else _lowp_matmul(x2, w, dtype)
    return y.reshape(x.shape[:-1] + w.shape[-1:])


def _blocks(x: jax.Array, stride: tuple[int, int], blocks_h: int, blocks_w: int) -> jax.Array:
    """Space-to-depth: float32[batch, blocks_h, blocks_w, sh * sw * cin], depth ordered
    (row in block, column in block, channel)."""
    (sh, sw), (batch, cin) = stride, (x.shape[0], x.shape[-1])
    x = x[:, :blocks_h * sh, :blocks_w * sw, :]
    x = x.reshape(batch, blocks_h, sh, blocks_w, sw, cin).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(batch, blocks_h, blocks_w, sh * sw * cin)


def _block_kernel(kernel: jax.Array, stride: tuple[int, int]) -> jax.Array:
    """The kernel as float32[a, b, sh * sw * cin, cout]: a x b blocks of the stride."""
    kh, kw, cin, cout = kernel.shape
    sh, sw = stride
    w = kernel.reshape(kh // sh, sh, kw // sw, sw, cin, cout).transpose(0, 2, 1, 3, 4, 5)
    return w.reshape(kh // sh, kw // sw, sh * sw * cin, cout)


def conv_from_blocks(x: jax.Array, kernel: jax.Array, bias: jax.Array,
                     stride: tuple[int, int], dtype: str = "float32") -> jax.Array:
    """``strided_conv`` of an input already in blocks of the stride.

    Args:
      x: float32[batch, blocks_h, blocks_w, sh * sw * cin] (``_blocks``' layout).
      kernel, bias, stride, dtype: as ``strided_conv``.

    Returns:
      float32[batch, blocks_h - a + 1, blocks_w - b + 1, cout], a x b the kernel in blocks.
    """
    w = _block_kernel(kernel, stride)
    a, b, depth, cout = w.shape
    batch, blocks_h, blocks_w, _ = x.shape
    out_h, out_w = blocks_h - a + 1, blocks_w - b + 1
    if out_h * out_w * a * b * depth <= blocks_h * blocks_w * a * b * cout:
        # Few input channels: gather the a*b shifted blocks, then one matmul.
        patches = jnp.concatenate(
            [x[:, i:i + out_h, j:j + out_w, :] for i in range(a) for j in range(b)], axis=-1)
        return matmul(patches, w.reshape(a * b * depth, cout), dtype) + bias
    # Many input channels: one matmul against all a*b kernel blocks, then shifted sums.
    y = matmul(x, w.transpose(2, 0, 1, 3).reshape(depth, a * b * cout), dtype).reshape(
        batch, blocks_h, blocks_w, a, b, cout)
    out = sum(y[:, i:i + out_h, j:j + out_w, i, j, :] for i in range(a) for j in range(b))
    return out + bias


def strided_conv(x: jax.Array, kernel: jax.Array, bias: jax.Array,
                 stride: tuple[int, int], dtype: str = "float32") -> jax.Array:
    """A VALID 2-D convolution, NHWC, computed as matmuls.

    Args:
      x: float32[batch, height, width, in_channels].
      kernel: float32[kh, kw, in_channels, out_channels] (``flax.linen.Conv`` layout).
      bias: float32[out_channels].
      stride: (sh, sw); ``kh`` and ``kw`` must be multiples of them for the fast path.
      dtype: the matmuls' input type, "float32" or "bfloat16" (float32 accumulation).

    Returns:
      float32[batch, (height - kh) // sh + 1, (width - kw) // sw + 1, out_channels],
      equal to ``lax.conv_general_dilated(x, kernel, stride, 'VALID')`` + bias.
    """
    kh, kw, _, _ = kernel.shape
    sh, sw = stride
    if kh % sh or kw % sw:
        y = jax.lax.conv_general_dilated(x, kernel, stride, "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + bias
    out_h, out_w = conv_out(x.shape[1], kh, sh), conv_out(x.shape[2], kw, sw)
    blocks = _blocks(x, stride, out_h + kh // sh - 1, out_w + kw // sw - 1)
    return conv_from_blocks(blocks, kernel, bias, stride, dtype)


def conv_into_blocks(x: jax.Array, kernel: jax.Array, bias: jax.Array,
                     stride: tuple[int, int], next_kernel: tuple[int, int],
                     next_stride: tuple[int, int], dtype: str = "float32"
                     ) -> tuple[jax.Array, int, tuple[int, ...]]:
    """``strided_conv``'s output positions, ordered for the next strided convolution.

    The next convolution (kernel ``next_kernel``, stride ``next_stride``) reads this one's
    output in blocks of its stride (``_blocks``). Here the patches are gathered from the
    (small) input in that order, so the one matmul writes the output already in blocks.

    Args:
      x, kernel, bias, stride, dtype: as ``strided_conv`` (kernel a multiple of stride).
      next_kernel, next_stride: the next convolution's (a multiple of its stride).

    Returns:
      ``(rows, n_read, shape)``: rows float32[positions, cout] holds every output position
      of every clip: the first ``n_read`` rows are the ones the next convolution reads,
      which ``rows[:n_read].reshape(shape)`` puts in its blocked layout (for
      ``conv_from_blocks``); the rest are the edge positions it skips, which only
      statistics over the whole output (batch norm) see.
    """
    kh, kw, _, cout = kernel.shape
    sh, sw = stride
    (nkh, nkw), (nsh, nsw) = next_kernel, next_stride
    batch = x.shape[0]
    out_h, out_w = conv_out(x.shape[1], kh, sh), conv_out(x.shape[2], kw, sw)
    a, b = kh // sh, kw // sw
    blocks = _blocks(x, stride, out_h + a - 1, out_w + b - 1)
    # Blocks of the next convolution: it reads rows < nsh * next_h and cols < nsw * next_w.
    next_h = conv_out(out_h, nkh, nsh) + nkh // nsh - 1
    next_w = conv_out(out_w, nkw, nsw) + nkw // nsw - 1

    def patches(row0, n_rows, row_step, col0, n_cols, col_step):
        """Patches of output positions (row0 + row_step r, col0 + col_step c)."""
        return jnp.concatenate(
            [blocks[:, row0 + i:row0 + i + row_step * (n_rows - 1) + 1:row_step,
                    col0 + j:col0 + j + col_step * (n_cols - 1) + 1:col_step, :]
             for i in range(a) for j in range(b)], axis=-1)

    read = jnp.stack([jnp.stack([patches(p, next_h, nsh, q, next_w, nsw)
                                 for q in range(nsw)], axis=3) for p in range(nsh)], axis=3)
    depth = read.shape[-1]
    parts = [read.reshape(-1, depth)]
    if out_h > nsh * next_h:
        parts.append(patches(nsh * next_h, out_h - nsh * next_h, 1, 0, out_w, 1)
                     .reshape(-1, depth))
    if out_w > nsw * next_w:
        parts.append(patches(0, nsh * next_h, 1, nsw * next_w, out_w - nsw * next_w, 1)
                     .reshape(-1, depth))
    w = _block_kernel(kernel, stride).reshape(depth, cout)
    rows = matmul(jnp.concatenate(parts), w, dtype) + bias
    n_read = batch * next_h * next_w * nsh * nsw
    return rows, n_read, (batch, next_h, next_w, nsh * nsw * cout)
