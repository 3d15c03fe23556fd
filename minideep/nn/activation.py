"""Activation layers, and ``make_activation`` to pick one by name."""
from __future__ import annotations

from .. import ops
from ..autograd import Tensor
from .module import Module


class ReLU(Module):
    """y = max(x, 0), elementwise. Any shape."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(x)


class LeakyReLU(Module):
    """y = x for x > 0, negative_slope * x otherwise, elementwise. Any shape.

    Args:
        negative_slope: the slope for negative inputs (default 0.01, as PyTorch).
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return ops.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """y = 1 / (1 + e^-x), elementwise. Any shape."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.sigmoid(x)


class Tanh(Module):
    """y = tanh(x), elementwise. Any shape."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.tanh(x)


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh}


def make_activation(activation: str | Module) -> Module:
    """A new activation layer from its name ("relu", "leaky_relu", "sigmoid", "tanh"), or the module itself."""
    if isinstance(activation, Module):
        return activation
    if activation not in ACTIVATIONS:
        raise ValueError(f"make_activation: unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[activation]()
