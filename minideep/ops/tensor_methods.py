"""Operators and methods of ``Tensor``: ``a + b`` calls ``ops.add(a, b)``, and so on.

They are attached here, after the ops exist, so that ``autograd.py`` stays the engine
alone and every op lives in ``ops/``.
"""
from __future__ import annotations

from ..autograd import Tensor, as_tensor_like, unwrap
from . import arithmetic, elementwise, reduction, shape


def _reversed(op):
    """``other OP self`` for a non-tensor ``other`` (as in ``2 - x``)."""
    return lambda self, other: op(as_tensor_like(other, self), self)


def _compare(name):
    """An elementwise comparison: a boolean tensor, outside the graph."""
    return lambda self, other: Tensor(getattr(self.data, name)(unwrap(other)))


_METHODS = {
    "__add__": arithmetic.add,
    "__radd__": arithmetic.add,
    "__sub__": arithmetic.sub,
    "__rsub__": _reversed(arithmetic.sub),
    "__mul__": arithmetic.mul,
    "__rmul__": arithmetic.mul,
    "__truediv__": arithmetic.div,
    "__rtruediv__": _reversed(arithmetic.div),
    "__neg__": arithmetic.neg,
    "__pow__": arithmetic.power,
    "__matmul__": arithmetic.matmul,
    "__rmatmul__": _reversed(arithmetic.matmul),
    "__getitem__": shape.getitem,
    "sum": reduction.sum,
    "mean": reduction.mean,
    "max": reduction.max,
    "var": reduction.var,
    "reshape": shape.reshape,
    "transpose": shape.transpose,
    "flatten": shape.flatten,
    "exp": elementwise.exp,
    "log": elementwise.log,
    "sqrt": elementwise.sqrt,
    "tanh": elementwise.tanh,
    "abs": elementwise.abs,
    "clip": elementwise.clip,
}

for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)
for _name in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
    setattr(Tensor, _name, _compare(_name))
Tensor.T = property(lambda self: shape.transpose(self), doc="The tensor with its axes reversed.")
