"""2-D convolution (cross-correlation, as in every deep-learning library).

The index arithmetic, once. With the input padded by p on each side and stride s, output
pixel (oh, ow) sees the input pixels (s*oh + i, s*ow + j) for kernel offsets i < kh, j < kw,
so OH = (H + 2p - kh) // s + 1 (likewise OW), and

    y[n, o, oh, ow] = b[o] + sum_{c, i, j} W[o, c, i, j] x_pad[n, c, s*oh + i, s*ow + j].

Two ways to compute it, both a few large matrix products:

* stride 1, "shifted matrix products" (the fast path). Store the padded input channels-last
  (NHWC) and flatten it to a matrix X with one row per padded pixel, row
  r = n*Hp*Wp + h*Wp + w, and one column per channel. The pixel (oh + i, ow + j) is then row
  q + i*Wp + j, where q = n*Hp*Wp + oh*Wp + ow is output pixel (oh, ow)'s own row. So

      Y[q] = sum_{i,j} X[q + i*Wp + j] @ W_ij,   W_ij = W[:, :, i, j]^T  (C_in x C_out):

  kh*kw matrix products of row-shifted slices of X, no column matrix at all. Y is computed
  on the whole padded grid (rows with oh >= OH or ow >= OW are junk) and cropped: a view.
* any stride, im2col: copy, for every kernel offset, the strided slice of x_pad into a column
  matrix (one row per output pixel, one column per (i, j, channel)) and multiply once.

The backward pass of the shifted form is the same sum read in reverse: each output row q
sent X[q + off] @ W_ij forward, so dX[q + off] += G[q] @ W_ij^T and dW_ij = sum_q X[q + off]^T G[q]
(G = dL/dY on the padded grid, zero on the junk rows). Written as a gather over dX's rows,
dX[r] = sum_ij G[r - off_ij] @ W_ij^T, it is again a sum of shifted products (the convolution
of G with the flipped kernel), so forward and backward share one routine, ``shifted_matmul``.

The output keeps the channels-last memory of Y behind its (N, C, H, W) shape. NumPy's
elementwise ops preserve that layout, so the next convolution reads its input without a
transposing copy.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ..autograd import Function, Tensor
from ..backend import get_array_module, get_num_threads

#: Multiply-adds per matrix product on the CPU (about half a million). Rows go in blocks of
#: BLOCK_WORK // (C_in * C_out): a block of Y and the rows of X it reads stay in the core's
#: cache while the kh*kw products are summed into it (measured best among 2^18..2^21).
#: Each product runs on one OpenBLAS thread (``md.set_num_threads`` sets one, and a product
#: this small would get one anyway): OpenBLAS's threads spin-wait for each other, which is
#: very slow (10x and worse) when other processes share the cores. The cores are used by
#: ``md.get_num_threads()`` Python threads instead, each taking a contiguous share of the
#: rows (NumPy releases the GIL inside ``matmul``).
BLOCK_WORK = 1 << 19
#: Blocks summed together per pass: fewer trips through Python, partial sums still in cache.
BLOCKS_PER_GROUP = 8
#: Inputs with fewer channels than this (an RGB image) get their kernel rows folded (see
#: ``Conv2d._shifted_operands``): products of width C_in = 3 are too thin to run fast.
FOLD_BELOW_CHANNELS = 16
_pool: ThreadPoolExecutor | None = None
_pool_owner: tuple[int, int] | None = None  # (workers, pid) the pool was made for


def _in_parallel(task: Callable[[int, int], Any], total: int) -> list[Any]:
    """[task(start, stop)] over ``get_num_threads()`` contiguous shares of range(total), run in threads."""
    global _pool, _pool_owner
    threads = get_num_threads()
    bounds = [total * k // threads for k in range(threads + 1)]
    shares = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    if len(shares) < 2:
        return [task(a, b) for a, b in shares]
    owner = (threads, os.getpid())
    if _pool is None or _pool_owner != owner:  # a new count, or a forked child (it has none of the parent's threads)
        if _pool is not None and _pool_owner[1] == owner[1]:
            _pool.shutdown(wait=False)
        _pool, _pool_owner = ThreadPoolExecutor(threads, thread_name_prefix="minideep-conv"), owner
    return [f.result() for f in [_pool.submit(task, a, b) for a, b in shares]]


def pair(value: Any, name: str, op: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair of non-negative ints."""
    if isinstance(value, int):
        value = (value, value)
    if len(value) != 2 or not all(isinstance(v, int) and v >= 0 for v in value):
        raise ValueError(f"{op}: {name} must be a non-negative int or a pair of them, got {value!r}")
    return tuple(value)


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """(size + 2 padding - kernel) // stride + 1, the number of window positions."""
    return (size + 2 * padding - kernel) // stride + 1


def pad_channels_last(x, ph: int, pw: int, front_rows: int = 0):
    """x (N, C, H, W) copied into a zero-padded channels-last (N, H + 2ph, W + 2pw, C) array.

    With ``front_rows`` the array is the tail of a flat (front_rows + N*Hp*Wp, C) buffer whose
    first ``front_rows`` rows are zeros too; ``shifted_matmul`` then may read before row 0.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    hp, wp = h + 2 * ph, w + 2 * pw
    flat = xp.empty((front_rows + n * hp * wp, c), dtype=x.dtype)
    flat[:front_rows] = 0
    padded = flat[front_rows:].reshape(n, hp, wp, c)
    # Zero only the border: the interior is overwritten at once.
    padded[:, :ph], padded[:, ph + h :], padded[:, :, :pw], padded[:, :, pw + w :] = 0, 0, 0, 0
    padded[:, ph : ph + h, pw : pw + w] = x.transpose(0, 2, 3, 1)
    return flat, padded


def shifted_matmul(src, weights, offsets: list[int], out, bias=None) -> None:
    """out[q] = sum_k src[q + offsets[k]] @ weights[k] (+ bias), for every row q of ``out``.

    ``src`` is (R, C_in), ``weights[k]`` (C_in, C_out), ``out`` (L, C_out) with
    L + max(offsets) <= R. On the CPU the rows go in groups of BLOCKS_PER_GROUP blocks (see
    BLOCK_WORK), shared among threads; a GPU takes all rows at once.
    """
    xp = get_array_module(src)
    on_cpu = xp.__name__ == "numpy"
    block = max(1, BLOCK_WORK // (src.shape[1] * out.shape[1])) if on_cpu else out.shape[0]
    group = block * BLOCKS_PER_GROUP if on_cpu else out.shape[0]

    def rows(first: int, end: int) -> None:
        scratch = xp.empty((min(group, end - first), out.shape[1]), dtype=out.dtype)
        for start in range(first, end, group):
            stop = min(start + group, end)
            acc, tmp = out[start:stop], scratch[: stop - start]
            for k, off in enumerate(offsets):
                blocked_matmul(src[start + off : stop + off], weights[k], acc if k == 0 else tmp, block)
                if k:
                    acc += tmp
            if bias is not None:
                acc += bias

    if on_cpu:
        _in_parallel(rows, out.shape[0])
    else:
        rows(0, out.shape[0])


def blocked_matmul(a, b, out, block: int) -> None:
    """out = a @ b, computed as a stack of products of ``block`` rows of ``a``.

    ``matmul`` on a stack runs one BLAS product per block without coming back to Python, and
    each product is small enough for one BLAS thread.
    """
    xp = get_array_module(a)
    whole = a.shape[0] // block * block
    if whole:
        xp.matmul(a[:whole].reshape(-1, block, a.shape[1]), b, out=out[:whole].reshape(-1, block, out.shape[1]))
    if whole < a.shape[0]:
        xp.matmul(a[whole:], b, out=out[whole:])


def shifted_weight_grad(src, grad, offsets: list[int]):
    """dW[k] = sum_q src[q + offsets[k]]^T grad[q]: (len(offsets), C_in, C_out), in blocks like the forward."""
    xp = get_array_module(src)
    shape = (len(offsets), src.shape[1], grad.shape[1])
    on_cpu = xp.__name__ == "numpy"
    block = max(1, BLOCK_WORK // (shape[1] * shape[2])) if on_cpu else grad.shape[0]
    group = block * BLOCKS_PER_GROUP if on_cpu else grad.shape[0]

    def rows(first: int, end: int):
        dw = xp.zeros(shape, dtype=grad.dtype)
        scratch = xp.empty((max(1, group // block), *shape[1:]), dtype=grad.dtype)
        for start in range(first, end, group):
            stop = min(start + group, end)
            for k, off in enumerate(offsets):
                dw[k] += blocked_inner_product(src[start + off : stop + off], grad[start:stop], block, scratch)
        return dw

    if on_cpu:
        return sum(_in_parallel(rows, grad.shape[0]))
    return rows(0, grad.shape[0])


def blocked_inner_product(a, g, block: int, scratch):
    """a^T @ g, as the sum of the products of blocks of ``block`` rows (as in ``blocked_matmul``)."""
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


class Conv2d(Function):
    """y[n, o] = b[o] + sum_{c, i, j} W[o, c, i, j] x_pad[n, c, s*oh + i, s*ow + j].

    With X the input as a matrix (columns of im2col, or row-shifted slices of the padded
    image) and G = dL/dy as (pixels, C_out):
    dL/dW = X^T G,   dL/db = sum of G over pixels,   dL/dx = the adjoint gather of G W.
    """

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int]) -> None:
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias=None):
        n, c_in, h, w = x.shape
        c_out, _, kh, kw = weight.shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        self.oh, self.ow = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
        # Keep a reference to the input (alive anyway as this op's parent), not a padded copy:
        # backward rebuilds the padding, which costs one copy but saves a whole activation.
        self.x, self.weight = x, weight
        if self.stride == (1, 1):
            return self._forward_shifted(x, weight, bias)
        return self._forward_im2col(x, weight, bias)

    def backward(self, grad):
        if self.stride == (1, 1):
            gx, gw, gb = self._backward_shifted(grad)
        else:
            gx, gw, gb = self._backward_im2col(grad)
        return (gx, gw) if len(self.needs_input_grad) == 2 else (gx, gw, gb)

    # --- stride 1: shifted matrix products on the flattened padded image -----------------
    def _shifted_operands(self, flat, wp: int):
        """(rows to read, weight of each shift, row offset of each shift) for ``shifted_matmul``.

        One product per kernel offset (i, j), reading row q + i*Wp + j. For a narrow input
        (C_in < FOLD_BELOW_CHANNELS) the kw pixels of a kernel row are first copied side by
        side, row r of ``wide`` = [X[r], X[r+1], ..., X[r+kw-1]], so that one product per
        kernel row i, at offset i*Wp and of width kw*C_in, does the work of kw thin ones.
        """
        xp = get_array_module(flat)
        c_out, c_in, kh, kw = self.weight.shape
        w_ij = xp.ascontiguousarray(self.weight.transpose(2, 3, 1, 0))  # (kh, kw, C_in, C_out)
        if c_in >= FOLD_BELOW_CHANNELS or kw == 1:
            return flat, w_ij.reshape(kh * kw, c_in, c_out), [i * wp + j for i in range(kh) for j in range(kw)]
        rows = flat.shape[0] - (kw - 1)
        wide = xp.concatenate([flat[j : j + rows] for j in range(kw)], axis=1)
        return wide, w_ij.reshape(kh, kw * c_in, c_out), [i * wp for i in range(kh)]

    def _forward_shifted(self, x, weight, bias):
        xp = get_array_module(x)
        n, c_in, h, w = x.shape
        c_out, _, kh, kw = weight.shape
        ph, pw = self.padding
        flat, padded = pad_channels_last(x, ph, pw)
        hp, wp = padded.shape[1:3]
        y = xp.empty((n * hp * wp, c_out), dtype=x.dtype)
        # Rows q past `last` would read beyond the image: they are junk rows (oh >= OH) anyway.
        last = n * hp * wp - ((kh - 1) * wp + kw - 1)
        src, w_k, offsets = self._shifted_operands(flat, wp)
        # A narrow input's widened copy is small (kw*C_in columns): keep it for dW, do not rebuild it.
        self.wide = src if src is not flat else None
        shifted_matmul(src, w_k, offsets, y[:last], bias)
        return y.reshape(n, hp, wp, c_out)[:, : self.oh, : self.ow].transpose(0, 3, 1, 2)

    def _backward_shifted(self, grad):
        xp = get_array_module(grad)
        x, weight = self.x, self.weight
        n, c_in, h, w = x.shape
        c_out, _, kh, kw = weight.shape
        ph, pw = self.padding
        hp, wp = h + 2 * ph, w + 2 * pw
        front = (kh - 1) * wp + kw - 1  # the largest offset
        last = n * hp * wp - front  # rows q beyond this are junk: G is zero there
        # G on the padded output grid, zero on the junk rows, with `front` zero rows before it
        # so that the gather dX[r] = sum G[r - off] W_ij^T never reads before its first row.
        g_flat = xp.zeros((front + n * hp * wp, c_out), dtype=grad.dtype)
        g_flat[front:].reshape(n, hp, wp, c_out)[:, : self.oh, : self.ow] = grad.transpose(0, 2, 3, 1)
        g = g_flat[front:]
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            dx = xp.empty((n * hp * wp, c_in), dtype=grad.dtype)
            w_flipped = xp.ascontiguousarray(weight.transpose(2, 3, 0, 1)).reshape(kh * kw, c_out, c_in)
            # dX[r] = sum_ij G[r - off_ij] W_ij^T = sum_ij g_flat[r + front - off_ij] W_ij^T
            offsets = [front - (i * wp + j) for i in range(kh) for j in range(kw)]
            shifted_matmul(g_flat, w_flipped, offsets, dx)
            gx = dx.reshape(n, hp, wp, c_in)[:, ph : ph + h, pw : pw + w].transpose(0, 3, 1, 2)
        if self.needs_input_grad[1]:
            if self.wide is not None:
                src, offsets = self.wide, [i * wp for i in range(kh)]
            else:
                src, _, offsets = self._shifted_operands(pad_channels_last(x, ph, pw)[0], wp)
            dw = shifted_weight_grad(src, g[:last], offsets)  # (kh*kw, C_in, C_out) or (kh, kw*C_in, C_out)
            gw = dw.reshape(kh, kw, c_in, c_out).transpose(3, 2, 0, 1).copy()
        if len(self.needs_input_grad) == 3 and self.needs_input_grad[2]:
            gb = g.sum(axis=0)
        return gx, gw, gb

    # --- any stride: im2col -------------------------------------------------------------
    def _forward_im2col(self, x, weight, bias):
        n = x.shape[0]
        c_out = weight.shape[0]
        cols = im2col(x, weight.shape[2:], self.stride, self.padding, self.oh, self.ow)
        y = cols @ weight.transpose(0, 2, 3, 1).reshape(c_out, -1).T
        if bias is not None:
            y += bias
        return y.reshape(n, self.oh, self.ow, c_out).transpose(0, 3, 1, 2)

    def _backward_im2col(self, grad):
        x, weight = self.x, self.weight
        c_out, c_in, kh, kw = weight.shape
        g = grad.transpose(0, 2, 3, 1).reshape(-1, c_out)
        w2 = weight.transpose(0, 2, 3, 1).reshape(c_out, -1)  # columns ordered (i, j, channel)
        gx = gw = gb = None
        if self.needs_input_grad[1]:
            cols = im2col(x, (kh, kw), self.stride, self.padding, self.oh, self.ow)
            gw = (g.T @ cols).reshape(c_out, kh, kw, c_in).transpose(0, 3, 1, 2).copy()
        if self.needs_input_grad[0]:
            gx = col2im(g @ w2, x.shape, (kh, kw), self.stride, self.padding, self.oh, self.ow)
        if len(self.needs_input_grad) == 3 and self.needs_input_grad[2]:
            gb = g.sum(axis=0)
        return gx, gw, gb


def im2col(x, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], oh: int, ow: int):
    """Columns (N*OH*OW, kh*kw*C) of x (N, C, H, W): row = output pixel, column = (i, j, channel)."""
    xp = get_array_module(x)
    n, c = x.shape[:2]
    (kh, kw), (sh, sw) = kernel, stride
    _, padded = pad_channels_last(x, *padding)
    cols = xp.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j] = padded[:, i : i + sh * oh : sh, j : j + sw * ow : sw]
    return cols.reshape(n * oh * ow, kh * kw * c)


def col2im(cols, shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
           padding: tuple[int, int], oh: int, ow: int):
    """The adjoint of ``im2col``: add every column entry back onto the input pixel it was read from."""
    xp = get_array_module(cols)
    n, c, h, w = shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    cols = cols.reshape(n, oh, ow, kh, kw, c)
    dx = xp.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, i : i + sh * oh : sh, j : j + sw * ow : sw] += cols[:, :, :, i, j]
    return dx[:, ph : ph + h, pw : pw + w].transpose(0, 3, 1, 2)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0) -> Tensor:
    """2-D convolution of an NCHW input.

    Shapes: x (N, C_in, H, W), weight (C_out, C_in, kh, kw), bias (C_out,) ->
    (N, C_out, OH, OW) with OH = (H + 2*padding - kh) // stride + 1 (likewise OW).
    """
    stride, padding = pair(stride, "stride", "conv2d"), pair(padding, "padding", "conv2d")
    if min(stride) < 1:
        raise ValueError(f"conv2d: stride must be at least 1, got {stride}")
    if x.ndim != 4:
        raise ValueError(f"conv2d: input must have shape (N, C, H, W), got {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must have shape (C_out, C_in, kh, kw), got {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels but weight expects {weight.shape[1]} (weight shape {weight.shape})")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias has shape {bias.shape} but weight has {weight.shape[0]} output channels")
    for size, k, p, axis in ((x.shape[2], weight.shape[2], padding[0], "height"), (x.shape[3], weight.shape[3], padding[1], "width")):
        if size + 2 * p < k:
            raise ValueError(f"conv2d: padded input {axis} {size + 2 * p} is smaller than the kernel's {k}")
    op = Conv2d(stride, padding)
    return op(x, weight) if bias is None else op(x, weight, bias)
