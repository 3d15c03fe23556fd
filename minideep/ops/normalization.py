"""Batch normalisation (Ioffe & Szegedy 2015) for (N, C) and (N, C, H, W) inputs, as its formulas.

Per channel, over the n = N (times H W) values of the channel:

    mu = mean(x),   var = mean((x - mu)^2),   x_hat = (x - mu) / sqrt(var + eps),
    y = gamma x_hat + beta.

``minideep/ops/fast/inplace_batch_norm.py`` computes the same with fewer full-size passes.
"""
from __future__ import annotations

from typing import Any

from ..autograd import Function, Tensor, unwrap
from ..backend import device_of, get_array_module
from . import fast


# --8<-- [start:batch_norm]
class BatchNormBackward(Function):
    """y = gamma * x_hat + beta,  x_hat = (x - mu) / sqrt(var + eps), per channel.

    In training mode mu and var are the batch's (biased) statistics, and x_hat depends on
    every x of the channel through them:

        dL/dx = gamma / (n sqrt(var + eps)) * (n g - sum(g) - x_hat * sum(g * x_hat))

    In evaluation mode mu and var are the running estimates, constants, so
    dL/dx = gamma g / sqrt(var + eps). In both, dL/dgamma = sum(g x_hat), dL/dbeta = sum(g).
    """

    def __init__(self, running_mean, running_var, training: bool, momentum: float, eps: float) -> None:
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps = training, momentum, eps

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        self.axes = (0,) if x.ndim == 2 else (0, 2, 3)  # every axis but the channel axis 1
        self.shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)  # broadcasts a per-channel vector
        self.n = x.size // x.shape[1]
        if self.training:
            mean, var = x.mean(axis=self.axes), x.var(axis=self.axes)
            if self.running_mean is not None:
                m = self.momentum
                # PyTorch's rule: the running variance uses the unbiased estimate n/(n-1) var.
                self.running_mean[...] = (1 - m) * self.running_mean + m * mean
                self.running_var[...] = (1 - m) * self.running_var + m * var * (self.n / max(self.n - 1, 1))
        else:
            mean, var = self.running_mean, self.running_var
        self.inv_std = (1 / xp.sqrt(var + self.eps)).astype(x.dtype).reshape(self.shape)
        self.x_hat = (x - mean.astype(x.dtype).reshape(self.shape)) * self.inv_std
        self.gamma = gamma.reshape(self.shape)
        return self.gamma * self.x_hat + beta.reshape(self.shape)

    def backward(self, grad):
        sum_g = grad.sum(axis=self.axes, keepdims=True)
        sum_g_xhat = (grad * self.x_hat).sum(axis=self.axes, keepdims=True)
        if self.training:
            gx = self.gamma * self.inv_std / self.n * (self.n * grad - sum_g - self.x_hat * sum_g_xhat)
        else:
            gx = self.gamma * self.inv_std * grad
        return gx, sum_g_xhat.reshape(-1), sum_g.reshape(-1)
# --8<-- [end:batch_norm]


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
    if not isinstance(x, Tensor):
        raise TypeError(f"batch_norm: input must be a Tensor (wrap arrays with md.tensor), got {type(x).__name__}")
    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm: input must have shape (N, C) or (N, C, H, W), got {x.shape}")
    if not eps > 0:  # also refuses NaN
        raise ValueError(f"batch_norm: eps must be > 0 (it keeps 1/sqrt(var + eps) finite), got {eps}")
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
    function = fast.kernel_for("batch_norm", BatchNormBackward, x.data)
    return function(running_mean, running_var, training, momentum, eps)(x, gamma, beta)
