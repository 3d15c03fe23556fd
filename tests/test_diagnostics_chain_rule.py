"""The chain rule as a product of per-layer gains, and the forward statistics beside it."""
from __future__ import annotations

import json

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F
from minideep import nn
from minideep.diagnostics import activation_statistics, chain_rule_gains, check_chain_rule, forward_statistics


def batch(shape, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(np.float32), rng.integers(0, classes, shape[0])


def plain_mlp(depth: int, width: int = 16, act=nn.ReLU, seed: int = 0) -> nn.Sequential:
    md.manual_seed(seed)
    layers = [nn.Linear(8, width), act()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), act()]
    return nn.Sequential(*layers, nn.Linear(width, 4))


def small_cnn() -> nn.Sequential:
    md.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), nn.LeakyReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))


def residual_net() -> nn.Sequential:
    md.manual_seed(2)
    return nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()),
                         *[nn.ResidualBlock(4, 4) for _ in range(4)],
                         nn.ResidualBlock(4, 8, stride=2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


@pytest.mark.parametrize("build, shape", [
    (lambda: plain_mlp(30), (16, 8)),
    (small_cnn, (4, 3, 8, 8)),
    (residual_net, (4, 3, 8, 8)),
], ids=["deep_plain_mlp", "cnn", "residual_net"])
def test_chain_rule_identity_holds(build, shape):
    model = build()
    x, y = batch(shape, 4)
    report = chain_rule_gains(model, x, y)
    assert report.identity_holds, report.table()
    assert report.max_relative_error < 1e-6
    n = np.array(report.grad_norms)
    products = np.array([np.prod(report.gains[l:]) for l in range(len(n))])  # g_{l+1} ... g_L
    np.testing.assert_allclose(n[-1] * products, n, rtol=1e-6)
    np.testing.assert_allclose(report.predicted_norms, n, rtol=1e-6)
    assert len(report.gains) == len(n) - 1 and report.products[-1] == 1.0


def test_children_are_the_layers_and_containers_are_opened():
    report = chain_rule_gains(residual_net(), *batch((2, 3, 8, 8), 4))
    assert report.names == ["input", "0.0", "0.1", "1", "2", "3", "4", "5", "6", "7", "8"]


def test_end_norms_are_the_true_gradients():
    model = plain_mlp(5)
    x, y = batch((16, 8), 4)
    report = chain_rule_gains(model, x, y)
    # at the output: dL/dlogits = (softmax - onehot) / N for the batch-mean cross-entropy
    logits = model(md.tensor(x)).numpy().astype(np.float64)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    assert report.grad_norms[-1] == pytest.approx(np.linalg.norm(p / len(y)), rel=1e-5)
    # at the input: an independent backward with x requiring grad
    xt = md.tensor(x, requires_grad=True)
    F.cross_entropy(model(xt), y).backward()
    assert report.grad_norms[0] == pytest.approx(np.linalg.norm(xt.grad.astype(np.float64)), rel=1e-6)
    assert report.loss == pytest.approx(float(F.cross_entropy(model(md.tensor(x)), y).item()), rel=1e-6)


def test_deep_sigmoid_mlp_gains_are_below_one_at_init():
    model = plain_mlp(20, width=32, act=nn.Sigmoid)
    report = chain_rule_gains(model, *batch((32, 8), 4))
    assert report.identity_holds
    assert np.mean(report.gains) < 1
    assert report.geometric_mean_gain < 1
    sigmoid_gains = [g for name, g in zip(report.names[1:], report.gains) if int(name) % 2 == 1]
    assert max(sigmoid_gains) <= 0.25 + 1e-6  # sigma' <= 1/4 elementwise, so the norm shrinks by at least 4
    assert report.grad_norms[0] < 1e-6 * report.grad_norms[-1]  # the gradient has all but vanished


def test_parameters_and_hooks_are_left_as_they_were():
    model = plain_mlp(3)
    x, y = batch((8, 8), 4)
    F.cross_entropy(model(md.tensor(x)), y).backward()
    before = {name: p.grad.copy() for name, p in model.named_parameters()}
    chain_rule_gains(model, x, y)
    for name, p in model.named_parameters():
        assert p.requires_grad
        np.testing.assert_array_equal(p.grad, before[name])
    assert all(not m._forward_hooks for m in model.modules())


def test_batch_norm_running_statistics_are_left_as_they_were():
    model = small_cnn().train()
    x, y = batch((4, 3, 8, 8), 4)
    before = {name: buf.copy() for name, buf in model.named_buffers()}
    chain_rule_gains(model, x, y)
    forward_statistics(model, x)
    for name, buf in model.named_buffers():
        np.testing.assert_array_equal(buf, before[name])
    model(md.tensor(x))  # an ordinary training forward does move them: the check above means something
    assert not np.array_equal(model[4].running_mean, before["4.running_mean"])


def test_explicit_layers_by_name_and_module():
    model = plain_mlp(4)
    x, y = batch((8, 8), 4)
    by_name = chain_rule_gains(model, x, y, layers=["1", "3", "5", "8"])
    by_module = chain_rule_gains(model, x, y, layers=[model[1], model[3], model[5], model[8]])
    assert by_name.names == ["input", "1", "3", "5", "8"] == by_module.names
    assert by_name.grad_norms == by_module.grad_norms
    assert by_name.identity_holds
    full = chain_rule_gains(model, x, y)
    assert by_name.grad_norms[1] == full.grad_norms[2]  # the same h_l, measured the same way


def test_mse_loss_and_report_is_json():
    model = plain_mlp(3)
    x, _ = batch((8, 8), 4)
    target = np.zeros((8, 4), dtype=np.float32)
    report = chain_rule_gains(model, x, target, loss_fn=F.mse_loss)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["identity_holds"] is True
    assert data["names"][0] == "input" and len(data["gains"]) == len(data["grad_norms"]) - 1
    assert data["forward"][1]["activation"] == "relu"
    assert "holds" in report.table()


def test_bad_input_is_reported():
    model = plain_mlp(2)
    x, y = batch((4, 8), 4)
    with pytest.raises(ValueError, match="chain_rule_gains: model has no module named 'nope'"):
        chain_rule_gains(model, x, y, layers=["nope"])
    shared = nn.ReLU()
    twice = nn.Sequential(nn.Linear(8, 8), shared, nn.Linear(8, 4), shared)
    with pytest.raises(ValueError, match="ran twice"):
        chain_rule_gains(twice, x, y)
    with pytest.raises(TypeError, match="must be a Module"):
        chain_rule_gains(lambda t: t, x, y)


def test_check_chain_rule_flags_vanished_gradients():
    ok = check_chain_rule([1e-8, 1e-4, 1.0])
    assert ok["identity_holds"] and ok["gains"] == pytest.approx([1e-4, 1e-4])
    broken = check_chain_rule([0.0, 1e-4, 1.0])
    assert not broken["identity_holds"] and "0 or not finite" in broken["note"]


# --- forward statistics --------------------------------------------------------------------


def test_relu_statistics_zero_and_dead_fractions():
    h = np.array([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 3.0, 2.0]])
    s = activation_statistics(h, "relu")
    assert s["zero_fraction"] == 0.5
    assert s["dead_fraction"] == 0.25  # only unit 0 is 0 for every example
    assert s["mean"] == pytest.approx(h.mean()) and s["std"] == pytest.approx(h.std())


def test_conv_dead_units_are_channel_pixel_positions():
    h = np.ones((3, 2, 2, 2))
    h[:, 0, 0, 0] = 0  # one position dead over the whole batch
    h[0, 1] = 0        # zero for one example only: not dead
    s = activation_statistics(h, "relu")
    assert s["dead_fraction"] == pytest.approx(1 / 8)


def test_saturation_thresholds():
    sig = np.array([[0.005, 0.5, 0.995, 0.01]])
    assert activation_statistics(sig, "sigmoid")["saturated_fraction"] == 0.5  # 0.01 itself is not saturated
    tanh = np.array([[-0.99, 0.0, 0.97, 0.985]])
    assert activation_statistics(tanh, "tanh")["saturated_fraction"] == 0.5
    leaky = np.array([[-0.01, 0.5], [-2.0, 0.0]])
    assert activation_statistics(leaky, "leaky_relu")["negative_fraction"] == 0.5
    with pytest.raises(ValueError, match="kind must be"):
        activation_statistics(sig, "softplus")


def test_forward_statistics_reads_the_activation_of_each_layer():
    model = small_cnn()
    x, _ = batch((4, 3, 8, 8), 4)
    stats = forward_statistics(model, x)
    kinds = {s["name"]: s["activation"] for s in stats}
    assert kinds["1"] == "relu" and kinds["5"] == "leaky_relu" and kinds["0"] is None
    assert stats[1]["shape"] == [4, 6, 8, 8]
    sigmoid_net = plain_mlp(2, act=nn.Sigmoid)
    big = np.full((4, 8), 50.0, dtype=np.float32)
    assert forward_statistics(sigmoid_net, big, layers=["1"])[0]["saturated_fraction"] > 0.5


def test_functional_activation_at_the_end_of_a_block_is_recognised():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(8, 8)

        def forward(self, x):
            return F.leaky_relu(self.linear(x))

    model = nn.Sequential(Block(), nn.Linear(8, 4))
    stats = forward_statistics(model, batch((4, 8), 4)[0])
    assert stats[0]["activation"] == "leaky_relu" and "negative_fraction" in stats[0]
