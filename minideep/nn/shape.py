"""Layers that only reshape or pass their input through: Flatten and Identity."""
from __future__ import annotations

from typing import Any

from .. import ops
from ..autograd import Tensor
from .module import Module


class Flatten(Module):
    """y = x reshaped to (N, prod of the remaining axes): (N, C, H, W) -> (N, C H W).

    Args:
        start_axis: the first axis to flatten (default 1, keeping the batch axis).
    """

    def __init__(self, start_axis: int = 1) -> None:
        super().__init__()
        self.start_axis = start_axis

    def forward(self, x: Tensor) -> Tensor:
        return ops.flatten(x, self.start_axis)

    def extra_repr(self) -> str:
        return f"start_axis={self.start_axis}"


class Identity(Module):
    """y = x. A placeholder (for example the shortcut of a residual block whose shape does not change)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x
