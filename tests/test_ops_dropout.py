"""F.dropout: inverted scaling, reproducible under a seed, gradient equal to the mask."""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_gradient_equals_the_mask(randn, p):
    x = randn(4, 5)
    md.manual_seed(0)
    y = F.dropout(x, p)
    y.sum().backward()
    mask = md.backend.as_numpy(x.grad)
    kept = mask != 0
    np.testing.assert_allclose(mask[kept], 1 / (1 - p))  # survivors are scaled by 1/(1-p)
    np.testing.assert_allclose(y.numpy(), x.numpy() * mask, rtol=1e-15)


def test_gradcheck_with_a_fixed_seed(randn):
    def fixed_dropout(t):
        md.manual_seed(3)  # the same mask on every call, so finite differences see one function
        return F.dropout(t, 0.4)

    assert md.gradcheck(fixed_dropout, [randn(3, 4)])


def test_same_seed_same_mask(randn):
    x = randn(10, 10, requires_grad=False)
    md.manual_seed(7)
    a = F.dropout(x, 0.5).numpy()
    md.manual_seed(7)
    b = F.dropout(x, 0.5).numpy()
    c = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)


def test_the_fraction_dropped_is_p_and_the_mean_is_kept(device):
    md.manual_seed(0)
    x = md.tensor(md.backend.to_device(np.ones((200, 500)), device))
    y = F.dropout(x, 0.3).numpy()
    assert abs((y == 0).mean() - 0.3) < 0.01
    assert abs(y.mean() - 1.0) < 0.02  # inverted dropout: E[y] = x


def test_evaluation_and_p_zero_are_the_identity(randn):
    x = randn(3, 3)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x


def test_p_one_drops_everything(randn):
    x = randn(3, 3)
    y = F.dropout(x, 1.0)
    np.testing.assert_array_equal(y.numpy(), 0.0)
    y.sum().backward()
    np.testing.assert_array_equal(md.backend.as_numpy(x.grad), 0.0)


def test_float32_stays_float32():
    y = F.dropout(md.tensor(np.ones((4, 4)), dtype=np.float32), 0.5)
    assert y.dtype == np.float32


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_p_outside_0_1_is_an_error(randn, p):
    with pytest.raises(ValueError, match=f"dropout: p must be in \\[0, 1\\], got {p}"):
        F.dropout(randn(2), p)
