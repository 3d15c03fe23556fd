"""+ - * / ** @ and negation: values as NumPy's, gradients as finite differences, broadcasting undone."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import minideep as md

# Few, small, reproducible examples: the fixture (the device) is the same for every example.
FEW = settings(
    max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
PAIRS = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3)

BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
}


@pytest.mark.parametrize("name", list(BINARY))
@FEW
@given(shapes=PAIRS)
def test_binary_ops_broadcast_and_match_finite_differences(randn, name, shapes):
    ours, reference = BINARY[name]
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    a = randn(*sa, seed=1)
    b = randn(*sb, seed=2, low=0.5) if name == "div" else randn(*sb, seed=2)  # keep b away from 0
    y = ours(a, b)
    assert y.shape == out_shape
    np.testing.assert_allclose(y.numpy(), reference(a.numpy(), b.numpy()), rtol=1e-14)
    assert md.gradcheck(ours, [a, b])


@pytest.mark.parametrize("name", list(BINARY))
def test_a_broadcast_gradient_has_the_input_shape(randn, name):
    ours, _ = BINARY[name]
    a, b = randn(4, 1, 3), randn(2, 1, seed=1, low=0.5)
    ours(a, b).sum().backward()
    assert a.grad.shape == (4, 1, 3) and b.grad.shape == (2, 1)


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_ops_with_a_python_scalar(randn, name):
    ours, reference = BINARY[name]
    x = randn(2, 3, low=0.5)
    np.testing.assert_allclose(ours(x, 2.0).numpy(), reference(x.numpy(), 2.0))
    np.testing.assert_allclose(ours(2.0, x).numpy(), reference(2.0, x.numpy()))
    assert md.gradcheck(lambda t: ours(t, 2.0) * ours(3.0, t), [x])


def test_neg(randn):
    x = randn(3, 2)
    np.testing.assert_array_equal((-x).numpy(), -x.numpy())
    assert md.gradcheck(lambda t: -t, [x])


@pytest.mark.parametrize("exponent", [2, 3, -1, 0.5, -1.5, 2.7, 1])
def test_pow(randn, exponent):
    x = randn(2, 3, low=0.5)  # positive, so fractional powers are real
    np.testing.assert_allclose((x**exponent).numpy(), x.numpy() ** exponent, rtol=1e-14)
    assert md.gradcheck(lambda t: t**exponent, [x])


@pytest.mark.parametrize("exponent", [2, 3])
def test_integer_pow_of_negative_numbers(randn, exponent):
    assert md.gradcheck(lambda t: t**exponent, [randn(5)])


def test_pow_zero_has_zero_gradient_everywhere(randn, on_device):
    # d(x^0)/dx = 0, also at x = 0 (0 * 0^-1 would be nan), as in PyTorch.
    x = md.tensor(on_device(np.array([0.0, 1.5, -2.0])), requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(md.backend.as_numpy(x.grad), [0.0, 0.0, 0.0])


def test_pow_with_a_tensor_exponent_is_a_type_error(randn):
    with pytest.raises(TypeError, match="pow: the exponent must be a Python number"):
        randn(2) ** randn(2)


MATMUL_SHAPES = [
    ((3, 4), (4, 2)),  # matrix @ matrix
    ((1, 4), (4, 1)),
    ((2, 3, 4), (2, 4, 5)),  # batched
    ((2, 3, 4), (4, 5)),  # a matrix broadcast over the batch
    ((3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (3, 4, 2)),  # batch axes broadcast against each other
    ((1, 2, 3), (4, 1, 3, 2)),
]


@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES)
def test_matmul(randn, sa, sb):
    a, b = randn(*sa, seed=1), randn(*sb, seed=2)
    np.testing.assert_allclose((a @ b).numpy(), a.numpy() @ b.numpy(), rtol=1e-13)
    assert md.gradcheck(lambda a, b: a @ b, [a, b])
    a.grad = b.grad = None
    (a @ b).sum().backward()
    assert a.grad.shape == sa and b.grad.shape == sb


def test_matmul_with_a_constant_operand(randn):
    a, b = randn(3, 4), randn(4, 2, seed=1, requires_grad=False)
    assert md.gradcheck(lambda a: a @ b, [a])
    assert b.grad is None
