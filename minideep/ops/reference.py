"""Plain reference versions of the optimised ops, kept to test the fast ones against.

Each function here is the straightforward formula on NCHW arrays, written for clarity, not
speed: convolution as one im2col matrix product, pooling as a loop over kernel offsets,
batch norm as the textbook expressions. ``tests/test_fast_ops.py`` checks that the ops in
``conv.py``, ``pool.py`` and ``normalization.py`` give the same outputs and gradients.
They work on raw arrays (NumPy or CuPy) and return ``(y, backward)``, where
``backward(g)`` returns the gradients of the inputs.
"""
from __future__ import annotations

from typing import Any, Callable

from ..backend import get_array_module


def _im2col(x_pad, kh: int, kw: int, stride: tuple[int, int], oh: int, ow: int):
    """Columns (N*OH*OW, C*kh*kw) of a padded (N, C, Hp, Wp) input, one row per output pixel."""
    xp = get_array_module(x_pad)
    n, c = x_pad.shape[:2]
    sh, sw = stride
    cols = xp.empty((n, oh, ow, c, kh, kw), dtype=x_pad.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, :, i, j] = x_pad[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw].transpose(0, 2, 3, 1)
    return cols.reshape(n * oh * ow, c * kh * kw)


def _col2im(cols, padded_shape, kh: int, kw: int, stride: tuple[int, int], oh: int, ow: int):
    """The adjoint of ``_im2col``: add every column entry back onto the pixel it was read from."""
    xp = get_array_module(cols)
    n, c = padded_shape[:2]
    sh, sw = stride
    cols = cols.reshape(n, oh, ow, c, kh, kw)
    dx = xp.zeros(padded_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dx


def conv2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0)) -> tuple[Any, Callable]:
    """y = im2col(x_pad) W^T + b;  dW = G^T cols,  db = sum G,  dx = col2im(G W)."""
    xp = get_array_module(x)
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = _im2col(x_pad, kh, kw, stride, oh, ow)
    w2 = weight.reshape(c_out, -1)
    y = cols @ w2.T
    if bias is not None:
        y = y + bias
    y = y.reshape(n, oh, ow, c_out).transpose(0, 3, 1, 2)

    def backward(grad):
        g = grad.transpose(0, 2, 3, 1).reshape(-1, c_out)
        dx_pad = _col2im(g @ w2, x_pad.shape, kh, kw, stride, oh, ow)
        dx = dx_pad[:, :, ph : ph + h, pw : pw + w]
        return dx, (g.T @ cols).reshape(weight.shape), g.sum(axis=0)

    return y, backward


def _windows(x_pad, kernel, stride, oh: int, ow: int):
    """(k, slice) for every kernel offset: the inputs at offset k of every window."""
    (kh, kw), (sh, sw) = kernel, stride
    for k in range(kh * kw):
        i, j = divmod(k, kw)
        yield k, (slice(None), slice(None), slice(i, i + sh * oh, sh), slice(j, j + sw * ow, sw))


def max_pool2d(x, kernel, stride, padding) -> tuple[Any, Callable]:
    """y = max over each window; the gradient goes to the first maximum of each window."""
    xp = get_array_module(x)
    (kh, kw), (ph, pw) = kernel, padding
    oh, ow = (x.shape[2] + 2 * ph - kh) // stride[0] + 1, (x.shape[3] + 2 * pw - kw) // stride[1] + 1
    x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-xp.inf)
    y = xp.full(x.shape[:2] + (oh, ow), -xp.inf, dtype=x.dtype)
    argmax = xp.zeros(y.shape, dtype=xp.int64)
    for k, window in _windows(x_pad, kernel, stride, oh, ow):
        larger = x_pad[window] > y
        y = xp.where(larger, x_pad[window], y)
        argmax = xp.where(larger, k, argmax)

    def backward(grad):
        dx = xp.zeros(x_pad.shape, dtype=grad.dtype)
        for k, window in _windows(dx, kernel, stride, oh, ow):
            dx[window] += xp.where(argmax == k, grad, 0)
        return (dx[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]],)

    return y, backward


def avg_pool2d(x, kernel, stride, padding) -> tuple[Any, Callable]:
    """y = mean over each window (zero padding counted);  dx += g / (kh kw) over each window."""
    xp = get_array_module(x)
    (kh, kw), (ph, pw) = kernel, padding
    oh, ow = (x.shape[2] + 2 * ph - kh) // stride[0] + 1, (x.shape[3] + 2 * pw - kw) // stride[1] + 1
    x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = xp.zeros(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for _, window in _windows(x_pad, kernel, stride, oh, ow):
        y = y + x_pad[window]
    y = y / (kh * kw)

    def backward(grad):
        dx = xp.zeros(x_pad.shape, dtype=grad.dtype)
        for _, window in _windows(dx, kernel, stride, oh, ow):
            dx[window] += grad / (kh * kw)
        return (dx[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]],)

    return y, backward


def batch_norm(x, gamma, beta, eps: float = 1e-5) -> tuple[Any, Callable]:
    """Training-mode batch norm over every axis but 1, and its textbook backward.

    y = gamma x_hat + beta, x_hat = (x - mu) / sqrt(var + eps);
    dx = gamma / (n sqrt(var + eps)) (n g - sum g - x_hat sum(g x_hat)).
    """
    xp = get_array_module(x)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    n = x.size // x.shape[1]
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    inv_std = 1 / xp.sqrt(var + eps)
    x_hat = (x - mu) * inv_std
    y = gamma.reshape(shape) * x_hat + beta.reshape(shape)

    def backward(g):
        sum_g = g.sum(axis=axes, keepdims=True)
        sum_gx = (g * x_hat).sum(axis=axes, keepdims=True)
        dx = gamma.reshape(shape) * inv_std / n * (n * g - sum_g - x_hat * sum_gx)
        return dx, sum_gx.reshape(-1), sum_g.reshape(-1)

    return y, backward
