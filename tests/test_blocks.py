"""Residual, highway and skip-to-head blocks: gradient checks, formulas, PyTorch twins, errors."""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md
from minideep import nn
from minideep.diagnostics import lesioned, recorded_gates


def _input(shape, seed=0):
    return md.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def gradcheck_module(module, x):
    module.double()
    return md.gradcheck(lambda inp, *_: module(inp), [x, *module.parameters()])


def _copy_to_torch(torch, module, reference):
    reference.double()
    reference.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in module.state_dict().items()})


def _assert_same_forward_backward(torch, module, reference, x_array):
    """Output, input gradient and every parameter gradient (by name) agree to float64 precision."""
    x = md.tensor(x_array.copy(), requires_grad=True)
    tx = torch.from_numpy(x_array.copy()).requires_grad_(True)
    y, ty = module(x), reference(tx)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(g)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    t_params = dict(reference.named_parameters())
    names = [name for name, _ in module.named_parameters()]
    assert names == list(t_params)
    for name, p in module.named_parameters():
        np.testing.assert_allclose(p.grad, t_params[name].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


# ---------------------------------------------------------------------------------------
# ResidualBlock
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("in_c, out_c, stride, batch_norm, shortcut, activation", [
    (2, 2, 1, True, "auto", "relu"),
    (2, 2, 1, False, "identity", "leaky_relu"),
    (2, 3, 2, True, "conv", "relu"),
    (2, 3, 1, False, "conv", "tanh"),
    (2, 3, 2, True, "pool", "relu"),
    (2, 4, 2, False, "subsample", "sigmoid"),
])
def test_residual_block_gradcheck(in_c, out_c, stride, batch_norm, shortcut, activation):
    md.manual_seed(0)
    block = nn.ResidualBlock(in_c, out_c, stride=stride, batch_norm=batch_norm, shortcut=shortcut,
                             activation=activation)
    assert gradcheck_module(block, _input((2, in_c, 4, 4)))


def test_residual_block_is_activation_of_residual_plus_input():
    md.manual_seed(0)
    block = nn.ResidualBlock(3, 3, batch_norm=False, activation="leaky_relu").double()
    x = _input((2, 3, 5, 5), seed=2)
    with md.no_grad():
        expected = block.residual(x).numpy() + x.numpy()
        expected = np.where(expected > 0, expected, 0.01 * expected)
        np.testing.assert_allclose(block(x).numpy(), expected, rtol=1e-12)


def test_residual_block_with_zero_residual_branch_passes_relu_of_input():
    block = nn.ResidualBlock(2, 2, batch_norm=False, init="zeros").double()
    x = _input((1, 2, 3, 3))
    np.testing.assert_array_equal(block(x).numpy(), np.maximum(x.numpy(), 0))


@pytest.mark.parametrize("shortcut, kind", [("auto", nn.Identity), ("pool", nn.PoolShortcut),
                                            ("subsample", nn.PoolShortcut), ("conv", nn.Sequential)])
def test_residual_block_shortcut_kinds(shortcut, kind):
    stride = 1 if shortcut == "auto" else 2
    out_c = 4 if shortcut == "auto" else 6
    block = nn.ResidualBlock(4, out_c, stride=stride, shortcut=shortcut)
    assert isinstance(block.shortcut, kind)
    assert block(md.tensor(np.ones((2, 4, 6, 6), dtype=np.float32))).shape == (2, out_c, 6 // stride, 6 // stride)


def test_parameter_free_shortcut_pads_channels_with_zeros():
    x = md.tensor(np.arange(32, dtype=np.float64).reshape(1, 2, 4, 4))
    y = nn.PoolShortcut(2, 3, stride=2, mode="subsample")(x).numpy()
    np.testing.assert_array_equal(y[0, :2], x.numpy()[0, :, ::2, ::2])
    assert not y[0, 2].any()
    avg = nn.PoolShortcut(2, 2, stride=2, mode="avg")(x).numpy()
    assert avg[0, 0, 0, 0] == np.mean([0, 1, 4, 5])


def test_residual_block_names_match_the_vgg_processing_block():
    names = [name for name, _ in nn.ResidualBlock(4, 4).named_parameters()]
    assert names == ["conv_0.weight", "bn_0.weight", "bn_0.bias", "conv_1.weight", "bn_1.weight", "bn_1.bias"]
    projection = [name for name, _ in nn.ResidualBlock(4, 8, stride=2).named_parameters()]
    assert projection[-3:] == ["shortcut.0.weight", "shortcut.1.weight", "shortcut.1.bias"]


def test_residual_block_errors():
    with pytest.raises(ValueError, match="identity shortcut needs in_channels == out_channels and stride 1"):
        nn.ResidualBlock(2, 4, shortcut="identity")
    with pytest.raises(ValueError, match="shortcut must be one of"):
        nn.ResidualBlock(2, 2, shortcut="dense")
    with pytest.raises(ValueError, match="kernel_size must be an odd int"):
        nn.ResidualBlock(2, 2, kernel_size=2)
    with pytest.raises(ValueError, match="cannot pad 4 channels down to 2"):
        nn.ResidualBlock(4, 2, stride=2, shortcut="pool")


def test_residual_block_matches_torch(torch):
    tnn, TF = torch.nn, torch.nn.functional

    class TorchBlock(tnn.Module):  # torchvision's BasicBlock with a projection shortcut
        def __init__(self):
            super().__init__()
            self.conv_0 = tnn.Conv2d(3, 5, 3, 2, 1, bias=False)
            self.bn_0 = tnn.BatchNorm2d(5)
            self.conv_1 = tnn.Conv2d(5, 5, 3, 1, 1, bias=False)
            self.bn_1 = tnn.BatchNorm2d(5)
            self.shortcut = tnn.Sequential(tnn.Conv2d(3, 5, 1, 2, bias=False), tnn.BatchNorm2d(5))

        def forward(self, x):
            out = TF.relu(self.bn_0(self.conv_0(x)))
            return TF.relu(self.bn_1(self.conv_1(out)) + self.shortcut(x))

    md.manual_seed(0)
    block = nn.ResidualBlock(3, 5, stride=2).double()
    reference = TorchBlock()
    _copy_to_torch(torch, block, reference)
    _assert_same_forward_backward(torch, block, reference, np.random.default_rng(0).standard_normal((4, 3, 6, 6)))


# ---------------------------------------------------------------------------------------
# Highway
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_highway_dense_gradcheck(activation):
    md.manual_seed(1)
    assert gradcheck_module(nn.Highway(4, activation=activation, gate_bias=-1.0), _input((3, 4)))


def test_highway_conv_gradcheck():
    md.manual_seed(2)
    assert gradcheck_module(nn.HighwayConv2d(2, kernel_size=3, gate_bias=-0.5), _input((2, 2, 4, 4)))


def test_highway_output_follows_the_formula():
    md.manual_seed(3)
    layer = nn.Highway(5, activation="tanh", gate_bias=-1.5).double()
    x = _input((4, 5))
    with recorded_gates([("h", layer)]) as gates:
        y = layer(x).numpy()
    W_H, b_H = layer.transform.weight.numpy(), layer.transform.bias.numpy()
    W_T, b_T = layer.gate.weight.numpy(), layer.gate.bias.numpy()
    h = np.tanh(x.numpy() @ W_H.T + b_H)
    t = 1 / (1 + np.exp(-(x.numpy() @ W_T.T + b_T)))
    np.testing.assert_allclose(y, h * t + x.numpy() * (1 - t), rtol=1e-12)
    np.testing.assert_allclose(gates["h"], t, rtol=1e-12)


def test_highway_gate_gradient_is_paper_equation_nine():
    # dL/dT = (H - x) dy: check through the gate bias, whose gradient is sum of dL/dT * T (1 - T).
    md.manual_seed(4)
    layer = nn.Highway(3, gate_bias=-2.0).double()
    x = _input((2, 3))
    with recorded_gates([("h", layer)]) as gates:
        y = layer(x)
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(g)
    with md.no_grad():
        h = layer.activation(layer.transform(x)).numpy()
    t = gates["h"]
    expected = ((h - x.numpy()) * g * t * (1 - t)).sum(axis=0)
    np.testing.assert_allclose(layer.gate.bias.grad, expected, rtol=1e-12)


@pytest.mark.parametrize("bias", [-1.0, -2.0, -3.0])
def test_gate_bias_starts_at_the_configured_negative_value(bias):
    layer = nn.HighwayConv2d(3, gate_bias=bias)
    assert np.all(layer.gate.bias.numpy() == np.float32(bias))
    assert nn.Highway(3).gate_bias == -2.0


def test_a_very_negative_gate_bias_makes_the_layer_nearly_the_identity():
    layer = nn.Highway(6, gate_bias=-30.0).double()
    x = _input((3, 6))
    np.testing.assert_allclose(layer(x).numpy(), x.numpy(), atol=1e-10)


@pytest.mark.parametrize("make, shape", [(lambda: nn.Highway(4), (3, 4)),
                                         (lambda: nn.HighwayConv2d(2), (2, 2, 3, 3))])
def test_lesion_shuts_the_gate_and_the_layer_is_the_identity(make, shape):
    layer = make()
    x = md.tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    with recorded_gates([("h", layer)]) as gates:
        assert not np.array_equal(layer(x).numpy(), x.numpy())
    assert gates["h"].shape == shape and np.all((gates["h"] > 0) & (gates["h"] < 1))
    with lesioned(layer, layer):
        assert layer(x) is x  # T = 0: y = x
    assert not np.array_equal(layer(x).numpy(), x.numpy())


def test_a_highway_layer_has_no_experiment_switches_and_the_hooks_go_after_use():
    layer = nn.Highway(3)
    assert not any(hasattr(layer, name) for name in ("lesion", "record_gate", "last_gate"))
    with recorded_gates([("h", layer)]), lesioned(layer, layer):
        layer(md.tensor(np.ones((1, 3), dtype=np.float32)))
    assert not layer._forward_hooks and not layer.gate._forward_hooks


def test_highway_parameter_names_and_width_error():
    layer = nn.HighwayConv2d(3)
    assert [n for n, _ in layer.named_parameters()] == ["transform.weight", "transform.bias", "gate.weight", "gate.bias"]
    with pytest.raises(ValueError, match="input has 4 features/channels on axis 1.*layer has 3"):
        layer(md.tensor(np.ones((1, 4, 3, 3), dtype=np.float32)))
    with pytest.raises(ValueError, match="kernel_size must be an odd int"):
        nn.HighwayConv2d(3, kernel_size=4)


def test_highway_conv_matches_torch(torch):
    tnn = torch.nn

    class TorchHighway(tnn.Module):
        def __init__(self):
            super().__init__()
            self.transform = tnn.Conv2d(3, 3, 3, padding=1)
            self.gate = tnn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            h, t = torch.relu(self.transform(x)), torch.sigmoid(self.gate(x))
            return h * t + x * (1 - t)

    md.manual_seed(5)
    layer = nn.HighwayConv2d(3, gate_bias=-1.0).double()
    reference = TorchHighway()
    _copy_to_torch(torch, layer, reference)
    _assert_same_forward_backward(torch, layer, reference, np.random.default_rng(2).standard_normal((2, 3, 5, 5)))


# ---------------------------------------------------------------------------------------
# SkipToHead
# ---------------------------------------------------------------------------------------

def _skip_layers(channels=(2, 3, 3)):
    md.manual_seed(6)
    return [
        nn.Sequential(nn.Conv2d(channels[0], channels[1], 3, padding=1), nn.ReLU()),
        nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(channels[1], channels[2], 3, padding=1), nn.Tanh()),
    ]


@pytest.mark.parametrize("mode", ["concat", "sum"])
def test_skip_to_head_gradcheck(mode):
    assert gradcheck_module(nn.SkipToHead(_skip_layers(), mode=mode), _input((2, 2, 4, 4)))


def test_skip_to_head_concat_is_the_last_output_then_each_pooled_tap():
    body = nn.SkipToHead(_skip_layers(), mode="concat").double()
    x = _input((2, 2, 4, 4))
    y = body(x).numpy()
    with md.no_grad():
        z0 = body.layers[0](x)
        z1 = body.layers[1](z0)
        z2 = body.layers[2](z1)
    pooled = z0.numpy().reshape(2, 3, 2, 2, 2, 2).max(axis=(3, 5))
    assert y.shape == (2, 9, 2, 2)
    np.testing.assert_array_equal(y[:, :3], z2.numpy())
    np.testing.assert_array_equal(y[:, 3:6], pooled)
    np.testing.assert_array_equal(y[:, 6:], z1.numpy())


def test_skip_to_head_sum_adds_every_pooled_tap_to_the_last_output():
    body = nn.SkipToHead(_skip_layers(), mode="sum", taps=[0]).double()
    x = _input((2, 2, 4, 4))
    with md.no_grad():
        z0 = body.layers[0](x)
        z2 = body.layers[2](body.layers[1](z0))
        expected = z2.numpy() + z0.numpy().reshape(2, 3, 2, 2, 2, 2).max(axis=(3, 5))
        np.testing.assert_allclose(body(x).numpy(), expected, rtol=1e-12)


def test_skip_to_head_gives_the_first_layer_a_direct_gradient_path():
    # With the last layer's weights at zero no gradient flows through it; the skip still carries one.
    body = nn.SkipToHead(_skip_layers(), mode="concat").double()
    body.layers[2][0].weight.data[...] = 0
    body(_input((2, 2, 4, 4))).sum().backward()
    assert np.abs(body.layers[0][0].weight.grad).sum() > 0
    plain = nn.Sequential(*_skip_layers()).double()
    plain[2][0].weight.data[...] = 0
    plain(_input((2, 2, 4, 4))).sum().backward()
    assert not np.abs(plain[0][0].weight.grad).any()


def test_skip_to_head_matches_torch(torch):
    tnn, TF = torch.nn, torch.nn.functional
    body = nn.SkipToHead(_skip_layers(), mode="concat").double()
    reference = tnn.Module()
    reference.layers = tnn.ModuleList([tnn.Sequential(tnn.Conv2d(2, 3, 3, padding=1), tnn.ReLU()), tnn.MaxPool2d(2),
                                       tnn.Sequential(tnn.Conv2d(3, 3, 3, padding=1), tnn.Tanh())])

    def forward(x):
        z0 = reference.layers[0](x)
        z1 = reference.layers[1](z0)
        z2 = reference.layers[2](z1)
        return torch.cat([z2, TF.max_pool2d(z0, 2), z1], dim=1)

    reference.forward = forward
    _copy_to_torch(torch, body, reference)
    _assert_same_forward_backward(torch, body, reference, np.random.default_rng(3).standard_normal((2, 2, 8, 8)))


def test_skip_to_head_errors():
    with pytest.raises(ValueError, match="mode must be 'concat' or 'sum'"):
        nn.SkipToHead(_skip_layers(), mode="mean")
    with pytest.raises(ValueError, match="tap 2 must index one of the first 2 layers"):
        nn.SkipToHead(_skip_layers(), taps=[2])
    with pytest.raises(ValueError, match="needs at least one layer"):
        nn.SkipToHead([])
    body = nn.SkipToHead(_skip_layers(channels=(2, 3, 5)), mode="sum")
    with pytest.raises(ValueError, match="layer 0 has 3 channels but the last layer has 5"):
        body(md.tensor(np.ones((1, 2, 4, 4), dtype=np.float32)))
    odd = nn.SkipToHead([nn.Identity(), nn.MaxPool2d(2)])
    with pytest.raises(ValueError, match="layer 0's output is 5x5, not a multiple of the head's 2x2"):
        odd(md.tensor(np.ones((1, 1, 5, 5), dtype=np.float32)))
