"""Elementwise math: exp, log, sqrt, tanh, abs, maximum, clip, where.

Each op's backward multiplies the incoming gradient by the local derivative,
elementwise: dL/dx = dL/dy * dy/dx.
"""
from __future__ import annotations

from typing import Any

from ..autograd import Function, Tensor, as_tensor_like, sum_to, unwrap
from ..backend import get_array_module
from .arithmetic import _check_broadcast as check_broadcast


class ExpBackward(Function):
    """y = e^x.   dy/dx = e^x = y (so the output is saved, not recomputed)."""

    def forward(self, x):
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, grad):
        return grad * self.y


class LogBackward(Function):
    """y = ln x.   dy/dx = 1 / x."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, grad):
        return grad / self.x


class SqrtBackward(Function):
    """y = sqrt(x).   dy/dx = 1 / (2 sqrt(x))."""

    def forward(self, x):
        self.y = get_array_module(x).sqrt(x)
        return self.y

    def backward(self, grad):
        return grad / (2 * self.y)


# --8<-- [start:tanh]
class TanhBackward(Function):
    """y = tanh(x).   dy/dx = 1 - y^2."""

    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, grad):
        return grad * (1 - self.y * self.y)
# --8<-- [end:tanh]


class AbsBackward(Function):
    """y = |x|.   dy/dx = sign(x) (0 at x = 0, as in PyTorch)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).abs(x)  # not abs(x): this module's abs() shadows the builtin

    def backward(self, grad):
        return grad * get_array_module(self.x).sign(self.x)


class MaximumBackward(Function):
    """y = max(a, b) elementwise.   The gradient goes to the larger input; ties split it in half."""

    def forward(self, a, b):
        check_broadcast("maximum", a, b)
        self.a, self.b = a, b
        return get_array_module(a, b).maximum(a, b)

    def backward(self, grad):
        a, b = self.a, self.b
        share_a = (a > b) + 0.5 * (a == b)
        ga = sum_to(grad * share_a, a.shape).astype(grad.dtype, copy=False)
        gb = sum_to(grad * (1 - share_a), b.shape).astype(grad.dtype, copy=False)
        return ga, gb


class ClipBackward(Function):
    """y = min(max(x, lo), hi).   dy/dx = 1 where lo <= x <= hi, else 0."""

    def __init__(self, lo: float | None, hi: float | None) -> None:
        self.lo, self.hi = lo, hi

    def forward(self, x):
        self.x = x
        return get_array_module(x).clip(x, self.lo, self.hi)

    def backward(self, grad):
        inside = get_array_module(grad).ones_like(grad, dtype=bool)
        if self.lo is not None:
            inside &= self.x >= self.lo
        if self.hi is not None:
            inside &= self.x <= self.hi
        return grad * inside


class WhereBackward(Function):
    """y = a where cond else b.   dL/da = g where cond, dL/db = g elsewhere."""

    def __init__(self, condition: Any) -> None:
        self.condition = condition

    def forward(self, a, b):
        xp = get_array_module(a, b)
        for x, y in ((a, b), (self.condition, a), (self.condition, b)):  # pairwise is enough for broadcasting
            check_broadcast("where", x, y)
        self.a_shape, self.b_shape = a.shape, b.shape
        return xp.where(self.condition, a, b)

    def backward(self, grad):
        zero = grad.dtype.type(0)
        xp = get_array_module(grad)
        return (
            sum_to(xp.where(self.condition, grad, zero), self.a_shape),
            sum_to(xp.where(self.condition, zero, grad), self.b_shape),
        )


def exp(x: Tensor) -> Tensor:
    """Elementwise e^x."""
    return ExpBackward()(x)


def log(x: Tensor) -> Tensor:
    """Elementwise natural logarithm."""
    return LogBackward()(x)


def sqrt(x: Tensor) -> Tensor:
    """Elementwise square root."""
    return SqrtBackward()(x)


def tanh(x: Tensor) -> Tensor:
    """Elementwise hyperbolic tangent."""
    return TanhBackward()(x)


def abs(x: Tensor) -> Tensor:  # noqa: A001 - the name users look for
    """Elementwise absolute value."""
    return AbsBackward()(x)


def maximum(a: Tensor, b: Any) -> Tensor:
    """Elementwise maximum of two tensors (or a tensor and a number)."""
    if not isinstance(a, Tensor):
        a, b = b, a
    return MaximumBackward()(a, as_tensor_like(b, a))


def clip(x: Tensor, lo: float | None = None, hi: float | None = None) -> Tensor:
    """Limit values to ``[lo, hi]`` (either bound may be None)."""
    if lo is None and hi is None:
        raise ValueError("clip: give at least one of lo and hi")
    return ClipBackward(lo, hi)(x)


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """Elementwise choice: ``a`` where ``condition`` is true, else ``b`` (no gradient to the condition)."""
    like = a if isinstance(a, Tensor) else b
    if not isinstance(like, Tensor):
        raise TypeError("where: at least one of a and b must be a Tensor")
    cond = unwrap(condition)
    xp = get_array_module(like.data)
    return WhereBackward(xp.asarray(cond, dtype=bool))(as_tensor_like(a, like), as_tensor_like(b, like))
