"""Pooling: max and average over sliding windows, and global average pooling.

Both loop over the kh*kw kernel offsets, never over pixels: the slice
x_pad[:, :, i : i + s*OH : s, j : j + s*OW : s] holds, for every output pixel, the input
that sits at offset (i, j) of its window (see ``conv.py`` for the index arithmetic).
"""
from __future__ import annotations

from typing import Any

from ..autograd import Function, Tensor
from ..backend import get_array_module
from .conv import output_size, pair


def _window(x_pad, i: int, j: int, stride: tuple[int, int], oh: int, ow: int):
    """The (N, C, OH, OW) slice of inputs at kernel offset (i, j) of every window."""
    return x_pad[:, :, i : i + stride[0] * oh : stride[0], j : j + stride[1] * ow : stride[1]]


def _geometry(op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any):
    kernel = pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else pair(stride, "stride", op)
    padding = pair(padding, "padding", op)
    if x.ndim != 4:
        raise ValueError(f"{op}: input must have shape (N, C, H, W), got {x.shape}")
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"{op}: kernel_size and stride must be at least 1, got {kernel} and {stride}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel}")
    if x.shape[2] + 2 * padding[0] < kernel[0] or x.shape[3] + 2 * padding[1] < kernel[1]:
        raise ValueError(f"{op}: input of spatial size {x.shape[2:]} is smaller than the kernel {kernel}")
    return kernel, stride, padding


class MaxPool2d(Function):
    """y = max over each window.   dL/dx = dL/dy at the (first) maximum of each window, else 0."""

    def __init__(self, kernel, stride, padding) -> None:
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x):
        xp = get_array_module(x)
        (kh, kw), (ph, pw) = self.kernel, self.padding
        self.oh, self.ow = output_size(x.shape[2], kh, self.stride[0], ph), output_size(x.shape[3], kw, self.stride[1], pw)
        x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-xp.inf) if ph or pw else x
        self.padded_shape = x_pad.shape
        y = _window(x_pad, 0, 0, self.stride, self.oh, self.ow).copy()
        self.argmax = xp.zeros(y.shape, dtype=xp.int8 if kh * kw < 128 else xp.int32)
        for k in range(1, kh * kw):
            candidate = _window(x_pad, k // kw, k % kw, self.stride, self.oh, self.ow)
            larger = candidate > y  # strict: ties keep the first maximum, as PyTorch does
            y = xp.where(larger, candidate, y)
            self.argmax[larger] = k
        return y

    def backward(self, grad):
        xp = get_array_module(grad)
        (kh, kw), (ph, pw) = self.kernel, self.padding
        dx = xp.zeros(self.padded_shape, dtype=grad.dtype)
        for k in range(kh * kw):
            _window(dx, k // kw, k % kw, self.stride, self.oh, self.ow)[...] += grad * (self.argmax == k)
        return dx[:, :, ph : dx.shape[2] - ph, pw : dx.shape[3] - pw]


class AvgPool2d(Function):
    """y = mean over each window (zero padding counted, as PyTorch's default).   dL/dx += dL/dy / (kh kw) per window."""

    def __init__(self, kernel, stride, padding) -> None:
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x):
        xp = get_array_module(x)
        (kh, kw), (ph, pw) = self.kernel, self.padding
        self.oh, self.ow = output_size(x.shape[2], kh, self.stride[0], ph), output_size(x.shape[3], kw, self.stride[1], pw)
        x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        self.padded_shape = x_pad.shape
        y = _window(x_pad, 0, 0, self.stride, self.oh, self.ow).copy()
        for k in range(1, kh * kw):
            y += _window(x_pad, k // kw, k % kw, self.stride, self.oh, self.ow)
        return y / y.dtype.type(kh * kw)

    def backward(self, grad):
        xp = get_array_module(grad)
        (kh, kw), (ph, pw) = self.kernel, self.padding
        dx = xp.zeros(self.padded_shape, dtype=grad.dtype)
        share = grad / grad.dtype.type(kh * kw)
        for k in range(kh * kw):
            _window(dx, k // kw, k % kw, self.stride, self.oh, self.ow)[...] += share
        return dx[:, :, ph : dx.shape[2] - ph, pw : dx.shape[3] - pw]


class GlobalAvgPool2d(Function):
    """y[n, c] = mean over (h, w) of x[n, c, h, w], kept as (N, C, 1, 1).   dL/dx = dL/dy / (H W)."""

    def forward(self, x):
        self.shape = x.shape
        return x.mean(axis=(2, 3), keepdims=True)

    def backward(self, grad):
        xp = get_array_module(grad)
        return xp.broadcast_to(grad / grad.dtype.type(self.shape[2] * self.shape[3]), self.shape).copy()


def max_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """Max pooling over (N, C, H, W); ``stride`` defaults to ``kernel_size``; padding is -inf."""
    return MaxPool2d(*_geometry("max_pool2d", x, kernel_size, stride, padding))(x)


def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """Average pooling over (N, C, H, W); ``stride`` defaults to ``kernel_size``."""
    return AvgPool2d(*_geometry("avg_pool2d", x, kernel_size, stride, padding))(x)


def adaptive_avg_pool2d(x: Tensor, output_size: Any = 1) -> Tensor:
    """Global average pooling to (N, C, 1, 1); only ``output_size=1`` is supported."""
    if output_size not in (1, (1, 1)):
        raise ValueError(f"adaptive_avg_pool2d: only output_size=1 (global average) is supported, got {output_size!r}")
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: input must have shape (N, C, H, W), got {x.shape}")
    return GlobalAvgPool2d()(x)
