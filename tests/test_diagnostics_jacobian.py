"""Jacobian-vector products, Hessian-vector products and the three Jacobian gains.

PyTorch is the oracle for J v (``torch.func.jvp``) and H v (double backward), in float64,
on a tanh MLP and on a conv net with batch norm in training mode; the gains are checked
against exact answers (a bias-free linear layer's singular values).
"""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F
from minideep import nn
from minideep.diagnostics import hessian_vector_product, jacobian_gains, jvp

REL = 1e-4  # the tolerance; the central differences are about 1e-9 here


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def tanh_mlp() -> nn.Sequential:
    md.manual_seed(3)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def bn_convnet() -> nn.Sequential:
    md.manual_seed(4)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Tanh(),
                         nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.Tanh(),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)).double()


def torch_twin(torch, model: nn.Sequential, track_running_stats: bool = True):
    """The same network in PyTorch, float64, weights and buffers copied, same mode.

    ``track_running_stats=False`` gives BN no buffers (torch.func refuses their in-place update);
    in training mode it normalises with the batch statistics either way.
    """
    tnn = torch.nn
    layers = []
    for m in model:
        kind = type(m).__name__
        if kind == "Linear":
            layers.append(tnn.Linear(m.in_features, m.out_features))
        elif kind == "Conv2d":
            w = m.weight.shape
            layers.append(tnn.Conv2d(w[1], w[0], w[2], stride=m.stride, padding=m.padding))
        elif kind == "BatchNorm2d":
            layers.append(tnn.BatchNorm2d(m.weight.shape[0], track_running_stats=track_running_stats))
        elif kind == "AvgPool2d":
            layers.append(tnn.AvgPool2d(2))
        else:
            layers.append({"Tanh": tnn.Tanh, "Flatten": tnn.Flatten}[kind]())
    twin = tnn.Sequential(*layers).double()
    state = {k: torch.from_numpy(np.array(v, dtype=np.float64 if np.asarray(v).dtype.kind == "f" else None))
             for k, v in model.state_dict().items() if k in twin.state_dict()}
    twin.load_state_dict(state, strict=True)
    twin.train(model.training)
    return twin


CASES = {"tanh_mlp": (tanh_mlp, (6, 5)), "bn_convnet": (bn_convnet, (5, 2, 8, 8))}


@pytest.mark.parametrize("case", list(CASES))
def test_jvp_matches_torch_func_jvp(torch, case):
    build, shape = CASES[case]
    model = build()
    twin = torch_twin(torch, model, track_running_stats=False)
    rng = np.random.default_rng(0)
    x, v = rng.standard_normal(shape), rng.standard_normal(shape)
    ours = jvp(model, x, v)
    _, theirs = torch.func.jvp(twin, (torch.from_numpy(x),), (torch.from_numpy(v),))
    assert ours.shape == tuple(theirs.shape)
    assert rel_err(ours, theirs.detach().numpy()) < REL


@pytest.mark.parametrize("case", list(CASES))
def test_hessian_vector_product_matches_torch_double_backward(torch, case):
    build, shape = CASES[case]
    model = build()
    twin = torch_twin(torch, model)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    y = rng.integers(0, 3, shape[0])
    params = list(model.parameters())
    vectors = [rng.standard_normal(p.shape) for p in params]
    running = [b.copy() for b in model.buffers()]
    ours = hessian_vector_product(lambda: F.cross_entropy(model(md.tensor(x)), y), params, vectors, module=model)

    tparams = list(twin.parameters())
    loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
    grads = torch.autograd.grad(loss, tparams, create_graph=True)
    dot = sum((g * torch.from_numpy(v)).sum() for g, v in zip(grads, vectors))
    theirs = torch.autograd.grad(dot, tparams)
    flat = lambda arrays: np.concatenate([np.asarray(a).ravel() for a in arrays])  # noqa: E731
    assert rel_err(flat(ours), flat(t.numpy() for t in theirs)) < REL
    for b, before in zip(model.buffers(), running):  # measuring did not move BN's running statistics
        np.testing.assert_array_equal(b, before)


def test_hessian_vector_product_restores_the_parameters_and_their_grads():
    model = tanh_mlp().float()
    params = list(model.parameters())
    before = [p.data.copy() for p in params]
    params[0].grad = np.full(params[0].shape, 7.0, dtype=np.float32)
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    hv = hessian_vector_product(lambda: model(md.tensor(x)).sum(), params, [np.ones(p.shape) for p in params])
    assert all(h.dtype == np.float64 for h in hv)
    for p, b in zip(params, before):
        assert p.data.dtype == np.float32
        np.testing.assert_array_equal(p.data, b)
    np.testing.assert_array_equal(params[0].grad, 7.0)
    assert params[1].grad is None


def test_hessian_vector_product_of_a_quadratic_is_exact():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((6, 6))
    h = a @ a.T
    w = md.tensor(rng.standard_normal((6, 1)), requires_grad=True)
    v = rng.standard_normal((6, 1))
    hv = hessian_vector_product(lambda: 0.5 * ((md.tensor(h) @ w) * w).sum(), [w], [v])  # L = w^T H w / 2
    assert rel_err(hv[0], h @ v) < 1e-8


def linear_with_singular_values(values, out_features: int, in_features: int, seed: int = 0) -> nn.Linear:
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((out_features, out_features)))
    v, _ = np.linalg.qr(rng.standard_normal((in_features, in_features)))
    s = np.zeros((out_features, in_features))
    s[np.arange(len(values)), np.arange(len(values))] = values
    layer = nn.Linear(in_features, out_features, bias=False).double()
    layer.weight.data[...] = u @ s @ v.T
    return layer


def test_jacobian_gains_of_a_linear_layer_are_its_singular_values():
    layer = linear_with_singular_values([3.0, 2.0, 1.5, 1.0, 0.5, 0.2], 6, 9)
    w = layer.weight.data
    x = np.random.default_rng(0).standard_normal((3, 9))  # m = 3 * 6 = 18 <= 32 probes: rms is exact
    g = np.random.default_rng(1).standard_normal((3, 6))
    gains = jacobian_gains(layer, x, g)
    assert gains["rms_exact"]
    assert gains["rms"] == pytest.approx(np.linalg.norm(w) / np.sqrt(6), rel=1e-12)
    assert gains["top"] == pytest.approx(3.0, rel=1e-8)
    assert gains["top_change"] < 1e-8
    assert gains["on_gradient"] == pytest.approx(np.linalg.norm(g @ w) / np.linalg.norm(g), rel=1e-12)
    assert gains["grad_norm"] == pytest.approx(np.linalg.norm(g))


def test_jacobian_gains_of_a_random_linear_layer_match_numpy():
    md.manual_seed(5)
    layer = nn.Linear(10, 8, bias=False)  # float32 weights, measured in float64
    w = layer.weight.data.astype(np.float64)
    x = np.random.default_rng(0).standard_normal((2, 10)).astype(np.float32)
    gains = jacobian_gains(layer, x, iterations=300)
    s = np.linalg.svd(w, compute_uv=False)
    assert gains["on_gradient"] is None
    assert gains["rms"] == pytest.approx(np.linalg.norm(w) / np.sqrt(8), rel=1e-12)
    assert gains["top"] == pytest.approx(s[0], rel=1e-6)


def test_hutchinson_rms_is_within_its_standard_error():
    layer = linear_with_singular_values(np.linspace(2.0, 0.1, 40), 40, 40, seed=3)
    exact = np.linalg.norm(layer.weight.data) / np.sqrt(40)
    x = np.random.default_rng(0).standard_normal((5, 40))  # m = 200 > 32 probes: Hutchinson
    for seed in range(3):
        gains = jacobian_gains(layer, x, probes=32, iterations=5, seed=seed)
        assert not gains["rms_exact"] and gains["probes"] == 32
        assert 0 < gains["rms_stderr"] < 0.1 * exact
        assert abs(gains["rms"] - exact) < 4 * gains["rms_stderr"]


def test_top_never_exceeds_the_largest_singular_value():
    layer = linear_with_singular_values([1.0, 0.99, 0.5], 4, 4, seed=1)  # a small gap: slow convergence
    gains = jacobian_gains(layer, np.random.default_rng(0).standard_normal((1, 4)), iterations=3)
    assert 0.5 < gains["top"] <= 1.0 + 1e-9


def test_jacobian_gains_of_relu_and_sigmoid_are_their_derivatives():
    x = np.array([[-1.0, 0.5, 2.0, -0.3]])
    relu = jacobian_gains(nn.ReLU(), x)
    assert relu["top"] == pytest.approx(1.0, rel=1e-8)
    assert relu["rms"] == pytest.approx(np.sqrt(2 / 4), rel=1e-12)
    s = 1 / (1 + np.exp(-x))
    sig = jacobian_gains(nn.Sigmoid(), x, iterations=400)  # sigma_2 / sigma_1 = 0.96: slow power iteration
    assert sig["top"] == pytest.approx(float((s * (1 - s)).max()), rel=1e-8)


def test_jacobian_gains_change_nothing_in_a_bn_block_and_use_batch_statistics(torch):
    model = bn_convnet()
    block = nn.Sequential(model[0], model[1])  # conv -> BN
    buffers = [b.copy() for b in model.buffers()]
    x = np.random.default_rng(0).standard_normal((4, 2, 8, 8))
    gains = jacobian_gains(block, x, np.ones((4, 4, 8, 8)), probes=8, iterations=10)
    for b, before in zip(model.buffers(), buffers):
        np.testing.assert_array_equal(b, before)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    # BN in training mode subtracts the batch mean: a constant output gradient is in J^T's null space
    assert gains["on_gradient"] < 1e-6 < gains["rms"]


def test_dropout_masks_are_held_fixed_while_measuring():
    drop = nn.Dropout(0.5)  # training mode: y = x * m / (1 - p)
    x = np.random.default_rng(0).standard_normal((50, 20))
    gains = jacobian_gains(drop, x, probes=16, iterations=5)
    assert gains["top"] == pytest.approx(2.0, rel=1e-8)  # 1 / (1 - p) on the kept units, for one mask
    assert 0.5 < gains["rms"] ** 2 / 2.0 < 1.5  # ||J||_F^2 / m = (kept fraction) * 4 ~ 2


def test_jvp_is_linear_in_v_and_exact_on_a_linear_function():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4))
    f = lambda t: t @ md.tensor(a.T)  # noqa: E731
    x, v = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    np.testing.assert_allclose(jvp(f, x, v), v @ a.T, rtol=1e-9)
    np.testing.assert_array_equal(jvp(f, x, np.zeros_like(v)), np.zeros((2, 3)))


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match=r"jvp: v has shape \(3,\) but x has shape \(2,\)"):
        jvp(lambda t: t, np.zeros(2), np.zeros(3))
    with pytest.raises(TypeError, match="jvp: the function must return a Tensor"):
        jvp(lambda t: 1.0, np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match="jacobian_gains: probes must be an int >= 1"):
        jacobian_gains(nn.ReLU(), np.ones((2, 2)), probes=0)
    with pytest.raises(ValueError, match=r"jacobian_gains: the output gradient has shape \(3,\)"):
        jacobian_gains(nn.ReLU(), np.ones((2, 2)), np.ones(3))
    w = md.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="hessian_vector_product: got 2 vectors for 1 parameters"):
        hessian_vector_product(lambda: w.sum(), [w], [np.ones(2), np.ones(2)])
    with pytest.raises(ValueError, match=r"hessian_vector_product: vectors\[0\] has shape \(3,\)"):
        hessian_vector_product(lambda: w.sum(), [w], [np.ones(3)])
