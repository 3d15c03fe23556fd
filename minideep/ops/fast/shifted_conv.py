"""Stride-1 convolution as shifted matrix products on the flattened padded image (CPU).

Store the padded input channels-last (NHWC) and flatten it to a matrix X with one row per
padded pixel, row r = n*Hp*Wp + h*Wp + w, and one column per channel. The pixel (oh + i, ow + j)
is then row q + i*Wp + j, where q = n*Hp*Wp + oh*Wp + ow is output pixel (oh, ow)'s own row. So

    Y[q] = sum_{i,j} X[q + i*Wp + j] @ W_ij,   W_ij = W[:, :, i, j]^T  (C_in x C_out):

kh*kw matrix products of row-shifted slices of X, and no column matrix at all (im2col's is
kh*kw times the input). Y is computed on the whole padded grid (rows with oh >= OH or ow >= OW
are junk) and cropped: a view.

The backward pass is the same sum read in reverse: dW_ij = sum_q X[q + off]^T G[q] and, as a
gather over dX's rows, dX[r] = sum_ij G[r - off_ij] @ W_ij^T: again shifted products (the
convolution of G with the flipped kernel), so forward and backward share ``shifted_matmul``.

Why it is faster than the plain im2col on a CPU: no column matrix is written or read (memory
traffic, not arithmetic, bounds a 3x3 convolution at 32 channels), the products go in
cache-sized row blocks (``blocked.py``) spread over threads (``parallel.py``), and narrow
inputs are folded (``fold.py``). The output keeps Y's channels-last memory behind its
(N, C, H, W) shape, so the next convolution reads its input without a transposing copy.
"""
from __future__ import annotations

from ...autograd import Function
from ...backend import get_array_module
from .blocked import BLOCKS_PER_GROUP, block_rows, blocked_inner_product, blocked_matmul
from .fold import fold_rows, should_fold
from .parallel import in_parallel


def pad_channels_last(x, ph: int, pw: int, front_rows: int = 0):
    """x (N, C, H, W) copied into a zero-padded channels-last (N, H + 2ph, W + 2pw, C) array.

    Returns (flat, padded): ``flat`` is (front_rows + N*Hp*Wp, C) with ``front_rows`` zero rows
    first (``shifted_matmul`` may then read before row 0); ``padded`` is the image part of it.
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
    L + max(offsets) <= R. Rows go in groups of BLOCKS_PER_GROUP blocks, shared among threads.
    """
    xp = get_array_module(src)
    block = block_rows(src.shape[1], out.shape[1])
    group = block * BLOCKS_PER_GROUP

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

    in_parallel(rows, out.shape[0])


def shifted_weight_grad(src, grad, offsets: list[int]):
    """dW[k] = sum_q src[q + offsets[k]]^T grad[q]: (len(offsets), C_in, C_out), blocked like the forward."""
    xp = get_array_module(src)
    shape = (len(offsets), src.shape[1], grad.shape[1])
    block = block_rows(shape[1], shape[2])
    group = block * BLOCKS_PER_GROUP

    def rows(first: int, end: int):
        dw = xp.zeros(shape, dtype=grad.dtype)
        scratch = xp.empty((max(1, group // block), *shape[1:]), dtype=grad.dtype)
        for start in range(first, end, group):
            stop = min(start + group, end)
            for k, off in enumerate(offsets):
                dw[k] += blocked_inner_product(src[start + off : stop + off], grad[start:stop], block, scratch)
        return dw

    total = xp.zeros(shape, dtype=grad.dtype)  # stays zero for an empty batch (no rows at all)
    for part in in_parallel(rows, grad.shape[0]):
        total += part
    return total


class ShiftedConvolutionBackward(Function):
    """Stride-1 conv2d as shifted products; equal to ``ops.conv.ConvolutionBackward`` (see module doc)."""

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int]) -> None:
        assert stride == (1, 1), "shifted products compute stride-1 convolutions only"
        self.padding = padding

    def _operands(self, flat, wp: int):
        """(rows to read, weight of each shift, row offset of each shift), folded for a narrow input."""
        xp = get_array_module(flat)
        c_out, c_in, kh, kw = self.weight.shape
        w_ij = xp.ascontiguousarray(self.weight.transpose(2, 3, 1, 0))  # (kh, kw, C_in, C_out)
        if not should_fold(c_in, kw):
            return flat, w_ij.reshape(kh * kw, c_in, c_out), [i * wp + j for i in range(kh) for j in range(kw)]
        return fold_rows(flat, kw), w_ij.reshape(kh, kw * c_in, c_out), [i * wp for i in range(kh)]

    def forward(self, x, weight, bias=None):
        xp = get_array_module(x)
        n, _, h, w = x.shape
        c_out, _, kh, kw = weight.shape
        ph, pw = self.padding
        self.oh, self.ow = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
        # Keep the input (alive anyway as this op's parent), not a padded copy: backward rebuilds it.
        self.x, self.weight = x, weight
        flat, padded = pad_channels_last(x, ph, pw)
        hp, wp = padded.shape[1:3]
        y = xp.empty((n * hp * wp, c_out), dtype=x.dtype)
        # Rows q past `last` would read beyond the image: they are junk rows (oh >= OH) anyway.
        last = max(n * hp * wp - ((kh - 1) * wp + kw - 1), 0)
        src, w_k, offsets = self._operands(flat, wp)
        # A narrow input's folded copy is small (kw*C_in columns): keep it for dW, do not rebuild it.
        self.folded = src if src is not flat else None
        shifted_matmul(src, w_k, offsets, y[:last], bias)
        return y.reshape(n, hp, wp, c_out)[:, : self.oh, : self.ow].transpose(0, 3, 1, 2)

    def backward(self, grad):
        xp = get_array_module(grad)
        x, weight = self.x, self.weight
        n, c_in, h, w = x.shape
        c_out, _, kh, kw = weight.shape
        ph, pw = self.padding
        hp, wp = h + 2 * ph, w + 2 * pw
        front = (kh - 1) * wp + kw - 1  # the largest offset
        last = max(n * hp * wp - front, 0)  # rows q beyond this are junk: G is zero there
        # G on the padded output grid, zero on the junk rows, with `front` zero rows before it
        # so that the gather dX[r] = sum G[r - off] W_ij^T never reads before its first row.
        g_flat = xp.zeros((front + n * hp * wp, c_out), dtype=grad.dtype)
        g_flat[front:].reshape(n, hp, wp, c_out)[:, : self.oh, : self.ow] = grad.transpose(0, 2, 3, 1)
        g = g_flat[front:]
        gx = gw = None
        if self.needs_input_grad[0]:
            dx = xp.empty((n * hp * wp, c_in), dtype=grad.dtype)
            w_flipped = xp.ascontiguousarray(weight.transpose(2, 3, 0, 1)).reshape(kh * kw, c_out, c_in)
            # dX[r] = sum_ij G[r - off_ij] W_ij^T = sum_ij g_flat[r + front - off_ij] W_ij^T
            offsets = [front - (i * wp + j) for i in range(kh) for j in range(kw)]
            shifted_matmul(g_flat, w_flipped, offsets, dx)
            gx = dx.reshape(n, hp, wp, c_in)[:, ph : ph + h, pw : pw + w].transpose(0, 3, 1, 2)
        if self.needs_input_grad[1]:
            if self.folded is not None:
                src, offsets = self.folded, [i * wp for i in range(kh)]
            else:
                src, _, offsets = self._operands(pad_channels_last(x, ph, pw)[0], wp)
            dw = shifted_weight_grad(src, g[:last], offsets)  # (kh*kw, C_in, C_out) or (kh, kw*C_in, C_out)
            gw = dw.reshape(kh, kw, c_in, c_out).transpose(3, 2, 0, 1).copy()
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, g.sum(axis=0)
