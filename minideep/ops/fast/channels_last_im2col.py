"""Strided convolution by im2col on a channels-last copy of the input (CPU).

The plain im2col (``ops/conv.py``) orders the columns (c, i, j) and slices an NCHW input.
Here the padded input is copied channels-last once, so each kernel offset's slice is a
block of whole pixel rows, the columns are ordered (i, j, c), and the output keeps the
channels-last memory that the next layer reads fastest (see ``shifted_conv.py``).
"""
from __future__ import annotations

from ...autograd import Function
from ...backend import get_array_module
from .shifted_conv import pad_channels_last


def im2col_channels_last(x, kernel, stride, padding, oh: int, ow: int):
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


def col2im_channels_last(cols, shape, kernel, stride, padding, oh: int, ow: int):
    """The adjoint of ``im2col_channels_last``."""
    xp = get_array_module(cols)
    n, c, h, w = shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    cols = cols.reshape(n, oh, ow, kh, kw, c)
    dx = xp.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, i : i + sh * oh : sh, j : j + sw * ow : sw] += cols[:, :, :, i, j]
    return dx[:, ph : ph + h, pw : pw + w].transpose(0, 3, 1, 2)


class ChannelsLastConvolutionBackward(Function):
    """conv2d for any stride; equal to ``ops.conv.ConvolutionBackward`` with (i, j, c) columns."""

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int]) -> None:
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias=None):
        (sh, sw), (ph, pw) = self.stride, self.padding
        n, c_out = x.shape[0], weight.shape[0]
        self.oh = (x.shape[2] + 2 * ph - weight.shape[2]) // sh + 1
        self.ow = (x.shape[3] + 2 * pw - weight.shape[3]) // sw + 1
        self.x, self.weight = x, weight
        cols = im2col_channels_last(x, weight.shape[2:], self.stride, self.padding, self.oh, self.ow)
        y = cols @ weight.transpose(0, 2, 3, 1).reshape(c_out, -1).T
        if bias is not None:
            y += bias
        return y.reshape(n, self.oh, self.ow, c_out).transpose(0, 3, 1, 2)

    def backward(self, grad):
        x, weight = self.x, self.weight
        c_out, c_in, kh, kw = weight.shape
        g = grad.transpose(0, 2, 3, 1).reshape(-1, c_out)
        w2 = weight.transpose(0, 2, 3, 1).reshape(c_out, -1)  # columns ordered (i, j, channel)
        gx = gw = None
        if self.needs_input_grad[1]:
            cols = im2col_channels_last(x, (kh, kw), self.stride, self.padding, self.oh, self.ow)
            gw = (g.T @ cols).reshape(c_out, kh, kw, c_in).transpose(0, 3, 1, 2).copy()
        if self.needs_input_grad[0]:
            gx = col2im_channels_last(g @ w2, x.shape, (kh, kw), self.stride, self.padding, self.oh, self.ow)
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, g.sum(axis=0)
