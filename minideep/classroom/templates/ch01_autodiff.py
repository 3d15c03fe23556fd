"""Chapter 01, reverse-mode autodiff: write your own ops.

Fill in every function that raises NotImplementedError, then run ``pytest`` in this folder.

A Function works on raw arrays: ``forward(*arrays)`` returns the output array, and
``backward(grad)`` gets dL/d(output) and returns dL/d(input), one per input (a tuple for
two). Save what backward needs on ``self`` in forward. Read docs/engine.md, "A Function is
forward and backward side by side" and "Writing your own op", and
docs/chapters/01-autodiff.md, "Exercises".
"""
import numpy as np

import minideep as md


class Sin(md.Function):
    """y = sin(x).   dL/dx = dL/dy * cos(x)."""

    def forward(self, x):
        raise NotImplementedError("see docs/engine.md, 'Writing your own op'")

    def backward(self, grad):
        raise NotImplementedError("see docs/engine.md, 'Writing your own op'")


class Exp(md.Function):
    """y = e^x.   Its derivative is the output itself: save y, not x."""

    def forward(self, x):
        raise NotImplementedError("see docs/engine.md, 'Writing your own op'")

    def backward(self, grad):
        raise NotImplementedError("see docs/engine.md, 'Writing your own op'")


class Sigmoid(md.Function):
    """y = 1 / (1 + e^-x).   Work out dy/dx and write it with y alone."""

    def forward(self, x):
        raise NotImplementedError("see docs/chapters/02-chain-rule.md, 'Why the product shrinks (or grows)'")

    def backward(self, grad):
        raise NotImplementedError("see docs/chapters/02-chain-rule.md, 'Why the product shrinks (or grows)'")


def sum_to(grad, shape):
    """Sum the array ``grad`` down to ``shape``: the backward pass of NumPy broadcasting.

    If x of shape ``shape`` was broadcast to grad.shape, every element of x was used once per
    copy, so dL/dx sums the gradient over the copies: over the leading axes that broadcasting
    added, and over every axis where ``shape`` has length 1. Example: grad (4, 3, 5) to
    shape (3, 1) sums axis 0 and axis 2.
    """
    raise NotImplementedError("see docs/broadcasting.md, 'Backward: a used-several-times value collects several gradients'")


class Mul(md.Function):
    """y = a * b with broadcasting.   dL/da = g * b and dL/db = g * a, each summed back to its input's shape."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        raise NotImplementedError("see docs/broadcasting.md, 'One helper, used everywhere'")


class MatMul(md.Function):
    """Y = A @ B: the last two axes are matrices, leading (batch) axes broadcast.

    dL/dA = G @ B^T and dL/dB = A^T @ G (transpose the last two axes with ``.swapaxes(-1, -2)``),
    then each summed back over the batch axes its input did not have.
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, grad):
        raise NotImplementedError("see docs/chapters/01-autodiff.md, 'A small MLP: the same walk with arrays'")


# The functions the tests call: one new Function per use, applied to tensors.
def sin(x):
    return Sin()(x)


def exp(x):
    return Exp()(x)


def sigmoid(x):
    return Sigmoid()(x)


def mul(a, b):
    return Mul()(a, b)


def matmul(a, b):
    return MatMul()(a, b)
