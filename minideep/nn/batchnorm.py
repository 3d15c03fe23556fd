"""Batch normalisation layers (Ioffe & Szegedy 2015), with PyTorch's conventions."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import ops
from ..autograd import Tensor
from ..backend import DEFAULT_DTYPE, get_array_module
from .module import Module, Parameter


class _BatchNorm(Module):
    """Shared code of BatchNorm1d and BatchNorm2d; subclasses set the input rank they accept."""

    _input_ndim = 0
    _input_shape = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, got {num_features!r}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1] or None, got {momentum}")
        if not isinstance(eps, (int, float)) or not eps > 0:  # eps <= 0 lets 1/sqrt(var + eps) blow up
            raise ValueError(f"{type(self).__name__}: eps must be a number > 0, got {eps!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))   # gamma
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))    # beta
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != self._input_ndim:
            raise ValueError(
                f"{type(self).__name__}: input must have shape {self._input_shape}, got {x.shape}"
            )
        use_batch_stats = self.training or self.running_mean is None
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1  # a 0-d array, updated in place so state_dict sees it
            if momentum is None:  # a cumulative average over all batches seen
                momentum = 1.0 / self.num_batches_tracked  # a 0-d array where the counter is: float() would wait for a GPU
        # In training mode without tracking, nothing is updated; pass no running stats at all.
        track = self.training and self.track_running_stats
        running_mean = self.running_mean if (track or not use_batch_stats) else None
        running_var = self.running_var if (track or not use_batch_stats) else None
        if running_mean is not None and get_array_module(running_mean) is not get_array_module(x.data):
            raise ValueError(f"{type(self).__name__}: input is on {x.device} but the running statistics are not; call .to()")
        if not track:
            return ops.batch_norm(x, running_mean, running_var, self.weight, self.bias, training=use_batch_stats,
                                  momentum=momentum if momentum is not None else 0.0, eps=self.eps)
        before = (running_mean.copy(), running_var.copy())  # C values each: cheap
        y = ops.batch_norm(x, running_mean, running_var, self.weight, self.bias, training=True,
                           momentum=momentum if momentum is not None else 0.0, eps=self.eps)
        self._keep_finite_running_stats(*before)
        return y

    def _keep_finite_running_stats(self, old_mean: Any, old_var: Any) -> None:
        """Undo the running-statistics update of every channel that a NaN/inf batch made non-finite.

        One NaN anywhere in a channel's batch makes that channel's batch mean NaN, and
        ``r = (1 - m) r + m * NaN`` stays NaN for ever after (PyTorch keeps it so): every later
        evaluation would give NaN. Skipping the update of those channels (rather than refusing
        the batch with an error) keeps the layer usable and leaves the report to the loss:
        the same batch gives a NaN training loss, which ``fit`` stops on and names. Finite
        channels are updated as usual. On the CPU a warning says how many channels were kept;
        on the GPU the fix-up runs without a device synchronisation and so without the warning.
        """
        xp = get_array_module(self.running_mean)
        bad = ~(xp.isfinite(self.running_mean) & xp.isfinite(self.running_var))
        self.running_mean[...] = xp.where(bad, old_mean, self.running_mean)
        self.running_var[...] = xp.where(bad, old_var, self.running_var)
        if xp is np and bad.any():
            warnings.warn(
                f"{type(self).__name__}({self.num_features}): the batch holds NaN or inf in {int(bad.sum())} "
                "channel(s); their running statistics were left as they were (not updated from this batch)",
                RuntimeWarning, stacklevel=3,
            )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """y = gamma (x - mean) / sqrt(var + eps) + beta, per feature, over the batch.

    Shapes: input and output (N, C). In training mode mean and var are the batch's (biased
    variance); the running estimates are updated as r = (1 - momentum) r + momentum * stat,
    with the unbiased batch variance n/(n-1) var, and used in evaluation mode.
    ``momentum=None`` makes them a cumulative average. gamma starts at 1, beta at 0.
    A training batch with NaN or inf in a channel leaves that channel's running estimates
    as they were (PyTorch would make them NaN for good), with a RuntimeWarning on the CPU.

    Args:
        num_features: C.
        eps: added to the variance for stability (default 1e-5).
        momentum: weight of the new batch in the running estimates (default 0.1).
        affine: learn gamma and beta (default True).
        track_running_stats: keep running estimates (default True); without them the batch
            statistics are used in evaluation mode too.
        dtype: dtype of parameters and buffers (float32 by default).

    Example::

        bn = nn.BatchNorm1d(100)
        bn(md.tensor(np.random.randn(20, 100)))
    """

    _input_ndim = 2
    _input_shape = "(N, C)"


class BatchNorm2d(_BatchNorm):
    """y = gamma (x - mean) / sqrt(var + eps) + beta, per channel, over the batch and all pixels.

    Shapes: input and output (N, C, H, W); statistics over n = N H W values per channel.
    Training and evaluation behave as in ``BatchNorm1d`` (same arguments and defaults).

    Example::

        bn = nn.BatchNorm2d(32)
        bn(conv(x))  # x of shape (N, C_in, H, W)
    """

    _input_ndim = 4
    _input_shape = "(N, C, H, W)"
