"""Transposed convolution ("deconvolution"): the adjoint of conv2d with respect to its input.

conv2d maps an image z (N, C_out, Hz, Wz) to x (N, C_in, H, W) as x_rows = im2col(z) W2^T with
W2 = W.reshape(C_in, C_out*kh*kw). Its transpose maps x back to an image of z's shape:

    y = col2im(X W2) + b,     X = x as rows (N*H*W, C_in),

so every input pixel spreads W-weighted copies of itself over a kh x kw patch of the output,
s pixels apart, and overlapping patches add. The output size inverts conv2d's formula:

    H_out = (H - 1) s - 2 p + kh + output_padding,

where ``output_padding`` (< stride) picks one of the s sizes that conv2d maps to the same H.
Backward: dL/dX = im2col(G) W2^T,  dL/dW2 = X^T im2col(G),  dL/db = sum of G over (n, h, w).
"""
from __future__ import annotations

from typing import Any

from ..autograd import Function, Tensor
from .conv import check_conv_input, col2im_array, im2col_array, pair


class ConvTranspose2dBackward(Function):
    """y = col2im(X W2) + b.   dL/dX = im2col(G) W2^T,  dL/dW2 = X^T im2col(G),  dL/db = sum G."""

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int], output_size: tuple[int, int]) -> None:
        self.stride, self.padding, self.output_size = stride, padding, output_size

    def forward(self, x, weight, bias=None):
        n, c_in = x.shape[:2]
        _, c_out, kh, kw = weight.shape
        self.x, self.weight = x, weight
        self.y_shape = (n, c_out, *self.output_size)
        rows = x.transpose(0, 2, 3, 1).reshape(-1, c_in)  # X: one row per input pixel, in im2col's order
        y = col2im_array(rows @ weight.reshape(c_in, -1), self.y_shape, (kh, kw), self.stride, self.padding)
        return y if bias is None else y + bias.reshape(1, -1, 1, 1)

    def backward(self, grad):
        n, c_in, h, w = self.x.shape
        kernel = self.weight.shape[2:]
        cols = im2col_array(grad, kernel, self.stride, self.padding)  # (N*H*W, C_out*kh*kw)
        gx = gw = None
        if self.needs_input_grad[0]:
            gx = (cols @ self.weight.reshape(c_in, -1).T).reshape(n, h, w, c_in).transpose(0, 3, 1, 2)
        if self.needs_input_grad[1]:
            gw = (self.x.transpose(0, 2, 3, 1).reshape(-1, c_in).T @ cols).reshape(self.weight.shape)
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, grad.sum(axis=(0, 2, 3))


def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0) -> Tensor:
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d`` (groups 1, dilation 1).

    Shapes: x (N, C_in, H, W), weight (C_in, C_out, kh, kw), bias (C_out,) -> (N, C_out, H_out, W_out)
    with H_out = (H - 1) stride - 2 padding + kh + output_padding (likewise W_out).
    """
    check_conv_input("conv_transpose2d", x, weight, bias)
    op = "conv_transpose2d"
    stride, padding, output_padding = pair(stride, "stride", op), pair(padding, "padding", op), pair(output_padding, "output_padding", op)
    if min(stride) < 1:
        raise ValueError(f"{op}: stride must be at least 1, got {stride}")
    if x.ndim != 4:
        raise ValueError(f"{op}: input must have shape (N, C_in, H, W), got {x.shape}")
    if weight.ndim != 4 or min(weight.shape[2:], default=0) < 1:
        raise ValueError(f"{op}: weight must have shape (C_in, C_out, kh, kw) with a kernel of at least 1x1, got {weight.shape}")
    if x.shape[1] != weight.shape[0]:
        raise ValueError(f"{op}: input has {x.shape[1]} channels but weight expects {weight.shape[0]} (weight shape {weight.shape})")
    if bias is not None and bias.shape != (weight.shape[1],):
        raise ValueError(f"{op}: bias has shape {bias.shape} but weight has {weight.shape[1]} output channels")
    if output_padding[0] >= stride[0] or output_padding[1] >= stride[1]:
        raise ValueError(f"{op}: output_padding {output_padding} must be smaller than the stride {stride}")
    size = tuple((x.shape[2 + a] - 1) * stride[a] - 2 * padding[a] + weight.shape[2 + a] + output_padding[a] for a in (0, 1))
    if min(size) < 1:
        raise ValueError(f"{op}: the output would be {size[0]}x{size[1]}; padding {padding} is too large for input {x.shape}")
    fn = ConvTranspose2dBackward(stride, padding, size)
    return fn(x, weight) if bias is None else fn(x, weight, bias)
