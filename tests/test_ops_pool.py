"""max_pool2d, avg_pool2d and adaptive_avg_pool2d against direct loops and finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F


@pytest.fixture(autouse=True, params=["fast", "plain"])
def kernels(request):
    """Every test here runs with the fast CPU kernels and with the plain (textbook) ops."""
    with md.ops.use_fast_kernels(request.param == "fast"):
        yield request.param


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def direct_pool(x, kernel, stride, padding, reduce, fill):
    """One window at a time; ``fill`` is what the padding holds (-inf for max, 0 for average)."""
    (kh, kw), (ph, pw) = _pair(kernel), _pair(padding)
    sh, sw = _pair(kernel if stride is None else stride)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    y = np.empty(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = reduce(xp[:, :, sh * i : sh * i + kh, sw * j : sw * j + kw], axis=(2, 3))
    return y


CASES = [
    # (input shape, kernel_size, stride, padding)
    ((2, 2, 4, 4), 2, None, 0),
    ((1, 2, 5, 5), 2, None, 0),  # the last row and column fit no window
    ((1, 2, 5, 5), 3, 1, 0),  # overlapping windows
    ((2, 1, 6, 6), 3, 2, 1),
    ((1, 2, 5, 7), (2, 3), (1, 2), (1, 1)),
    ((1, 1, 6, 5), (3, 1), (3, 1), (1, 0)),
    ((1, 2, 3, 3), 3, 1, 1),
]
IDS = [f"{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}" for c in CASES]


@pytest.mark.parametrize("x_shape, kernel, stride, padding", CASES, ids=IDS)
def test_max_pool2d(randn, x_shape, kernel, stride, padding):
    x = randn(*x_shape)
    y = F.max_pool2d(x, kernel, stride=stride, padding=padding)
    expected = direct_pool(x.numpy(), kernel, stride, padding, np.max, -np.inf)
    np.testing.assert_array_equal(y.numpy(), expected)
    assert md.gradcheck(lambda t: F.max_pool2d(t, kernel, stride=stride, padding=padding), [x])


@pytest.mark.parametrize("x_shape, kernel, stride, padding", CASES, ids=IDS)
def test_avg_pool2d(randn, x_shape, kernel, stride, padding):
    x = randn(*x_shape)
    y = F.avg_pool2d(x, kernel, stride=stride, padding=padding)
    expected = direct_pool(x.numpy(), kernel, stride, padding, np.mean, 0.0)  # padding counts, as in PyTorch
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-13, atol=1e-15)
    assert md.gradcheck(lambda t: F.avg_pool2d(t, kernel, stride=stride, padding=padding), [x])


def test_max_pool2d_sends_the_gradient_to_one_maximum_per_window(on_device):
    # Ties: the first maximum of the window gets all of it, as in PyTorch.
    x = md.tensor(on_device(np.array([[[[1.0, 1.0], [0.0, 1.0]]]])), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(md.backend.as_numpy(x.grad), [[[[1.0, 0.0], [0.0, 0.0]]]])


def test_overlapping_max_windows_add_their_gradients(on_device):
    x = md.tensor(on_device(np.array([[[[0.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 0.0]]]])), requires_grad=True)
    F.max_pool2d(x, 2, stride=1).sum().backward()  # the centre is the maximum of all four windows
    assert md.backend.as_numpy(x.grad)[0, 0, 1, 1] == 4.0


@pytest.mark.parametrize("x_shape", [(2, 3, 4, 4), (1, 2, 3, 5), (2, 1, 1, 1)], ids=str)
def test_adaptive_avg_pool2d(randn, x_shape):
    x = randn(*x_shape)
    y = F.adaptive_avg_pool2d(x, 1)
    assert y.shape == x_shape[:2] + (1, 1)
    np.testing.assert_allclose(y.numpy(), x.numpy().mean(axis=(2, 3), keepdims=True), rtol=1e-13)
    assert md.gradcheck(lambda t: F.adaptive_avg_pool2d(t, 1), [x])
    assert md.gradcheck(lambda t: F.adaptive_avg_pool2d(t, (1, 1)), [x])


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_pooling_float32_stays_float32(name):
    x = md.tensor(np.ones((1, 1, 4, 4)), dtype=np.float32, requires_grad=True)
    y = getattr(F, name)(x, 2, padding=1)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
