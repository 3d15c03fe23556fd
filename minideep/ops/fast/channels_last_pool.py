"""Pooling in the input's memory layout (CPU): the formulas of ``ops/pool.py``, allocated to match.

A convolution's output is channels-last in memory behind its (N, C, H, W) shape (see
``shifted_conv.py``), and NumPy is slow on elementwise work that mixes layouts. So outputs
and gradients here are allocated in the layout of the input, results are written with
``out=`` where they can be, and when the windows tile the input (stride = kernel, no padding:
the usual 2x2 pooling) each input pixel is in exactly one window and the gradient is written,
not accumulated into zeros.
"""
from __future__ import annotations

from typing import Any

from ...autograd import Function
from ...backend import get_array_module


def _window(x_pad, i: int, j: int, stride: tuple[int, int], oh: int, ow: int):
    """The (N, C, OH, OW) slice of inputs at kernel offset (i, j) of every window."""
    return x_pad[:, :, i : i + stride[0] * oh : stride[0], j : j + stride[1] * ow : stride[1]]


def is_channels_last(x) -> bool:
    """True when the channel axis of an (N, C, H, W) array is the fastest-varying in memory."""
    return x.ndim == 4 and x.shape[1] > 1 and x.strides[1] < x.strides[3]


def empty_nchw(xp, shape: tuple[int, ...], dtype: Any, channels_last: bool, fill: Any = None):
    """A new (N, C, H, W) array, stored channels-last in memory if asked; filled with ``fill`` if given."""
    if channels_last:
        n, c, h, w = shape
        out = xp.empty((n, h, w, c), dtype=dtype).transpose(0, 3, 1, 2)
    else:
        out = xp.empty(shape, dtype=dtype)
    if fill is not None:
        out.fill(fill)
    return out


def empty_like_layout(x, shape: tuple[int, ...], fill: Any = None):
    """A new (N, C, H, W) array of ``shape`` with ``x``'s dtype and memory order."""
    return empty_nchw(get_array_module(x), shape, x.dtype, is_channels_last(x), fill)


def _pad(x, padding: tuple[int, int], value: float):
    """x padded by ``value`` on the two spatial axes, in x's memory order; x itself if no padding."""
    ph, pw = padding
    if not ph and not pw:
        return x
    n, c, h, w = x.shape
    x_pad = empty_like_layout(x, (n, c, h + 2 * ph, w + 2 * pw), fill=value)
    x_pad[:, :, ph : ph + h, pw : pw + w] = x
    return x_pad


class _Pool(Function):
    """What max and average pooling share: the geometry and the gradient's buffer."""

    def __init__(self, kernel, stride, padding) -> None:
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def _setup(self, x) -> None:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        self.oh, self.ow = (x.shape[2] + 2 * ph - kh) // sh + 1, (x.shape[3] + 2 * pw - kw) // sw + 1
        self.x_shape = x.shape
        self.padded_shape = (*x.shape[:2], x.shape[2] + 2 * ph, x.shape[3] + 2 * pw)
        # The windows tile the padded input exactly: every pixel is in one window, once.
        self.tiles = (sh, sw) == (kh, kw) and self.padded_shape[2:] == (kh * self.oh, kw * self.ow)
        self.channels_last = is_channels_last(x)  # the layout, not the data: x is not kept

    def _grad_buffer(self, grad):
        """dL/dx_pad: left uninitialised when the windows tile it (each part is written once)."""
        xp = get_array_module(grad)
        return empty_nchw(xp, self.padded_shape, grad.dtype, self.channels_last, fill=None if self.tiles else 0)

    def _crop(self, dx):
        (ph, pw), (h, w) = self.padding, self.x_shape[2:]
        return dx[:, :, ph : ph + h, pw : pw + w]


class ChannelsLastMaxPool2dBackward(_Pool):
    """y = max over each window.   dL/dx = dL/dy at the (first) maximum of each window, else 0."""

    def forward(self, x):
        xp = get_array_module(x)
        self._setup(x)
        kh, kw = self.kernel
        x_pad = _pad(x, self.padding, -float("inf"))
        y = empty_like_layout(x, (*x.shape[:2], self.oh, self.ow))
        y[...] = _window(x_pad, 0, 0, self.stride, self.oh, self.ow)
        # Which offset k of its window holds the maximum; int8 is enough for kernels up to 11x11.
        self.argmax = xp.zeros(y.shape, dtype=xp.int8 if kh * kw < 128 else xp.int32)
        for k in range(1, kh * kw):
            candidate = _window(x_pad, k // kw, k % kw, self.stride, self.oh, self.ow)
            larger = candidate > y  # strict: ties keep the first maximum, as PyTorch does
            xp.copyto(self.argmax, k, where=larger)
            xp.maximum(y, candidate, out=y)
        return y

    def backward(self, grad):
        xp = get_array_module(grad)
        kh, kw = self.kernel
        dx = self._grad_buffer(grad)
        for k in range(kh * kw):
            window = _window(dx, k // kw, k % kw, self.stride, self.oh, self.ow)
            routed = self.argmax == k
            if self.tiles:
                xp.multiply(grad, routed, out=window)
            else:
                window += grad * routed
        return self._crop(dx)


class ChannelsLastAvgPool2dBackward(_Pool):
    """y = mean over each window (zero padding counted, as PyTorch's default).   dL/dx += dL/dy / (kh kw) per window."""

    def forward(self, x):
        self._setup(x)
        kh, kw = self.kernel
        x_pad = _pad(x, self.padding, 0.0)
        y = empty_like_layout(x, (*x.shape[:2], self.oh, self.ow))
        y[...] = _window(x_pad, 0, 0, self.stride, self.oh, self.ow)
        for k in range(1, kh * kw):
            y += _window(x_pad, k // kw, k % kw, self.stride, self.oh, self.ow)
        y *= y.dtype.type(1 / (kh * kw))
        return y

    def backward(self, grad):
        kh, kw = self.kernel
        dx = self._grad_buffer(grad)
        share = grad * grad.dtype.type(1 / (kh * kw))
        for k in range(kh * kw):
            window = _window(dx, k // kw, k % kw, self.stride, self.oh, self.ow)
            if self.tiles:
                window[...] = share
            else:
                window += share
        return self._crop(dx)


class ChannelsLastAdaptiveAvgPool2dBackward(Function):
    """y[n, c] = mean over (h, w) of x[n, c, h, w], kept as (N, C, 1, 1).   dL/dx = dL/dy / (H W)."""

    def forward(self, x):
        self.shape = x.shape
        self.channels_last = is_channels_last(x)
        return x.mean(axis=(2, 3), keepdims=True)

    def backward(self, grad):
        dx = empty_nchw(get_array_module(grad), self.shape, grad.dtype, self.channels_last)
        dx[...] = grad * grad.dtype.type(1 / (self.shape[2] * self.shape[3]))
        return dx
