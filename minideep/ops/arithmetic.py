"""Arithmetic: + - * / ** @ and negation, with NumPy broadcasting undone by ``sum_to``."""
from __future__ import annotations

from typing import Any

from ..autograd import Function, Tensor, as_tensor_like, sum_to
from ..backend import get_array_module


def _check_broadcast(op: str, a: Any, b: Any) -> None:
    """A clear error instead of NumPy's when two shapes do not broadcast."""
    for x, y in zip(reversed(a.shape), reversed(b.shape)):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together")


# --8<-- [start:add]
class AddBackward(Function):
    """y = a + b.   dL/da = sum_to(g, a.shape), dL/db = sum_to(g, b.shape)."""

    def forward(self, a, b):
        _check_broadcast("add", a, b)
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, grad):
        return sum_to(grad, self.a_shape), sum_to(grad, self.b_shape)
# --8<-- [end:add]


class SubBackward(Function):
    """y = a - b.   dL/da = g, dL/db = -g (each summed back to its shape)."""

    def forward(self, a, b):
        _check_broadcast("sub", a, b)
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, grad):
        return sum_to(grad, self.a_shape), sum_to(-grad, self.b_shape)


# --8<-- [start:mul]
class MulBackward(Function):
    """y = a * b.   dL/da = g * b, dL/db = g * a."""

    def forward(self, a, b):
        _check_broadcast("mul", a, b)
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        ga = sum_to(grad * self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(grad * self.a, self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb
# --8<-- [end:mul]


# --8<-- [start:div]
class DivBackward(Function):
    """y = a / b.   dL/da = g / b, dL/db = -g * a / b^2."""

    def forward(self, a, b):
        _check_broadcast("div", a, b)
        self.a, self.b = a, b
        return a / b

    def backward(self, grad):
        ga = sum_to(grad / self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(-grad * self.a / (self.b * self.b), self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb
# --8<-- [end:div]


class NegBackward(Function):
    """y = -x.   dL/dx = -g."""

    def forward(self, x):
        return -x

    def backward(self, grad):
        return -grad


# --8<-- [start:pow]
class PowBackward(Function):
    """y = x^p for a constant exponent p.   dL/dx = g * p * x^(p-1)."""

    def __init__(self, exponent: float) -> None:
        self.exponent = exponent

    def forward(self, x):
        self.x = x
        return x**self.exponent

    def backward(self, grad):
        p = self.exponent
        if p == 0:  # x^0 is constant; p * x^(p-1) would be 0 * inf = nan at x = 0
            return get_array_module(grad).zeros_like(grad)
        return grad * p * self.x ** (p - 1)
# --8<-- [end:pow]


class MatmulBackward(Function):
    """Y = A @ B (the last two axes are matrices; leading axes broadcast).

    dL/dA = G @ B^T,  dL/dB = A^T @ G, each summed back over broadcast batch axes.
    """

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul: both operands need at least 2 dimensions, got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(
                f"matmul: inner dimensions differ: {a.shape} @ {b.shape} ({a.shape[-1]} != {b.shape[-2]})"
            )
        for x, y in zip(reversed(a.shape[:-2]), reversed(b.shape[:-2])):  # batch axes broadcast like add's
            if x != y and x != 1 and y != 1:
                raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be broadcast together")
        self.a, self.b = a, b
        return a @ b

    def backward(self, grad):
        a, b = self.a, self.b
        ga = sum_to(grad @ b.swapaxes(-1, -2), a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(a.swapaxes(-1, -2) @ grad, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


def add(a: Tensor, b: Any) -> Tensor:
    """Elementwise ``a + b`` with broadcasting."""
    return AddBackward()(a, as_tensor_like(b, a))


def sub(a: Tensor, b: Any) -> Tensor:
    """Elementwise ``a - b`` with broadcasting."""
    return SubBackward()(a, as_tensor_like(b, a))


def mul(a: Tensor, b: Any) -> Tensor:
    """Elementwise ``a * b`` with broadcasting."""
    return MulBackward()(a, as_tensor_like(b, a))


def div(a: Tensor, b: Any) -> Tensor:
    """Elementwise ``a / b`` with broadcasting."""
    return DivBackward()(a, as_tensor_like(b, a))


def neg(x: Tensor) -> Tensor:
    """``-x``."""
    return NegBackward()(x)


def power(x: Tensor, exponent: float) -> Tensor:
    """``x ** exponent`` for a constant (non-tensor) exponent."""
    if isinstance(exponent, Tensor):
        raise TypeError("pow: the exponent must be a Python number, not a tensor")
    return PowBackward(exponent)(x)


def matmul(a: Tensor, b: Any) -> Tensor:
    """Matrix product ``a @ b`` of tensors with at least two dimensions."""
    return MatmulBackward()(a, as_tensor_like(b, a))
