"""Batch normalisation (Ioffe & Szegedy 2015) for (N, C) and (N, C, H, W) inputs."""
from __future__ import annotations

from typing import Any

from ..autograd import Function, Tensor, unwrap
from ..backend import device_of, get_array_module


class BatchNorm(Function):
    """y = gamma * x_hat + beta,  x_hat = (x - mu) / sqrt(var + eps), per channel.

    In training mode mu and var are the batch's (biased) statistics over the n values of
    each channel, and x_hat depends on every x in the channel through them:

        dL/dx = gamma / (n sqrt(var + eps)) * (n g - sum(g) - x_hat * sum(g * x_hat))

    In evaluation mode mu and var are the running estimates, constants, so
    dL/dx = gamma g / sqrt(var + eps). In both, dL/dgamma = sum(g x_hat), dL/dbeta = sum(g).

    Only the per-channel mu and 1/sqrt(var + eps) are saved: backward recomputes x_hat from
    the input (alive anyway as this op's parent), one pass over it instead of a stored copy.
    Every full-size step is one NumPy pass, in place where it can be, and keeps x's memory
    layout (channels-last after a convolution).
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


def batch_norm(
    x: Tensor,
    running_mean: Any,
    running_var: Any,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over the channel axis 1 of (N, C) or (N, C, H, W) inputs.

    In training mode normalises with the batch statistics and updates ``running_mean``
    and ``running_var`` in place: r = (1 - momentum) r + momentum * stat, with the
    unbiased batch variance, exactly as PyTorch does. In evaluation mode normalises with
    the running statistics.
    """
    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm: input must have shape (N, C) or (N, C, H, W), got {x.shape}")
    xp = get_array_module(x.data)
    c = x.shape[1]
    running_mean, running_var = unwrap(running_mean), unwrap(running_var)
    for name, value in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != (c,):
            raise ValueError(f"batch_norm: input has {c} channels but {name} has shape {tuple(value.shape)}")
        if name.startswith("running") and value is not None and get_array_module(value) is not xp:
            raise ValueError(f"batch_norm: input is on {x.device} but {name} is on {device_of(value)}; move them together")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: evaluation mode (training=False) needs running_mean and running_var")
    if training and x.size // c <= 1:
        raise ValueError(f"batch_norm: training needs more than one value per channel, got input shape {x.shape}")
    gamma = weight if weight is not None else Tensor(xp.ones(c, dtype=x.dtype))
    beta = bias if bias is not None else Tensor(xp.zeros(c, dtype=x.dtype))
    return BatchNorm(running_mean, running_var, training, momentum, eps)(x, gamma, beta)
