"""Inverted dropout: zero each unit with probability p and scale the survivors by 1/(1-p)."""
from __future__ import annotations

from ..autograd import Function, Tensor
from ..backend import get_array_module, get_generator


class DropoutBackward(Function):
    """y = x * m / (1 - p), m ~ Bernoulli(1 - p).   dL/dx = g * m / (1 - p).

    Scaling at training time keeps E[y] = x, so evaluation needs no rescaling.
    """

    def __init__(self, p: float) -> None:
        self.p = p

    def forward(self, x):
        xp = get_array_module(x)
        keep = get_generator(xp).random(x.shape) >= self.p
        self.mask = keep.astype(x.dtype) / x.dtype.type(1 - self.p) if self.p < 1 else xp.zeros_like(x)
        return x * self.mask

    def backward(self, grad):
        return grad * self.mask


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout; the identity when ``training`` is False or ``p`` is 0.

    Reproducible under ``minideep.manual_seed``.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    return DropoutBackward(p)(x)
