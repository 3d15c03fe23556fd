"""The product of the layers' Jacobian matrices is what backward() computes."""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md
from minideep import nn
from minideep.diagnostics import jacobian_matrix, jacobian_product_check


def mlp(act=nn.Tanh, depth: int = 6, width: int = 8) -> nn.Sequential:
    md.manual_seed(0)
    return nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), act())]).double()


@pytest.mark.parametrize("act", [nn.Tanh, nn.Sigmoid, nn.ReLU])
def test_the_product_of_jacobians_equals_backward(act):
    rng = np.random.default_rng(0)
    check = jacobian_product_check(mlp(act), rng.standard_normal((1, 8)), np.array([3]))
    assert check["relative_difference"] < 1e-10
    assert check["shapes"] == [[8, 8]] * 12
    assert check["sources"][0] == "formula: W"
    assert max(check["jvp_max_relative_errors"]) < 1e-6  # the central differences agree with the formulas
    assert len(check["singular_values"]) == 12 and all(len(s) == 8 for s in check["singular_values"])


def test_the_singular_values_of_the_partial_products_shrink_in_a_deep_tanh_net():
    check = jacobian_product_check(mlp(), np.random.default_rng(1).standard_normal((1, 8)), np.array([0]))
    tops = [s[0] for s in check["singular_values"]]
    assert tops[-1] < 0.5 * tops[0]
    assert check["input_grad_norm"] < check["output_grad_norm"]


def test_a_layer_without_a_formula_uses_exact_vjps():
    md.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 4), nn.LeakyReLU(), nn.Linear(4, 3)).double()
    check = jacobian_product_check(net, np.random.default_rng(2).standard_normal((1, 4)), np.array([1]))
    assert check["sources"][1] == "exact VJPs (J^T e_i)"
    assert check["relative_difference"] < 1e-10


def test_jacobian_matrix_of_a_linear_map_is_its_matrix():
    a = np.random.default_rng(3).standard_normal((3, 5))
    np.testing.assert_allclose(jacobian_matrix(lambda t: t @ md.tensor(a.T), np.ones((1, 5))), a, rtol=1e-14)


def test_one_sample_only():
    with pytest.raises(ValueError, match=r"jacobian_product_check: x must be one sample"):
        jacobian_product_check(mlp(), np.zeros((2, 8)), np.array([0, 1]))
