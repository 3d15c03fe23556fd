"""The dropout layer."""
from __future__ import annotations

from .. import ops
from ..autograd import Tensor
from .module import Module


class Dropout(Module):
    """y = x * m / (1 - p), m ~ Bernoulli(1 - p) per element, in training mode; y = x in evaluation mode.

    Any shape. Reproducible under ``md.manual_seed``.

    Args:
        p: probability of zeroing an element (default 0.5).
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return ops.dropout(x, self.p, training=self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
