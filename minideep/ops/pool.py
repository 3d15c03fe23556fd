"""Pooling: max and average over sliding windows, and global average pooling.

Both loop over the kh*kw kernel offsets, never over pixels: with the input padded and the
stride s, the slice x_pad[:, :, i : i + s*OH : s, j : j + s*OW : s] holds, for every output
pixel, the input at offset (i, j) of its window (the index arithmetic of ``conv.py``). So

    max pooling:      y = max over (i, j) of window_ij,   the gradient goes to the arg max;
    average pooling:  y = (1 / (kh kw)) sum over (i, j) of window_ij,   each input in a window
                      receives dL/dy / (kh kw), summed over the windows it sits in.

``minideep/ops/fast/channels_last_pool.py`` computes the same in the input's memory layout.
"""
from __future__ import annotations

from typing import Any

from ..autograd import Function, Tensor
from ..backend import get_array_module
from . import fast
from .conv import output_size, pair


def window(x_pad, i: int, j: int, stride: tuple[int, int], oh: int, ow: int):
    """The (N, C, OH, OW) slice of inputs at kernel offset (i, j) of every window."""
    return x_pad[:, :, i : i + stride[0] * oh : stride[0], j : j + stride[1] * ow : stride[1]]


def _geometry(op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor (wrap arrays with md.tensor), got {type(x).__name__}")
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


class _Pool(Function):
    """What max and average pooling share: the geometry."""

    def __init__(self, kernel, stride, padding) -> None:
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def _pad(self, x, value: float):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        self.x_shape = x.shape
        self.oh, self.ow = output_size(x.shape[2], kh, sh, ph), output_size(x.shape[3], kw, sw, pw)
        return get_array_module(x).pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)

    def _grad_buffer(self, grad):
        """dL/dx_pad, zeros: the windows add into it."""
        (ph, pw), (n, c, h, w) = self.padding, self.x_shape
        return get_array_module(grad).zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=grad.dtype)

    def _crop(self, dx_pad):
        (ph, pw), (h, w) = self.padding, self.x_shape[2:]
        return dx_pad[:, :, ph : ph + h, pw : pw + w]


# --8<-- [start:max_pool]
class MaxPool2dBackward(_Pool):
    """y = max over each window.   dL/dx = dL/dy at the (first) maximum of each window, else 0."""

    def forward(self, x):
        xp = get_array_module(x)
        kh, kw = self.kernel
        x_pad = self._pad(x, -float("inf"))  # padding never wins a max
        y = window(x_pad, 0, 0, self.stride, self.oh, self.ow).copy()
        self.argmax = xp.zeros(y.shape, dtype=xp.int32)  # which offset k = i*kw + j holds the max
        for k in range(1, kh * kw):
            candidate = window(x_pad, k // kw, k % kw, self.stride, self.oh, self.ow)
            larger = candidate > y  # strict: ties keep the first maximum, as PyTorch does
            self.argmax = xp.where(larger, k, self.argmax)
            y = xp.maximum(y, candidate)
        return y

    def backward(self, grad):
        kh, kw = self.kernel
        dx_pad = self._grad_buffer(grad)
        for k in range(kh * kw):
            window(dx_pad, k // kw, k % kw, self.stride, self.oh, self.ow)[...] += grad * (self.argmax == k)
        return self._crop(dx_pad)
# --8<-- [end:max_pool]


class AvgPool2dBackward(_Pool):
    """y = mean over each window (zero padding counted, PyTorch's default).   dL/dx += dL/dy / (kh kw) per window."""

    def forward(self, x):
        kh, kw = self.kernel
        x_pad = self._pad(x, 0.0)
        y = window(x_pad, 0, 0, self.stride, self.oh, self.ow).copy()
        for k in range(1, kh * kw):
            y += window(x_pad, k // kw, k % kw, self.stride, self.oh, self.ow)
        return y / (kh * kw)

    def backward(self, grad):
        kh, kw = self.kernel
        dx_pad = self._grad_buffer(grad)
        for k in range(kh * kw):
            window(dx_pad, k // kw, k % kw, self.stride, self.oh, self.ow)[...] += grad / (kh * kw)
        return self._crop(dx_pad)


class AdaptiveAvgPool2dBackward(Function):
    """y[n, c] = mean over (h, w) of x[n, c, h, w], kept as (N, C, 1, 1).   dL/dx = dL/dy / (H W)."""

    def forward(self, x):
        self.shape = x.shape
        return x.mean(axis=(2, 3), keepdims=True)

    def backward(self, grad):
        xp = get_array_module(grad)
        return xp.broadcast_to(grad / (self.shape[2] * self.shape[3]), self.shape).copy()


def max_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """Max pooling over (N, C, H, W); ``stride`` defaults to ``kernel_size``; padding is -inf."""
    geometry = _geometry("max_pool2d", x, kernel_size, stride, padding)
    return fast.kernel_for("max_pool2d", MaxPool2dBackward, x.data)(*geometry)(x)


def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """Average pooling over (N, C, H, W); ``stride`` defaults to ``kernel_size``."""
    geometry = _geometry("avg_pool2d", x, kernel_size, stride, padding)
    return fast.kernel_for("avg_pool2d", AvgPool2dBackward, x.data)(*geometry)(x)


def adaptive_avg_pool2d(x: Tensor, output_size: Any = 1) -> Tensor:
    """Global average pooling to (N, C, 1, 1); only ``output_size=1`` is supported."""
    if output_size not in (1, (1, 1)):
        raise ValueError(f"adaptive_avg_pool2d: only output_size=1 (global average) is supported, got {output_size!r}")
    if not isinstance(x, Tensor):
        raise TypeError(f"adaptive_avg_pool2d: input must be a Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: input must have shape (N, C, H, W), got {x.shape}")
    return fast.kernel_for("adaptive_avg_pool2d", AdaptiveAvgPool2dBackward, x.data)()(x)
