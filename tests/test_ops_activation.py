"""relu, leaky_relu, sigmoid, tanh, softmax, log_softmax: values, gradients, and no overflow at |x| = 1000."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F

SHAPES = [(7,), (3, 4), (2, 3, 2, 2)]


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(x / 2))  # an overflow-free reference


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_relu(randn, shape):
    x = randn(*shape)
    np.testing.assert_array_equal(F.relu(x).numpy(), np.maximum(x.numpy(), 0))
    assert md.gradcheck(F.relu, [x])


@pytest.mark.parametrize("slope", [0.01, 0.2, 1.5])
@pytest.mark.parametrize("shape", SHAPES[:2], ids=str)
def test_leaky_relu(randn, shape, slope):
    x = randn(*shape)
    np.testing.assert_allclose(F.leaky_relu(x, slope).numpy(), np.where(x.numpy() > 0, x.numpy(), slope * x.numpy()))
    assert md.gradcheck(lambda t: F.leaky_relu(t, negative_slope=slope), [x])


def test_leaky_relu_default_slope(randn):
    x = randn(5)
    np.testing.assert_allclose(F.leaky_relu(x).numpy(), np.where(x.numpy() > 0, x.numpy(), 0.01 * x.numpy()))


def test_relu_gradient_at_zero_is_zero(on_device):
    x = md.tensor(on_device(np.array([-1.0, 0.0, 2.0])), requires_grad=True)
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(md.backend.as_numpy(x.grad), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_sigmoid_and_tanh(randn, shape):
    x = md.tensor(randn(*shape).data * 3, requires_grad=True)
    np.testing.assert_allclose(F.sigmoid(x).numpy(), _sigmoid(x.numpy()), rtol=1e-12)
    np.testing.assert_allclose(F.tanh(x).numpy(), np.tanh(x.numpy()), rtol=1e-14)
    assert md.gradcheck(F.sigmoid, [x])
    assert md.gradcheck(F.tanh, [x])


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_and_log_softmax(randn, name, axis):
    x = randn(3, 4, 2)
    expected = _softmax(x.numpy(), axis)
    y = getattr(F, name)(x, axis=axis)
    np.testing.assert_allclose(y.numpy(), expected if name == "softmax" else np.log(expected), rtol=1e-13)
    assert md.gradcheck(lambda t: getattr(F, name)(t, axis=axis), [x])


def test_softmax_rows_sum_to_one(randn):
    np.testing.assert_allclose(F.softmax(randn(4, 5) * 10, axis=1).numpy().sum(axis=1), 1.0, rtol=1e-14)


def test_softmax_default_axis_is_the_last(randn):
    x = randn(2, 3)
    np.testing.assert_array_equal(F.softmax(x).numpy(), F.softmax(x, axis=-1).numpy())
    np.testing.assert_array_equal(F.log_softmax(x).numpy(), F.log_softmax(x, axis=1).numpy())


# --------------------------------------------------------------------------- numerical stability

EXTREME = np.array([[-1000.0, 0.0, 1000.0], [1000.0, 1000.0, -1000.0], [-1000.0, -1000.0, -999.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["sigmoid", "softmax", "log_softmax"])
def test_no_overflow_at_1000(on_device, name, dtype):
    x = md.tensor(on_device(EXTREME.astype(dtype)), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning from inside NumPy fails the test
        y = getattr(F, name)(x)
        (y * md.tensor(on_device(np.arange(9.0).reshape(3, 3).astype(dtype)))).sum().backward()
    assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(md.backend.as_numpy(x.grad)))
    assert y.dtype == dtype


def test_extreme_values_are_exact(on_device):
    x = md.tensor(on_device(EXTREME))
    np.testing.assert_array_equal(F.sigmoid(x).numpy()[0], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(F.softmax(x).numpy()[1], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(F.log_softmax(x).numpy()[0], [-2000.0, -1000.0, 0.0])
    lse = np.log1p(2 * np.exp(-1.0))  # log(e^-1 + e^-1 + e^0), after shifting by the max -999
    np.testing.assert_allclose(F.log_softmax(x).numpy()[2], [-1 - lse, -1 - lse, -lse], rtol=1e-12)
