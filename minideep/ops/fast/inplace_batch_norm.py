"""Batch norm with its full-size passes in place and x_hat recomputed (CPU).

The plain ``ops/normalization.py`` saves x_hat and evaluates the formulas as written: each
expression a new full-size array. Here only the per-channel mean and 1/sqrt(var + eps) are
saved (backward rebuilds x_hat from the input, alive anyway as the op's parent), and every
full-size step is one NumPy pass written into an existing buffer, which keeps x's memory
layout (channels-last after a convolution) and halves the memory traffic.
"""
from __future__ import annotations

from ...autograd import Function
from ...backend import get_array_module


class InPlaceBatchNormBackward(Function):
    """Batch norm as ``ops.normalization.BatchNormBackward``, with the passes in place.

    Only the per-channel mu and 1/sqrt(var + eps) are saved; see the module docstring.
    """

    def __init__(self, running_mean, running_var, training: bool, momentum: float, eps: float) -> None:
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps = training, momentum, eps

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        self.axes = (0,) if x.ndim == 2 else (0, 2, 3)
        self.shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)  # broadcasts a per-channel vector
        self.n = x.size // x.shape[1]
        if self.training:
            mean = x.mean(axis=self.axes, keepdims=True)
            centred = x - mean
            var = (centred * centred).mean(axis=self.axes)
            if self.running_mean is not None:
                m = self.momentum
                # PyTorch's rule: the running variance uses the unbiased estimate n/(n-1) var.
                self.running_mean *= 1 - m
                self.running_mean += m * mean.reshape(-1)
                self.running_var *= 1 - m
                self.running_var += m * var * (self.n / max(self.n - 1, 1))
        else:
            mean, var = self.running_mean.reshape(self.shape), self.running_var
            centred = x - mean
        self.x, self.mean = x, mean.astype(x.dtype)  # a copy: the running mean may change later
        self.inv_std = (1 / xp.sqrt(var + self.eps)).astype(x.dtype, copy=False).reshape(self.shape)
        self.gamma = gamma.reshape(self.shape)
        centred *= self.gamma * self.inv_std  # y = (x - mu) * (gamma / sigma) + beta, in place
        centred += beta.reshape(self.shape)
        return centred

    def backward(self, grad):
        x_hat = self.x - self.mean
        x_hat *= self.inv_std
        sum_g = grad.sum(axis=self.axes, keepdims=True)
        g_xhat = grad * x_hat
        sum_g_xhat = g_xhat.sum(axis=self.axes, keepdims=True)
        del g_xhat
        scale = self.gamma * self.inv_std
        if self.training:
            # gx = scale * (g - sum(g)/n - x_hat * sum(g x_hat)/n), built in x_hat's buffer
            x_hat *= -sum_g_xhat / self.n
            x_hat += grad
            x_hat -= sum_g / self.n
            x_hat *= scale
            gx = x_hat
        else:
            gx = grad * scale
        return gx, sum_g_xhat.reshape(-1), sum_g.reshape(-1)
