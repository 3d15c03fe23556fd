"""cross_entropy, nll_loss, mse_loss with every reduction: values, gradients, stability."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F

REDUCTIONS = ["mean", "sum", "none"]


def _reference_nll(logp, target, reduction):
    losses = -logp[np.arange(len(target)), target]
    return losses.mean() if reduction == "mean" else losses.sum() if reduction == "sum" else losses


def _log_softmax(x):
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("n, c", [(4, 3), (1, 5), (6, 2)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy(randn, on_device, reduction, n, c):
    logits = randn(n, c)
    target = np.random.default_rng(n).integers(0, c, size=n)
    t = on_device(target)
    y = F.cross_entropy(logits, t, reduction=reduction)
    expected = _reference_nll(_log_softmax(logits.numpy()), target, reduction)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-13)
    assert md.gradcheck(lambda z: F.cross_entropy(z, t, reduction=reduction), [logits])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(randn, on_device, reduction):
    logp = randn(5, 4)
    target = np.array([0, 3, 3, 1, 2])
    y = F.nll_loss(logp, on_device(target), reduction=reduction)
    np.testing.assert_allclose(y.numpy(), _reference_nll(logp.numpy(), target, reduction), rtol=1e-14)
    assert md.gradcheck(lambda z: F.nll_loss(z, on_device(target), reduction=reduction), [logp])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_of_log_softmax_is_cross_entropy(randn, on_device, reduction):
    logits, target = randn(4, 3), on_device(np.array([2, 0, 1, 2]))
    a = F.cross_entropy(logits, target, reduction=reduction)
    b = F.nll_loss(F.log_softmax(logits, axis=1), target, reduction=reduction)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-13)


def test_cross_entropy_targets_may_be_a_list_or_a_tensor(randn, on_device):
    logits = randn(3, 4)
    reference = F.cross_entropy(logits, on_device(np.array([1, 0, 3]))).item()
    assert F.cross_entropy(logits, [1, 0, 3]).item() == reference
    assert F.cross_entropy(logits, md.Tensor(on_device(np.array([1, 0, 3])))).item() == reference


@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 2, 3)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss(randn, shape, reduction):
    a, b = randn(*shape, seed=1), randn(*shape, seed=2)
    squared = (a.numpy() - b.numpy()) ** 2
    expected = squared.mean() if reduction == "mean" else squared.sum() if reduction == "sum" else squared
    np.testing.assert_allclose(F.mse_loss(a, b, reduction=reduction).numpy(), expected, rtol=1e-14)
    assert md.gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction), [a, b])


def test_mse_loss_against_a_constant_target(randn):
    a, b = randn(3, 2), randn(3, 2, seed=1, requires_grad=False)
    assert md.gradcheck(lambda a: F.mse_loss(a, b), [a])
    np.testing.assert_allclose(F.mse_loss(a, b.data).numpy(), F.mse_loss(a, b).numpy())


def test_loss_of_float32_stays_float32():
    logits = md.tensor(np.zeros((2, 3)), dtype=np.float32, requires_grad=True)
    loss = F.cross_entropy(logits, [0, 2])
    assert loss.dtype == np.float32
    loss.backward()
    assert logits.grad.dtype == np.float32
    np.testing.assert_allclose(loss.item(), np.log(3), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_is_finite_at_1000(on_device, reduction, dtype):
    logits = md.tensor(on_device(np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]], dtype=dtype)), requires_grad=True)
    target = on_device(np.array([1, 0]))  # the worst case: the true class has the lowest logit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.cross_entropy(logits, target, reduction=reduction)
        loss.sum().backward()
    total = 2000.0 + (2000.0 + np.log(2.0))  # row 2's log-sum-exp is 1000 + log 2
    np.testing.assert_allclose(loss.sum().item(), total / 2 if reduction == "mean" else total, rtol=1e-6)
    assert np.all(np.isfinite(md.backend.as_numpy(logits.grad)))


def test_cross_entropy_gradient_is_softmax_minus_onehot(randn, on_device):
    logits = randn(3, 4)
    target = np.array([3, 1, 1])
    F.cross_entropy(logits, on_device(target), reduction="sum").backward()
    probs = np.exp(_log_softmax(logits.numpy()))
    np.testing.assert_allclose(md.backend.as_numpy(logits.grad), probs - np.eye(4)[target], rtol=1e-13)


def test_cross_entropy_refuses_a_list_by_name():
    with pytest.raises(TypeError, match="cross_entropy: input must be a Tensor .* got list"):
        F.cross_entropy([[0.0, 1.0]], np.array([1]))


@pytest.mark.parametrize("reduction, expected", [("mean", np.nan), ("sum", 0.0)])
def test_cross_entropy_of_an_empty_batch_is_pytorchs(torch, reduction, expected):
    """PyTorch's behaviour, without NumPy warnings: NaN for the mean of nothing, 0 for the sum."""
    import warnings

    logits = md.tensor(np.zeros((0, 3)), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" or 0/0 warning
        loss = F.cross_entropy(logits, np.zeros(0, dtype=np.int64), reduction=reduction)
        loss.backward()
    want = torch.nn.functional.cross_entropy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), reduction=reduction)
    np.testing.assert_equal(loss.item(), want.item())
    np.testing.assert_equal(loss.item(), expected)
    assert logits.grad.shape == (0, 3)
    none = F.cross_entropy(logits, np.zeros(0, dtype=np.int64), reduction="none")
    assert none.shape == (0,)
