"""Curvature along the gradient and the largest Hessian eigenvalue, against exact answers and PyTorch."""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F
from minideep import nn
from minideep.diagnostics import curvature_along_gradient, largest_hessian_eigenvalue


def quadratic(seed: int = 0):
    """L(w) = 1/2 w^T A w + b^T w with a known Hessian A (eigenvalues 5, 2, 1, 0.5, 0.1)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    a = q @ np.diag([5.0, 2.0, 1.0, 0.5, 0.1]) @ q.T
    b = rng.standard_normal((5, 1))
    w = md.tensor(rng.standard_normal((5, 1)), requires_grad=True)
    loss = lambda: 0.5 * ((md.tensor(a) @ w) * w).sum() + (md.tensor(b) * w).sum()  # noqa: E731
    return loss, w, a, b


def test_on_a_quadratic_the_second_order_prediction_is_exact():
    loss, w, a, b = quadratic()
    g = a @ w.data + b
    c = curvature_along_gradient(loss, [w], lr=0.1)
    assert c["gTg"] == pytest.approx(float((g * g).sum()), rel=1e-12)
    assert c["gTHg"] == pytest.approx(float((g * (a @ g)).sum()), rel=1e-8)
    assert c["curvature"] == pytest.approx(c["gTHg"] / c["gTg"])
    assert c["actual_change"] == pytest.approx(c["predicted_change"], rel=1e-7)
    assert c["critical_lr"] == pytest.approx(2 * c["gTg"] / c["gTHg"])
    assert w.grad is None and w.data.dtype == np.float64


def test_power_iteration_finds_the_largest_eigenvalue():
    loss, w, a, _ = quadratic(1)
    top = largest_hessian_eigenvalue(loss, [w], iterations=60)
    assert top["eigenvalue"] == pytest.approx(5.0, rel=1e-8)
    assert top["change"] < 1e-8


def test_curvature_of_a_tanh_mlp_matches_torch(torch):
    md.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))  # float32 parameters, measured in float64
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
    params = list(model.parameters())
    before = [p.data.copy() for p in params]
    c = curvature_along_gradient(lambda: F.cross_entropy(model(md.tensor(x)), y), params, lr=0.05, module=model)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.data, b)
    tp = [torch.tensor(p.data.astype(np.float64), requires_grad=True) for p in params]

    def tloss():
        h = torch.tanh(torch.from_numpy(x) @ tp[0].T + tp[1])
        return torch.nn.functional.cross_entropy(h @ tp[2].T + tp[3], torch.from_numpy(y))

    grads = torch.autograd.grad(tloss(), tp, create_graph=True)
    gtg = sum((g * g).sum() for g in grads)
    hg = torch.autograd.grad(gtg / 2, tp)  # d/dw (g^T g / 2) = H g
    gthg = sum((g.detach() * h).sum() for g, h in zip(grads, hg))
    assert c["gTg"] == pytest.approx(float(gtg.detach()), rel=1e-10)
    assert c["gTHg"] == pytest.approx(float(gthg), rel=1e-4)
    # a small step: second order explains the change to third order in lr
    assert abs(c["actual_change"] - c["predicted_change"]) < 0.1 * abs(c["actual_change"] - c["first_order_change"])


def test_bad_input():
    loss, w, _, _ = quadratic()
    with pytest.raises(ValueError, match="curvature_along_gradient: lr must be a positive number"):
        curvature_along_gradient(loss, [w], lr=0)
    with pytest.raises(ValueError, match="largest_hessian_eigenvalue: iterations must be an int >= 1"):
        largest_hessian_eigenvalue(loss, [w], iterations=0)
