"""Reductions: sum, mean, max and var over axes.

Their backward passes put the gradient back on the reduced axes: each input element
contributed to one output element, so it receives that element's gradient (times its
local derivative). ``expand`` does the re-insertion of the reduced axes in one place.
"""
from __future__ import annotations

from typing import Sequence

from ..autograd import Function, Tensor, normalize_axis
from ..backend import get_array_module

Axis = int | Sequence[int] | None


def expand(grad, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool):
    """Broadcast a reduced gradient back to the input's ``shape`` (the backward of a reduction)."""
    if not keepdims:
        for a in sorted(axes):
            grad = get_array_module(grad).expand_dims(grad, a)
    return get_array_module(grad).broadcast_to(grad, shape)


class SumBackward(Function):
    """y = sum_i x_i over ``axis``.   dL/dx_i = dL/dy (every summand has derivative 1)."""

    def __init__(self, axis: Axis, keepdims: bool) -> None:
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.shape, self.axes = x.shape, normalize_axis(self.axis, x.ndim, "sum")
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, grad):
        return expand(grad, self.shape, self.axes, self.keepdims)


class MeanBackward(Function):
    """y = (1/n) sum_i x_i over ``axis``.   dL/dx_i = dL/dy / n."""

    def __init__(self, axis: Axis, keepdims: bool) -> None:
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.shape, self.axes = x.shape, normalize_axis(self.axis, x.ndim, "mean")
        self.n = 1
        for a in self.axes:
            self.n *= x.shape[a]
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, grad):
        return expand(grad / self.n, self.shape, self.axes, self.keepdims)


class MaxBackward(Function):
    """y = max_i x_i over ``axis``.

    dL/dx_i = dL/dy where x_i is the maximum, else 0; ties share the gradient equally
    (as ``torch.amax`` does).
    """

    def __init__(self, axis: Axis, keepdims: bool) -> None:
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = normalize_axis(self.axis, x.ndim, "max")
        y = x.max(axis=self.axes, keepdims=True)
        self.is_max = x == y
        return y if self.keepdims else y.reshape([n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, grad):
        shape = self.is_max.shape
        count = self.is_max.sum(axis=self.axes, keepdims=True)
        share = expand(grad, shape, self.axes, self.keepdims) / count
        return (share * self.is_max).astype(grad.dtype, copy=False)


class VarBackward(Function):
    """y = (1/(n - ddof)) sum_i (x_i - mean)^2.   dL/dx_i = dL/dy * 2 (x_i - mean) / (n - ddof).

    (The derivative through the mean vanishes because the deviations sum to zero.)
    """

    def __init__(self, axis: Axis, keepdims: bool, ddof: int) -> None:
        self.axis, self.keepdims, self.ddof = axis, keepdims, ddof

    def forward(self, x):
        self.shape, self.axes = x.shape, normalize_axis(self.axis, x.ndim, "var")
        n = 1
        for a in self.axes:
            n *= x.shape[a]
        if n - self.ddof <= 0:
            raise ValueError(f"var: {n} elements along the axes with ddof={self.ddof} leave no degrees of freedom")
        self.denominator = n - self.ddof
        self.centered = x - x.mean(axis=self.axes, keepdims=True)
        return (self.centered**2).sum(axis=self.axes, keepdims=self.keepdims) / self.denominator

    def backward(self, grad):
        return expand(grad, self.shape, self.axes, self.keepdims) * (2 * self.centered / self.denominator)


def sum(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (all axes when None)."""
    return SumBackward(axis, keepdims)(x)


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (all axes when None)."""
    return MeanBackward(axis, keepdims)(x)


def max(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis`` (all axes when None); ties share the gradient."""
    return MaxBackward(axis, keepdims)(x)


def var(x: Tensor, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance over ``axis``; ``ddof=0`` (NumPy's default, biased), ``ddof=1`` for PyTorch's unbiased."""
    return VarBackward(axis, keepdims, ddof)(x)
