"""2-D convolution (cross-correlation, as in every deep-learning library), the textbook way: im2col.

The index arithmetic, once. Pad the input x (N, C, H, W) with p_h rows and p_w columns of
zeros on each side. With stride (s_h, s_w), output pixel (oh, ow) reads the input pixels
(s_h*oh + i, s_w*ow + j) for the kernel offsets 0 <= i < kh, 0 <= j < kw. The last window
must fit inside the padded input, so

    OH = (H + 2 p_h - kh) // s_h + 1        (likewise OW), and
    y[n, o, oh, ow] = b[o] + sum_{c, i, j} W[o, c, i, j] x_pad[n, c, s_h*oh + i, s_w*ow + j].

im2col turns this sum into one matrix product. It copies every window into a row of a matrix
``cols`` with N*OH*OW rows (one per output pixel, in the order (n, oh, ow)) and C*kh*kw
columns (one per weight, in the order (c, i, j), the order of ``W.reshape(C_out, -1)``). For a
fixed offset (i, j), the strided slice

    x_pad[:, :, i : i + s_h*OH : s_h, j : j + s_w*OW : s_w]          (N, C, OH, OW)

holds the pixel at offset (i, j) of every window at once, so building ``cols`` is a loop over
the kh*kw offsets, never over pixels. Then

    Y = cols @ W2^T + b,        W2 = W.reshape(C_out, C*kh*kw),    Y (N*OH*OW, C_out).

Backward reads the same product the other way. With G = dL/dY:

    dL/dW2 = G^T cols,   dL/db = sum of G over rows,   dL/dcols = G W2,

and dL/dx = col2im(G W2). col2im is the adjoint (the transpose) of im2col: every entry of a
column goes back, added, onto the input pixel it was copied from, so a pixel that sits in
several windows receives the sum of their gradients. The zero padding's share is dropped.

This file is the whole convolution; ``minideep/ops/fast/`` holds faster CPU kernels for the
same op (chosen in ``fast.kernel_for``; ``md.ops.use_fast_kernels(False)`` runs this one).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Function, Tensor
from ..backend import get_array_module
from . import fast


def pair(value: Any, name: str, op: str) -> tuple[int, int]:
    """An int or a pair of ints (NumPy integers too) as a pair of non-negative Python ints."""
    is_int = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))  # noqa: E731
    values = (value, value) if is_int(value) else value
    if not isinstance(values, (tuple, list)) or len(values) != 2 or not all(is_int(v) for v in values):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if min(values) < 0:
        raise ValueError(f"{op}: {name} must be a non-negative int or a pair of them, got {value!r}")
    return int(values[0]), int(values[1])


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """(size + 2 padding - kernel) // stride + 1, the number of window positions."""
    return (size + 2 * padding - kernel) // stride + 1


# --8<-- [start:im2col]
def im2col_array(x, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]):
    """The windows of x (N, C, H, W) as rows: (N*OH*OW, C*kh*kw), columns in the order (c, i, j)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = xp.empty((n, oh, ow, c, kh, kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # the pixel at offset (i, j) of every window, as (N, OH, OW, C)
            cols[:, :, :, :, i, j] = x_pad[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw].transpose(0, 2, 3, 1)
    return cols.reshape(n * oh * ow, c * kh * kw)


def col2im_array(cols, x_shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int]):
    """The adjoint of ``im2col_array``: add every entry of ``cols`` back onto the pixel it was read from."""
    xp = get_array_module(cols)
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    cols = cols.reshape(n, oh, ow, c, kh, kw)
    x_pad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            x_pad[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return x_pad[:, :, ph : ph + h, pw : pw + w]  # the gradient that fell on the padding is dropped
# --8<-- [end:im2col]


# --8<-- [start:convolution]
class ConvolutionBackward(Function):
    """y = im2col(x) W2^T + b.   dL/dW2 = G^T im2col(x),  dL/db = sum G,  dL/dx = col2im(G W2)."""

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int]) -> None:
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias=None):
        n, c_out = x.shape[0], weight.shape[0]
        self.oh = output_size(x.shape[2], weight.shape[2], self.stride[0], self.padding[0])
        self.ow = output_size(x.shape[3], weight.shape[3], self.stride[1], self.padding[1])
        # Save x (alive anyway as this op's input), not cols: cols is kh*kw times larger.
        self.x, self.weight = x, weight
        cols = im2col_array(x, weight.shape[2:], self.stride, self.padding)
        y = cols @ weight.reshape(c_out, -1).T  # (N*OH*OW, C_out)
        if bias is not None:
            y += bias
        return y.reshape(n, self.oh, self.ow, c_out).transpose(0, 3, 1, 2)

    def backward(self, grad):
        c_out, kernel = self.weight.shape[0], self.weight.shape[2:]
        g = grad.transpose(0, 2, 3, 1).reshape(-1, c_out)  # G: rows in im2col's order (n, oh, ow)
        needs_x, needs_w = self.needs_input_grad[:2]
        gx = col2im_array(g @ self.weight.reshape(c_out, -1), self.x.shape, kernel, self.stride, self.padding) if needs_x else None
        gw = (g.T @ im2col_array(self.x, kernel, self.stride, self.padding)).reshape(self.weight.shape) if needs_w else None
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, g.sum(axis=0)
# --8<-- [end:convolution]


# --- im2col and col2im as ops of their own (DeZero's step 57: build a convolution from them) ---------

class Im2colBackward(Function):
    """cols = im2col(x).   dL/dx = col2im(dL/dcols): col2im is im2col's adjoint."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> None:
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x):
        self.x_shape = x.shape
        return im2col_array(x, self.kernel, self.stride, self.padding)

    def backward(self, grad):
        return col2im_array(grad, self.x_shape, self.kernel, self.stride, self.padding)


class Col2imBackward(Function):
    """x = col2im(cols).   dL/dcols = im2col(dL/dx): im2col is col2im's adjoint."""

    def __init__(self, x_shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int]) -> None:
        self.x_shape, self.kernel, self.stride, self.padding = x_shape, kernel, stride, padding

    def forward(self, cols):
        return col2im_array(cols, self.x_shape, self.kernel, self.stride, self.padding)

    def backward(self, grad):
        return im2col_array(grad, self.kernel, self.stride, self.padding)


def _window_geometry(op: str, shape: tuple[int, ...], kernel_size: Any, stride: Any, padding: Any):
    kernel, stride, padding = pair(kernel_size, "kernel_size", op), pair(stride, "stride", op), pair(padding, "padding", op)
    if len(shape) != 4:
        raise ValueError(f"{op}: the image must have shape (N, C, H, W), got {tuple(shape)}")
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"{op}: kernel_size and stride must be at least 1, got {kernel} and {stride}")
    if shape[2] + 2 * padding[0] < kernel[0] or shape[3] + 2 * padding[1] < kernel[1]:
        raise ValueError(f"{op}: padded image {shape[2] + 2 * padding[0]}x{shape[3] + 2 * padding[1]} is smaller than the kernel {kernel}")
    return kernel, stride, padding


def im2col(x: Tensor, kernel_size: Any, stride: Any = 1, padding: Any = 0) -> Tensor:
    """The windows of x (N, C, H, W) as the rows of a matrix (N*OH*OW, C*kh*kw), differentiable.

    Row (n, oh, ow) holds the window of output pixel (oh, ow), column (c, i, j) its pixel at
    kernel offset (i, j) of channel c, so that ``conv2d(x, W)`` is
    ``(im2col(x, k) @ W.reshape(C_out, -1).T)`` reshaped to (N, OH, OW, C_out) and transposed.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"im2col: input must be a Tensor, got {type(x).__name__}")
    return Im2colBackward(*_window_geometry("im2col", x.shape, kernel_size, stride, padding))(x)


def col2im(cols: Tensor, output_size: Any, kernel_size: Any, stride: Any = 1, padding: Any = 0) -> Tensor:
    """The adjoint of ``im2col``: add each row's window back onto an image of shape ``output_size`` (N, C, H, W).

    Pixels that several windows share receive the sum of their entries; ``col2im(im2col(x))``
    is x times the number of windows each pixel is in, not x.
    """
    if not isinstance(cols, Tensor):
        raise TypeError(f"col2im: input must be a Tensor, got {type(cols).__name__}")
    shape = tuple(int(v) for v in output_size)
    kernel, stride, padding = _window_geometry("col2im", shape, kernel_size, stride, padding)
    rows = shape[0] * output_size_of(shape, kernel, stride, padding)
    if cols.shape != (rows, shape[1] * kernel[0] * kernel[1]):
        raise ValueError(f"col2im: cols has shape {cols.shape}, but an image {shape} with kernel {kernel}, stride "
                         f"{stride} and padding {padding} has ({rows}, {shape[1] * kernel[0] * kernel[1]})")
    return Col2imBackward(shape, kernel, stride, padding)(cols)


def output_size_of(shape: tuple[int, ...], kernel, stride, padding) -> int:
    """OH * OW, the number of windows of an (N, C, H, W) image."""
    return output_size(shape[2], kernel[0], stride[0], padding[0]) * output_size(shape[3], kernel[1], stride[1], padding[1])


def check_conv_input(op: str, x: Any, weight: Any, bias: Any) -> None:
    """TypeError unless x, weight (and bias) are Tensors: a list has no shape to check."""
    for name, value in (("input", x), ("weight", weight), ("bias", bias)):
        if not isinstance(value, Tensor) and not (name == "bias" and value is None):
            raise TypeError(f"{op}: {name} must be a Tensor (wrap arrays with md.tensor), got {type(value).__name__}")


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0) -> Tensor:
    """2-D convolution of an NCHW input (cross-correlation, as ``torch.nn.functional.conv2d``).

    y[n, o, oh, ow] = b[o] + sum_{c, i, j} W[o, c, i, j] x_pad[n, c, s*oh + i, s*ow + j].

    Shapes: x (N, C_in, H, W), weight (C_out, C_in, kh, kw), bias (C_out,) ->
    (N, C_out, OH, OW) with OH = (H + 2*padding - kh) // stride + 1 (likewise OW).
    """
    check_conv_input("conv2d", x, weight, bias)
    stride, padding = pair(stride, "stride", "conv2d"), pair(padding, "padding", "conv2d")
    if min(stride) < 1:
        raise ValueError(f"conv2d: stride must be at least 1, got {stride}")
    if x.ndim != 4:
        raise ValueError(f"conv2d: input must have shape (N, C, H, W), got {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must have shape (C_out, C_in, kh, kw), got {weight.shape}")
    if min(weight.shape[2:]) < 1:
        raise ValueError(f"conv2d: the kernel must be at least 1x1, got {weight.shape[2]}x{weight.shape[3]} (weight shape {weight.shape})")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels but weight expects {weight.shape[1]} (weight shape {weight.shape})")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias has shape {bias.shape} but weight has {weight.shape[0]} output channels")
    for size, k, p, axis in ((x.shape[2], weight.shape[2], padding[0], "height"), (x.shape[3], weight.shape[3], padding[1], "width")):
        if size + 2 * p < k:
            raise ValueError(f"conv2d: padded input {axis} {size + 2 * p} is smaller than the kernel's {k}")
    op = fast.kernel_for("conv2d", ConvolutionBackward, x.data, stride=stride)(stride, padding)
    return op(x, weight) if bias is None else op(x, weight, bias)
