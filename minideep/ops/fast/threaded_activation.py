"""ReLU and leaky ReLU with the batch shared among threads (CPU).

An activation is pure memory traffic: one pass reads x and writes y. NumPy runs each pass on
one core, so the second core idles between the convolutions. Here each thread takes whole
images (``parallel.in_parallel`` over axis 0) and the output takes the input's memory layout
(``empty_like``), so every thread reads and writes one contiguous stretch of memory; an output
in another layout than its input makes both threads stride through memory and is slower than
one thread. The arithmetic per element is that of ``ops.activation``, so the values are equal
bit for bit; arrays of fewer than ``THREADED_ABOVE`` elements get the plain ops.
"""
from __future__ import annotations

from typing import Callable

from ...autograd import Function
from ...backend import get_array_module
from .parallel import in_parallel

#: Arrays with at least this many elements get these kernels (``kernel_for``); smaller ones the plain op,
#: for which a thread's start would cost more than its share saves.
THREADED_ABOVE = 1 << 16


def by_images(task: Callable[[slice], None], like) -> None:
    """task(part) for ``part`` = slice(a, b) of axis 0 of ``like``, one share per thread."""
    in_parallel(lambda a, b: task(slice(a, b)), like.shape[0])


class ThreadedReluBackward(Function):
    """``ops.activation.ReluBackward`` on shares of the batch: y = x * [x > 0], dx = grad * [x > 0]."""

    def forward(self, x):
        xp = get_array_module(x)
        self.positive, y = xp.empty_like(x, dtype=bool), xp.empty_like(x)

        def share(i: slice) -> None:
            xp.greater(x[i], 0, out=self.positive[i])
            xp.multiply(x[i], self.positive[i], out=y[i])

        by_images(share, x)
        return y

    def backward(self, grad):
        xp = get_array_module(grad)
        dx = xp.empty_like(grad)
        by_images(lambda i: xp.multiply(grad[i], self.positive[i], out=dx[i]), grad)
        return dx


class ThreadedLeakyReluBackward(Function):
    """``ops.activation.LeakyReluBackward`` on shares of the batch: y = max(x, a x) for a in [0, 1]."""

    def __init__(self, negative_slope: float) -> None:
        self.slope = negative_slope

    def forward(self, x):
        xp, a = get_array_module(x), x.dtype.type(self.slope)
        y = xp.empty_like(x)
        # As the plain op: for a in [0, 1] no mask is kept (y > 0 exactly where x > 0).
        self.positive = None if 0 <= self.slope <= 1 else x > 0

        def share(i: slice) -> None:
            xp.multiply(x[i], a, out=y[i])
            if self.positive is None:
                xp.maximum(x[i], y[i], out=y[i])
            else:
                xp.copyto(y[i], x[i], where=self.positive[i])

        by_images(share, x)
        self.y = y if self.positive is None else None  # backward's sign source, or the mask above
        return y

    def backward(self, grad):
        xp, a = get_array_module(grad), grad.dtype.type(self.slope)
        factor = xp.empty_like(grad)

        def share(i: slice) -> None:  # dy/dx = a + (1 - a) [x > 0], then times grad, as the plain op
            f = factor[i]
            xp.copyto(f, self.y[i] > 0 if self.positive is None else self.positive[i])
            f *= 1 - a
            f += a
            f *= grad[i]

        by_images(share, grad)
        return factor
