"""Cache blocking: a large matrix product as a stack of small ones.

A block of ``block`` rows of the output and the rows of the input it reads stay in the core's
cache while several products are summed into it. ``matmul`` on a stack of blocks runs one
BLAS product per block without coming back to Python, and each product is small enough for
one BLAS thread.
"""
from __future__ import annotations

from ...backend import get_array_module

#: Multiply-adds per block product on the CPU (about half a million): rows go in blocks of
#: BLOCK_WORK // (C_in * C_out) (measured best among 2^18..2^21).
BLOCK_WORK = 1 << 19
#: Blocks summed together per pass: fewer trips through Python, partial sums still in cache.
BLOCKS_PER_GROUP = 8


def block_rows(inner: int, outer: int) -> int:
    """Rows per block for products with ``inner`` x ``outer`` weights."""
    return max(1, BLOCK_WORK // (inner * outer))


def blocked_matmul(a, b, out, block: int) -> None:
    """out = a @ b, computed as a stack of products of ``block`` rows of ``a``."""
    xp = get_array_module(a)
    whole = a.shape[0] // block * block
    if whole:
        xp.matmul(a[:whole].reshape(-1, block, a.shape[1]), b, out=out[:whole].reshape(-1, block, out.shape[1]))
    if whole < a.shape[0]:
        xp.matmul(a[whole:], b, out=out[whole:])


def blocked_inner_product(a, g, block: int, scratch):
    """a^T @ g, as the sum of the products of blocks of ``block`` rows (``scratch`` holds the parts)."""
    xp = get_array_module(a)
    count = a.shape[0] // block
    whole = count * block
    total = xp.zeros(scratch.shape[1:], dtype=scratch.dtype)
    if count:
        parts = scratch[:count]
        xp.matmul(a[:whole].reshape(count, block, a.shape[1]).transpose(0, 2, 1),
                  g[:whole].reshape(count, block, g.shape[1]), out=parts)
        total += parts.sum(axis=0)
    if whole < a.shape[0]:
        total += a[whole:].T @ g[whole:]
    return total
