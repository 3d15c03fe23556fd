"""Chapter 02, the chain rule in deep nets: an activation and a fully connected layer.

The gradient reaching the first layer of a deep net is a product of one factor per layer:
the activation's slope and the layer's weights. Here you write both backward passes.
Read docs/chapters/02-chain-rule.md, "Why the product shrinks (or grows)".
"""
import numpy as np

import minideep as md


class LeakyReLU(md.Function):
    """y = x where x > 0, else slope * x.   dy/dx = 1 where x > 0, else slope."""

    def __init__(self, slope):
        self.slope = slope

    def forward(self, x):
        raise NotImplementedError("see docs/chapters/02-chain-rule.md, 'Exercises' 1")

    def backward(self, grad):
        raise NotImplementedError("see docs/chapters/02-chain-rule.md, 'Exercises' 1")


class Linear(md.Function):
    """y = x W^T + b, with x (N, in), W (out, in), b (out,), as nn.Linear.

    With G = dL/dy (N, out): dL/dx = G W, dL/dW = G^T x, dL/db = G summed over the batch.
    Check each result's shape against its input's before you trust it.
    """

    def forward(self, x, weight, bias):
        self.x, self.weight = x, weight
        return x @ weight.T + bias

    def backward(self, grad):
        raise NotImplementedError("see docs/chapters/02-chain-rule.md, 'Why the product shrinks (or grows)'")


def leaky_relu(x, slope=0.01):
    return LeakyReLU(slope)(x)


def linear(x, weight, bias):
    return Linear()(x, weight, bias)
