"""Chapter 04, highway networks: the gate's mix and a highway layer.

y = H(x) * T(x) + x * (1 - T(x)), with the transform H(x) = relu(x W_H^T + b_H) and the
transform gate T(x) = sigmoid(x W_T^T + b_T) in (0, 1), one value per unit; 1 - T is the
carry gate. Read docs/chapters/04-highway.md, "The highway layer" and "Its derivative".
"""
import numpy as np

import minideep as md
import minideep.nn.functional as F


class HighwayMix(md.Function):
    """y = h * t + x * (1 - t), elementwise, for three arrays of one shape.

    With g = dL/dy: dL/dh = t g, dL/dt = (h - x) g, dL/dx = (1 - t) g.
    """

    def forward(self, h, t, x):
        raise NotImplementedError("see docs/chapters/04-highway.md, 'Its derivative'")

    def backward(self, grad):
        raise NotImplementedError("see docs/chapters/04-highway.md, 'Its derivative'")


def highway_mix(h, t, x):
    return HighwayMix()(h, t, x)


def highway(x, w_h, b_h, w_t, b_t):
    """A fully connected highway layer on x (N, features), as nn.Highway(features).

    Build it from minideep's ops (F.linear, F.relu, F.sigmoid) and your highway_mix.
    """
    raise NotImplementedError("see docs/chapters/04-highway.md, 'The highway layer'")
