"""F.batch_norm for (N, C) and (N, C, H, W): training and evaluation, running statistics, gradients."""
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


SHAPES = [(6, 3), (4, 2, 3, 3), (2, 3, 1, 2)]


def _axes(x):
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _per_channel(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def reference(x, mean, var, gamma, beta, eps=1e-5):
    return (x - _per_channel(mean, x)) / np.sqrt(_per_channel(var, x) + eps) * _per_channel(gamma, x) + _per_channel(beta, x)


@pytest.mark.parametrize("affine", [True, False], ids=["weight and bias", "no weight"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_batch_norm_training(randn, on_device, shape, affine):
    x = randn(*shape, seed=1)
    c = shape[1]
    w, b = (randn(c, seed=2), randn(c, seed=3)) if affine else (None, None)
    y = F.batch_norm(x, None, None, w, b, training=True)
    xv = x.numpy()
    gamma, beta = (w.numpy(), b.numpy()) if affine else (np.ones(c), np.zeros(c))
    expected = reference(xv, xv.mean(axis=_axes(xv)), xv.var(axis=_axes(xv)), gamma, beta)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-13)
    inputs = [x, w, b] if affine else [x]
    assert md.gradcheck(lambda x, *wb: F.batch_norm(x, None, None, *wb, training=True), inputs)


@pytest.mark.parametrize("affine", [True, False], ids=["weight and bias", "no weight"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_batch_norm_evaluation(randn, on_device, shape, affine):
    x = randn(*shape, seed=1)
    c = shape[1]
    rng = np.random.default_rng(4)
    running_mean, running_var = on_device(rng.standard_normal(c)), on_device(rng.random(c) + 0.5)
    w, b = (randn(c, seed=2), randn(c, seed=3)) if affine else (None, None)
    y = F.batch_norm(x, running_mean, running_var, w, b, training=False)
    gamma, beta = (w.numpy(), b.numpy()) if affine else (np.ones(c), np.zeros(c))
    rm, rv = md.backend.as_numpy(running_mean), md.backend.as_numpy(running_var)
    np.testing.assert_allclose(y.numpy(), reference(x.numpy(), rm, rv, gamma, beta), rtol=1e-12, atol=1e-13)
    inputs = [x, w, b] if affine else [x]
    assert md.gradcheck(lambda x, *wb: F.batch_norm(x, running_mean, running_var, *wb, training=False), inputs)
    # Evaluation leaves the running statistics alone.
    np.testing.assert_array_equal(md.backend.as_numpy(running_mean), rm)
    np.testing.assert_array_equal(md.backend.as_numpy(running_var), rv)


@pytest.mark.parametrize("momentum", [0.1, 0.5])
@pytest.mark.parametrize("shape", SHAPES[:2], ids=str)
def test_running_statistics_follow_pytorchs_rule(randn, on_device, shape, momentum):
    c = shape[1]
    running_mean, running_var = on_device(np.zeros(c)), on_device(np.ones(c))
    rm, rv = np.zeros(c), np.ones(c)
    for step in range(3):
        x = randn(*shape, seed=10 + step) * 2 + 1
        F.batch_norm(x, running_mean, running_var, training=True, momentum=momentum)
        xv = x.numpy()
        n = xv.size // c
        rm = (1 - momentum) * rm + momentum * xv.mean(axis=_axes(xv))
        rv = (1 - momentum) * rv + momentum * xv.var(axis=_axes(xv)) * n / (n - 1)  # unbiased
    np.testing.assert_allclose(md.backend.as_numpy(running_mean), rm, rtol=1e-13)
    np.testing.assert_allclose(md.backend.as_numpy(running_var), rv, rtol=1e-13)


def test_running_statistics_may_be_tensors(randn, on_device):
    running_mean, running_var = md.tensor(on_device(np.zeros(3))), md.tensor(on_device(np.ones(3)))
    F.batch_norm(randn(4, 3), running_mean, running_var, training=True)
    assert np.any(running_mean.numpy() != 0) and np.any(running_var.numpy() != 1)


def test_running_statistics_on_another_device_are_a_named_error(device):
    if device == "cpu":
        pytest.skip("needs a second device: runs with the gpu variant")
    x = md.tensor(md.backend.to_device(np.ones((4, 3)), "gpu"))
    with pytest.raises(ValueError, match="batch_norm: input is on gpu but running_mean is on cpu"):
        F.batch_norm(x, np.zeros(3), np.ones(3), training=True)


def test_batch_norm_output_is_normalised(randn):
    y = F.batch_norm(randn(8, 2, 3, 3) * 5 + 3, None, None, training=True).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-3)  # eps makes it slightly below 1


def test_batch_norm_float32_stays_float32():
    x = md.tensor(np.random.default_rng(0).standard_normal((4, 3)), dtype=np.float32, requires_grad=True)
    rm, rv = np.zeros(3, dtype=np.float32), np.ones(3, dtype=np.float32)
    y = F.batch_norm(x, rm, rv, training=True)
    assert y.dtype == np.float32 and rm.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_eps(randn):
    x = randn(4, 2)
    xv = x.numpy()
    y = F.batch_norm(x, None, None, training=True, eps=0.5)
    expected = reference(xv, xv.mean(axis=0), xv.var(axis=0), np.ones(2), np.zeros(2), eps=0.5)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("eps", [0.0, -1e-5, float("nan")])
def test_batch_norm_refuses_eps_that_is_not_positive(eps):
    x = md.tensor(np.random.default_rng(0).standard_normal((4, 3)))
    with pytest.raises(ValueError, match="batch_norm: eps must be > 0"):
        F.batch_norm(x, None, None, training=True, eps=eps)
    with pytest.raises(ValueError, match="BatchNorm1d: eps must be a number > 0"):
        md.nn.BatchNorm1d(3, eps=eps)
    with pytest.raises(ValueError, match="BatchNorm2d: eps must be a number > 0"):
        md.nn.BatchNorm2d(3, eps=eps)
