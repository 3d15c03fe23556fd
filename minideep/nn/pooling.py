"""Pooling layers: max and average over windows, and global average pooling."""
from __future__ import annotations

from typing import Any

from .. import ops
from ..autograd import Tensor
from .module import Module


class _Pool2d(Module):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """y[n, c, h, w] = max of x[n, c] over the window at (s h, s w) (padding is -inf).

    Shapes: (N, C, H, W) -> (N, C, H_out, W_out), H_out = (H + 2 padding - kernel) // stride + 1.

    Args:
        kernel_size: an int or a pair.
        stride: an int or a pair; None (default) means kernel_size.
        padding: an int or a pair, at most half the kernel (default 0).
    """

    def forward(self, x: Tensor) -> Tensor:
        return ops.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """y[n, c, h, w] = mean of x[n, c] over the window at (s h, s w) (zero padding counted).

    Shapes and arguments as ``MaxPool2d``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class AdaptiveAvgPool2d(Module):
    """Global average pooling: y[n, c, 0, 0] = mean over (h, w) of x[n, c, h, w].

    Shapes: (N, C, H, W) -> (N, C, 1, 1). Only ``output_size=1`` is supported.
    """

    def __init__(self, output_size: Any = 1) -> None:
        super().__init__()
        if output_size not in (1, (1, 1)):
            raise ValueError(f"AdaptiveAvgPool2d: only output_size=1 (global average) is supported, got {output_size!r}")
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return ops.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
