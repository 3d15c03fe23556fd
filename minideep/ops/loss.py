"""Losses: cross-entropy (fused with log-softmax), negative log-likelihood, mean squared error."""
from __future__ import annotations

from typing import Any

import numpy

from ..autograd import Function, Tensor, as_tensor_like, unwrap
from ..backend import device_of, get_array_module
from .activation import log_softmax_array

_REDUCTIONS = ("mean", "sum", "none")


def _check_targets(op: str, scores, target, reduction: str):
    """Class targets must be integers in [0, C), one per row of ``scores`` (N, C).

    A target on the host (a list, a NumPy array) is checked here, for free. A target already
    on a GPU is not read back (that would make the host wait for the GPU every step): its
    check is a 0-d device bool, "all classes in range", which `_nan_unless` turns into a NaN
    loss when it fails (``fit`` then stops at that step). Returns (the target on the scores'
    device, that device bool or None).
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not isinstance(scores, Tensor):
        raise TypeError(f"{op}: input must be a Tensor (wrap arrays with md.tensor), got {type(scores).__name__}")
    scores = scores.data
    if scores.ndim != 2:
        raise ValueError(f"{op}: input must have shape (N, C), got {scores.shape}")
    xp = get_array_module(scores)
    on_device = device_of(target) == "gpu"
    target = target if on_device else numpy.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got dtype {target.dtype}")
    if target.shape != scores.shape[:1]:
        raise ValueError(f"{op}: target has shape {target.shape} but input has shape {scores.shape} (expected ({scores.shape[0]},))")
    if on_device:
        return xp.asarray(target), ((target >= 0) & (target < scores.shape[1])).all()
    if target.size:
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= scores.shape[1]:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{op}: target contains class {bad} but input has {scores.shape[1]} classes (valid: 0..{scores.shape[1] - 1})")
    return xp.asarray(target), None


def _nan_unless(in_range, loss: Tensor) -> Tensor:
    """``loss``, or NaN where the device check of the targets failed (see `_check_targets`)."""
    if in_range is None:
        return loss
    xp = get_array_module(in_range)
    return loss + Tensor(xp.where(in_range, 0, xp.nan).astype(loss.dtype))


def _reduce(losses, reduction: str):
    if reduction == "mean":
        # An empty batch has no mean: NaN, as in PyTorch, without NumPy's warning.
        return losses.mean() if losses.size else get_array_module(losses).asarray(float("nan"), dtype=losses.dtype)
    return losses.sum() if reduction == "sum" else losses


def _unreduce(grad, n: int, reduction: str):
    """dL/d(loss_i): the same for every i under mean/sum, one per row under none."""
    if reduction == "mean":
        return grad / max(n, 1)  # n = 0: no rows to scale, and no 0/0 warning
    return grad if reduction == "sum" else grad[:, None]


class CrossEntropyBackward(Function):
    """loss_i = -log softmax(x_i)[t_i].   dL/dx_i = softmax(x_i) - onehot(t_i) (times dL/dloss_i).

    Fused: the softmax is computed once, and its gradient is a subtraction.
    """

    def __init__(self, target: Any, reduction: str) -> None:
        self.target, self.reduction = target, reduction

    def forward(self, logits):
        xp = get_array_module(logits)
        self.logp = log_softmax_array(logits, axis=1)
        self.rows = xp.arange(logits.shape[0])
        return _reduce(-self.logp[self.rows, self.target], self.reduction)

    def backward(self, grad):
        dx = get_array_module(grad).exp(self.logp)
        dx[self.rows, self.target] -= 1
        return dx * _unreduce(grad, dx.shape[0], self.reduction)


class NllLossBackward(Function):
    """loss_i = -x_i[t_i] for log-probabilities x.   dL/dx_i = -onehot(t_i)."""

    def __init__(self, target: Any, reduction: str) -> None:
        self.target, self.reduction = target, reduction

    def forward(self, logp):
        self.shape, self.rows = logp.shape, get_array_module(logp).arange(logp.shape[0])
        return _reduce(-logp[self.rows, self.target], self.reduction)

    def backward(self, grad):
        dx = get_array_module(grad).zeros(self.shape, dtype=grad.dtype)
        dx[self.rows, self.target] = -1
        return dx * _unreduce(grad, self.shape[0], self.reduction)


class MseLossBackward(Function):
    """loss = mean((a - b)^2).   dL/da = 2 (a - b) / n, dL/db = -dL/da."""

    def __init__(self, reduction: str) -> None:
        self.reduction = reduction

    def forward(self, a, b):
        if a.shape != b.shape:
            raise ValueError(f"mse_loss: input has shape {a.shape} but target has shape {b.shape}")
        self.diff = a - b
        squared = self.diff * self.diff
        return squared.mean() if self.reduction == "mean" else squared.sum() if self.reduction == "sum" else squared

    def backward(self, grad):
        scale = 2 / self.diff.size if self.reduction == "mean" else 2
        ga = grad * scale * self.diff
        return ga, -ga


def cross_entropy(logits: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Cross-entropy between ``logits`` (N, C) and integer class ``target`` (N,).

    loss = -(1/N) sum_i log softmax(logits_i)[target_i]  (``reduction="mean"``).

    An empty batch (N = 0) gives NaN under ``"mean"`` (0/0) and 0 under ``"sum"``, as in PyTorch.
    """
    target, in_range = _check_targets("cross_entropy", logits, unwrap(target), reduction)
    return _nan_unless(in_range, CrossEntropyBackward(target, reduction)(logits))


def nll_loss(log_probs: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of integer ``target`` (N,) under ``log_probs`` (N, C)."""
    target, in_range = _check_targets("nll_loss", log_probs, unwrap(target), reduction)
    return _nan_unless(in_range, NllLossBackward(target, reduction)(log_probs))


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error, mean((input - target)^2)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"mse_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return MseLossBackward(reduction)(input, as_tensor_like(target, input))
