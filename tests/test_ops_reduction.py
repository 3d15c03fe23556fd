"""sum, mean, max, var over axes, with and without keepdims."""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md

AXES = [None, 0, 1, -1, (0, 2), (2, 0, 1), ()]
REDUCTIONS = {
    "sum": np.sum,
    "mean": np.mean,
    "max": np.max,
    "var": np.var,
}


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reductions(randn, name, axis, keepdims):
    x = randn(2, 3, 4)
    y = getattr(x, name)(axis=axis, keepdims=keepdims)
    expected = REDUCTIONS[name](x.numpy(), axis=axis, keepdims=keepdims)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-13)
    assert md.gradcheck(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), [x])


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reductions_of_a_vector_and_a_scalar(randn, name):
    v = randn(5)
    assert md.gradcheck(lambda t: getattr(t, name)(), [v])
    if name != "var":
        assert md.gradcheck(lambda t: getattr(t, name)(), [randn()])


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reductions_are_module_functions_too(randn, name):
    x = randn(3, 4)
    function = getattr(md.ops, name)
    np.testing.assert_array_equal(function(x, axis=1).numpy(), getattr(x, name)(axis=1).numpy())


@pytest.mark.parametrize("ddof", [0, 1])
@pytest.mark.parametrize("axis", [None, 0, (1, 2)], ids=str)
def test_var_ddof(randn, ddof, axis):
    x = randn(3, 2, 4)
    np.testing.assert_allclose(x.var(axis=axis, ddof=ddof).numpy(), np.var(x.numpy(), axis=axis, ddof=ddof), rtol=1e-13)
    assert md.gradcheck(lambda t: t.var(axis=axis, ddof=ddof), [x])


def test_max_ties_share_the_gradient(on_device):
    x = md.tensor(on_device(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]])), requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(md.backend.as_numpy(x.grad), [[0, 0.5, 0.5], [1, 0, 0]])


def test_max_of_all_equal_values(on_device):
    x = md.tensor(on_device(np.full((2, 2), 7.0)), requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(md.backend.as_numpy(x.grad), np.full((2, 2), 0.25))


def test_reduction_gradients_are_writable_arrays(randn):
    # Reductions may return broadcast views; the leaf's .grad must still be an array it owns.
    x = randn(2, 3)
    x.sum().backward()
    x.grad += 1
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), 2.0)


def test_mean_of_float32_stays_float32():
    x = md.tensor(np.ones((2, 3)), dtype=np.float32, requires_grad=True)
    y = x.mean(axis=0)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
