"""F.linear: y = x W^T + b with W shaped (out, in), for 1-D, 2-D and 3-D inputs."""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
@pytest.mark.parametrize("x_shape", [(4, 3), (1, 3), (2, 5, 3), (3,), (2, 1, 2, 3)], ids=str)
def test_linear(randn, x_shape, bias):
    x, w = randn(*x_shape, seed=1), randn(2, 3, seed=2)
    b = randn(2, seed=3) if bias else None
    expected = x.numpy() @ w.numpy().T + (b.numpy() if bias else 0)
    y = F.linear(x, w, b)
    assert y.shape == x_shape[:-1] + (2,)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-13)
    inputs = [x, w, b] if bias else [x, w]
    assert md.gradcheck(lambda x, w, *b: F.linear(x, w, *b), inputs)


def test_linear_with_only_the_weight_trainable(randn):
    x, w, b = randn(4, 3, requires_grad=False), randn(2, 3, seed=1), randn(2, seed=2, requires_grad=False)
    assert md.gradcheck(lambda w: F.linear(x, w, b), [w])
    assert x.grad is None and b.grad is None


def test_linear_with_only_the_input_trainable(randn):
    x, w = randn(4, 3), randn(2, 3, seed=1, requires_grad=False)
    assert md.gradcheck(lambda x: F.linear(x, w), [x])


def test_linear_bias_gradient_sums_over_every_leading_axis(randn):
    x, w, b = randn(2, 5, 3), randn(4, 3, seed=1), randn(4, seed=2)
    F.linear(x, w, b).sum().backward()
    np.testing.assert_allclose(md.backend.as_numpy(b.grad), np.full(4, 10.0))
