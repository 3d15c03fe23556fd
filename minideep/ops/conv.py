"""2-D convolution (cross-correlation, as in every deep-learning library) by im2col.

The index arithmetic, once: with the input padded by p on each side and stride s, output
pixel (oh, ow) sees the input pixels (s*oh + i, s*ow + j) for kernel offsets i < kh, j < kw,
so OH = (H + 2p - kh) // s + 1 (likewise OW). im2col copies, for every kernel offset
(i, j), the strided slice x_pad[:, :, i : i + s*OH : s, j : j + s*OW : s] into a column
matrix with one row per output pixel and one column per (channel, i, j); the convolution
is then a single matrix product with the weight reshaped to (C_out, C_in*kh*kw).
col2im is the exact reverse: it adds each column back onto the slice it came from.
"""
from __future__ import annotations

from typing import Any

from ..autograd import Function, Tensor
from ..backend import get_array_module


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


def im2col(x_pad, kh: int, kw: int, stride: tuple[int, int], oh: int, ow: int):
    """Columns (N*OH*OW, C*kh*kw) of a padded (N, C, Hp, Wp) input, one row per output pixel."""
    xp = get_array_module(x_pad)
    n, c = x_pad.shape[:2]
    sh, sw = stride
    cols = xp.empty((n, oh, ow, c, kh, kw), dtype=x_pad.dtype)
    for i in range(kh):
        for j in range(kw):
            window = x_pad[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw]
            cols[:, :, :, :, i, j] = window.transpose(0, 2, 3, 1)
    return cols.reshape(n * oh * ow, c * kh * kw)


def col2im(cols, padded_shape: tuple[int, ...], kh: int, kw: int, stride: tuple[int, int], oh: int, ow: int):
    """The adjoint of ``im2col``: add every column entry back onto the input pixel it was read from."""
    xp = get_array_module(cols)
    n, c = padded_shape[:2]
    sh, sw = stride
    cols = cols.reshape(n, oh, ow, c, kh, kw)
    dx = xp.zeros(padded_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dx


class Conv2d(Function):
    """y[n, o] = b[o] + sum_{c, i, j} W[o, c, i, j] x_pad[n, c, s*oh + i, s*ow + j].

    With X the im2col matrix and G = dL/dy as (N*OH*OW, C_out):
    dL/dW = G^T X,   dL/db = sum of G over rows,   dL/dx = col2im(G W).
    """

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int]) -> None:
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias=None):
        xp = get_array_module(x)
        n, _, h, w = x.shape
        c_out, _, kh, kw = weight.shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        self.oh, self.ow = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
        x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        cols = im2col(x_pad, kh, kw, self.stride, self.oh, self.ow)
        y = cols @ weight.reshape(c_out, -1).T
        if bias is not None:
            y += bias
        # Keep the padded input, not the columns: they are kh*kw times larger and cheap to rebuild.
        self.x_pad, self.weight = x_pad, weight
        return y.reshape(n, self.oh, self.ow, c_out).transpose(0, 3, 1, 2)

    def backward(self, grad):
        c_out, _, kh, kw = self.weight.shape
        (ph, pw), x_pad = self.padding, self.x_pad
        g = grad.transpose(0, 2, 3, 1).reshape(-1, c_out)
        gw = gx = None
        if self.needs_input_grad[1]:
            cols = im2col(x_pad, kh, kw, self.stride, self.oh, self.ow)
            gw = (g.T @ cols).reshape(self.weight.shape)
        if self.needs_input_grad[0]:
            dx_pad = col2im(g @ self.weight.reshape(c_out, -1), x_pad.shape, kh, kw, self.stride, self.oh, self.ow)
            gx = dx_pad[:, :, ph : ph + x_pad.shape[2] - 2 * ph, pw : pw + x_pad.shape[3] - 2 * pw]
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, g.sum(axis=0)


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
