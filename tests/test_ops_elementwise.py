"""exp, log, sqrt, tanh, abs, maximum, clip, where: values as NumPy's, gradients as finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md

SHAPES = [(5,), (2, 3), (2, 1, 3)]

UNARY = {
    # name: (minideep op, numpy reference, whether the input must be positive)
    "exp": (md.exp, np.exp, False),
    "log": (md.log, np.log, True),
    "sqrt": (md.sqrt, np.sqrt, True),
    "tanh": (md.tanh, np.tanh, False),
    "abs": (md.abs, np.abs, False),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary(randn, name, shape):
    op, reference, positive = UNARY[name]
    x = randn(*shape, seed=len(shape), low=0.2 if positive else None)
    np.testing.assert_allclose(op(x).numpy(), reference(x.numpy()), rtol=1e-14)
    assert md.gradcheck(op, [x])


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "tanh", "abs"])
def test_unary_ops_are_tensor_methods(randn, name):
    x = randn(4, low=0.5)
    np.testing.assert_array_equal(getattr(x, name)().numpy(), UNARY[name][0](x).numpy())


def test_abs_has_zero_gradient_at_zero(on_device):
    x = md.tensor(on_device(np.array([-2.0, 0.0, 3.0])), requires_grad=True)
    md.abs(x).sum().backward()
    np.testing.assert_array_equal(md.backend.as_numpy(x.grad), [-1.0, 0.0, 1.0])


@pytest.mark.parametrize("sa, sb", [((2, 3), (2, 3)), ((2, 3), (3,)), ((4, 1), (1, 3)), ((3,), ())])
def test_maximum_of_two_tensors(randn, sa, sb):
    a, b = randn(*sa, seed=1), randn(*sb, seed=2)
    np.testing.assert_array_equal(md.maximum(a, b).numpy(), np.maximum(a.numpy(), b.numpy()))
    assert md.gradcheck(md.maximum, [a, b])


def test_maximum_with_a_number_on_either_side(randn):
    x = randn(6)
    np.testing.assert_array_equal(md.maximum(x, 0.0).numpy(), np.maximum(x.numpy(), 0.0))
    np.testing.assert_array_equal(md.maximum(0.0, x).numpy(), np.maximum(x.numpy(), 0.0))
    assert md.gradcheck(lambda t: md.maximum(t, 0.3) + md.maximum(-0.3, t), [x])


def test_maximum_ties_split_the_gradient(on_device):
    a = md.tensor(on_device(np.array([1.0, 2.0, 3.0])), requires_grad=True)
    b = md.tensor(on_device(np.array([1.0, 5.0, 0.0])), requires_grad=True)
    md.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(md.backend.as_numpy(a.grad), [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(md.backend.as_numpy(b.grad), [0.5, 1.0, 0.0])


@pytest.mark.parametrize("lo, hi", [(-0.5, 0.5), (None, 0.3), (-0.3, None), (-10.0, 10.0)])
def test_clip(randn, lo, hi):
    x = randn(3, 4)
    np.testing.assert_array_equal(md.clip(x, lo, hi).numpy(), np.clip(x.numpy(), lo, hi))
    assert md.gradcheck(lambda t: md.clip(t, lo, hi), [x])


def test_clip_passes_the_gradient_only_inside(on_device):
    x = md.tensor(on_device(np.array([-2.0, -1.0, 0.0, 1.0, 2.0])), requires_grad=True)
    md.clip(x, -1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(md.backend.as_numpy(x.grad), [0.0, 1.0, 1.0, 1.0, 0.0])


def test_clip_without_bounds_is_an_error(randn):
    with pytest.raises(ValueError, match="clip: give at least one of lo and hi"):
        md.clip(randn(2))


@pytest.mark.parametrize("sc, sa, sb", [((2, 3), (2, 3), (2, 3)), ((2, 3), (3,), (2, 1)), ((3,), (2, 3), ())])
def test_where(randn, on_device, sc, sa, sb):
    cond = np.random.default_rng(0).random(sc) > 0.5
    a, b = randn(*sa, seed=1), randn(*sb, seed=2)
    c = on_device(cond)
    np.testing.assert_array_equal(md.where(c, a, b).numpy(), np.where(cond, a.numpy(), b.numpy()))
    assert md.gradcheck(lambda a, b: md.where(c, a, b), [a, b])


def test_where_routes_the_gradient(on_device):
    a = md.tensor(on_device(np.ones(4)), requires_grad=True)
    b = md.tensor(on_device(np.ones(4)), requires_grad=True)
    cond = md.tensor(on_device(np.array([1.0, -1.0, 2.0, -2.0]))) > 0  # a boolean tensor works as condition
    md.where(cond, a, b).sum().backward()
    np.testing.assert_array_equal(md.backend.as_numpy(a.grad), [1, 0, 1, 0])
    np.testing.assert_array_equal(md.backend.as_numpy(b.grad), [0, 1, 0, 1])


def test_where_with_a_number_branch(randn):
    x = randn(5)
    y = md.where(x > 0, x, 0.0)
    np.testing.assert_array_equal(y.numpy(), np.where(x.numpy() > 0, x.numpy(), 0.0))
    assert y.dtype == np.float64
    assert md.gradcheck(lambda t: md.where(x > 0, t, 0.0), [x])


def test_where_needs_a_tensor_branch():
    with pytest.raises(TypeError, match="where: at least one of a and b must be a Tensor"):
        md.where(np.array([True]), 1.0, 2.0)
