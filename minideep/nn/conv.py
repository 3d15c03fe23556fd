"""The 2-D convolution layer."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..autograd import Tensor
from ..backend import DEFAULT_DTYPE
from ..ops.conv import pair
from . import init as init_schemes
from .module import Module, Parameter


class Conv2d(Module):
    """y[n, o] = b[o] + sum_{c, i, j} W[o, c, i, j] x_pad[n, c, s*h + i, s*w + j]  (cross-correlation).

    Shapes: input (N, C_in, H, W) -> output (N, C_out, H_out, W_out) with
    H_out = (H + 2 padding - kernel_h) // stride + 1 (likewise W_out);
    weight (C_out, C_in, kernel_h, kernel_w), bias (C_out,).

    Args:
        in_channels: C_in.
        out_channels: C_out, the number of filters.
        kernel_size: an int or (kh, kw).
        stride: an int or a pair (default 1).
        padding: zeros added on each side, an int or a pair (default 0).
        bias: learn a bias per output channel (default True).
        init: weight init, a scheme name or callable (see ``Linear``); None is PyTorch's
            default U(+-1/sqrt(fan_in)) with fan_in = C_in kh kw, for weight and bias.
        dtype: the parameters' dtype (float32 by default).

    Example::

        conv = nn.Conv2d(3, 32, 3, padding=1)
        conv(x).shape  # (N, 32, H, W) for x of shape (N, 3, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 bias: bool = True, init: Any = None, dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Conv2d: {name} must be a positive int, got {value!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = pair(stride, "stride", "Conv2d")
        self.padding = pair(padding, "padding", "Conv2d")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(f"Conv2d: kernel_size and stride must be at least 1, got {kernel_size!r} and {stride!r}")
        shape = (out_channels, in_channels, *self.kernel_size)
        self.weight = Parameter(init_schemes.initial_weight(shape, init, dtype))
        if bias:
            fan_in, _ = init_schemes.calculate_fans(shape)
            self.bias = Parameter(init_schemes.initial_bias(out_channels, fan_in, init, dtype))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return ops.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        return text + ("" if self.bias is not None else ", bias=False")


class ConvTranspose2d(Module):
    """The transposed convolution: the adjoint of ``Conv2d`` with respect to its input (DeZero's Deconv2d).

    y = col2im(X W2) + b: each input pixel adds a W-weighted kh x kw patch to the output,
    ``stride`` pixels apart (see ``minideep/ops/conv_transpose.py``).

    Shapes: input (N, C_in, H, W) -> output (N, C_out, H_out, W_out) with
    H_out = (H - 1) stride - 2 padding + kernel_h + output_padding (likewise W_out);
    weight (C_in, C_out, kernel_h, kernel_w), as in PyTorch; bias (C_out,).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, bias, init, dtype: as ``Conv2d``
            (PyTorch's default init reads fan_in from the weight's axis 1, here C_out kh kw).
        output_padding: extra rows/columns on one side of the output (smaller than the stride),
            to pick among the sizes that a strided ``Conv2d`` maps to the same H.

    Example::

        up = nn.ConvTranspose2d(32, 16, 2, stride=2)
        up(x).shape  # (N, 16, 2H, 2W) for x of shape (N, 32, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 output_padding: Any = 0, bias: bool = True, init: Any = None, dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ConvTranspose2d: {name} must be a positive int, got {value!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = pair(kernel_size, "kernel_size", "ConvTranspose2d")
        self.stride = pair(stride, "stride", "ConvTranspose2d")
        self.padding = pair(padding, "padding", "ConvTranspose2d")
        self.output_padding = pair(output_padding, "output_padding", "ConvTranspose2d")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(f"ConvTranspose2d: kernel_size and stride must be at least 1, got {kernel_size!r} and {stride!r}")
        if self.output_padding[0] >= self.stride[0] or self.output_padding[1] >= self.stride[1]:
            raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be smaller than the stride {self.stride}")
        shape = (self.in_channels, self.out_channels, *self.kernel_size)
        self.weight = Parameter(init_schemes.initial_weight(shape, init, dtype))
        if bias:
            fan_in, _ = init_schemes.calculate_fans(shape)
            self.bias = Parameter(init_schemes.initial_bias(self.out_channels, fan_in, init, dtype))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return ops.conv_transpose2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                                    output_padding=self.output_padding)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.output_padding != (0, 0):
            text += f", output_padding={self.output_padding}"
        return text + ("" if self.bias is not None else ", bias=False")
