"""md.gradcheck: passes a correct backward, catches a wrong one and says where it is wrong."""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md


class Square(md.Function):
    """y = x^2, dy/dx = 2x: a correct backward."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, grad):
        return 2 * self.x * grad


class SquareForgetsTheTwo(md.Function):
    """y = x^2 with the classic bug: dy/dx written as x instead of 2x."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, grad):
        return self.x * grad


class MulWrongSecondInput(md.Function):
    """y = a * b whose gradient for b is wrong (it uses b instead of a)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        return grad * self.b, grad * self.b


class SquareWrongAtOneElement(md.Function):
    """y = x^2 with a backward that drops the gradient of element (1, 2) only."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, grad):
        g = 2 * self.x * grad
        g[1, 2] = 0.0
        return g


class SquareIgnoresUpstream(md.Function):
    """y = x^2 with a backward that forgets to multiply by dL/dy (right only when dL/dy is all ones)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, grad):
        return 2 * self.x


def test_a_correct_custom_function_passes(randn):
    assert md.gradcheck(lambda x: Square()(x), [randn(3, 4)])


def test_a_wrong_backward_returns_false_and_prints_input_and_index(randn, capsys):
    assert md.gradcheck(lambda x: SquareForgetsTheTwo()(x), [randn(3, 4)]) is False
    report = capsys.readouterr().out
    assert "gradcheck failed for input 0" in report
    assert "at index (" in report
    assert "12 of 12 elements disagree" in report


def test_the_report_names_the_wrong_input(randn, capsys):
    a, b = randn(2, 3, seed=1), randn(2, 3, seed=2)
    assert md.gradcheck(lambda a, b: MulWrongSecondInput()(a, b), [a, b]) is False
    report = capsys.readouterr().out
    assert "input 1" in report
    assert "input 0" not in report


def test_the_report_names_the_wrong_element(randn, capsys):
    assert md.gradcheck(lambda x: SquareWrongAtOneElement()(x), [randn(3, 4)]) is False
    report = capsys.readouterr().out
    assert "at index (1, 2)" in report
    assert "1 of 12 elements disagree" in report


def test_a_backward_that_ignores_the_upstream_gradient_is_caught(randn):
    # gradcheck projects on a random upstream gradient, not on ones, so this bug cannot hide.
    assert md.gradcheck(lambda x: SquareIgnoresUpstream()(x), [randn(5)], verbose=False) is False


def test_verbose_false_prints_nothing(randn, capsys):
    assert md.gradcheck(lambda x: SquareForgetsTheTwo()(x), [randn(4)], verbose=False) is False
    assert capsys.readouterr().out == ""


def test_a_nan_gradient_is_caught(randn):
    class NanBackward(Square):
        def backward(self, grad):
            return grad * np.nan

    assert md.gradcheck(lambda x: NanBackward()(x), [randn(3)], verbose=False) is False


def test_float32_inputs_are_checked_in_float64_without_converting_the_callers_tensor(randn):
    values = np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32)
    x = md.tensor(values, requires_grad=True)
    data = x.data
    assert md.gradcheck(lambda x: (x * x * x).sum(axis=1), [x], atol=1e-8, rtol=1e-7)  # float64 precision
    assert x.dtype == np.float32 and x.data is data and x.grad is None
    np.testing.assert_array_equal(x.data, values)


def test_the_callers_float64_tensor_and_its_grad_are_left_alone(randn):
    x = randn(2, 3)
    x.grad = np.full((2, 3), 7.0)
    data = x.data
    assert md.gradcheck(lambda t: (t * t).sum(), [x])
    assert x.data is data and np.all(x.grad == 7.0)


def test_non_contiguous_inputs_are_checked(device):
    # A transposed array: nudging a reshaped copy instead of the data itself would see no change.
    values = np.random.default_rng(0).standard_normal((3, 4)).T
    x = md.tensor(md.backend.to_device(values, device), requires_grad=True)
    assert md.gradcheck(lambda t: (t * t).sum(), [x])


def test_constant_inputs_are_not_checked(randn):
    x, c = randn(2, 3), randn(2, 3, seed=1, requires_grad=False)
    assert md.gradcheck(lambda x, c: x * c, [x, c])
    assert c.grad is None


def test_no_input_requiring_grad_is_a_value_error(randn):
    with pytest.raises(ValueError, match="gradcheck: no input requires grad"):
        md.gradcheck(lambda x: x * 2, [randn(3, requires_grad=False)])


def test_fn_must_return_a_tensor(randn):
    with pytest.raises(TypeError, match="gradcheck: fn must return a Tensor"):
        md.gradcheck(lambda x: x.data, [randn(3)])


def test_a_float32_module_is_checked_through_its_own_parameters_and_left_float32():
    """fn may reach the inputs through a module (lambda x, *p: model(x)); the parameters come back as they were."""
    model = md.nn.Linear(3, 2)
    x = md.tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    params = list(model.parameters())
    arrays = [p.data for p in params]
    assert md.gradcheck(lambda x, *p: model(x), [x, *params])
    assert all(p.data is a and p.dtype == np.float32 and p.grad is None for p, a in zip(params, arrays))
