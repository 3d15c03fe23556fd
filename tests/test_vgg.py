"""The coursework VGG family: architecture, parameter counts and names, init, state."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F
from minideep import nn
from minideep.models import VGG, gradient_flow_parameters, vgg08, vgg38


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda: vgg08(), 59_716),
        (lambda: vgg38(), 336_196),
        (lambda: vgg38(batch_norm=True), 338_500),
        (lambda: vgg38(residual=True), 336_196),
        (lambda: vgg38(batch_norm=True, residual=True), 338_500),
    ],
    ids=["vgg08", "vgg38", "vgg38_bn", "vgg38_rc", "vgg38_bn_rc"],
)
def test_parameter_counts_match_the_coursework(build, expected):
    assert build().num_parameters() == expected


@pytest.mark.parametrize("blocks, convs", [(0, 7), (5, 37)])
def test_number_of_convolutions_and_one_linear(blocks, convs):
    model = VGG(blocks)
    kinds = [type(m) for m in model.modules()]
    assert kinds.count(nn.Conv2d) == convs
    assert kinds.count(nn.Linear) == 1
    assert kinds.count(nn.BatchNorm2d) == 1  # the entry BN, present even in the plain networks


def test_vgg08_parameter_names_in_network_order():
    names = [name for name, _ in vgg08().named_parameters()]
    stages = [
        f"reduction_block_{i}.conv_{k}.{p}" for i in range(3) for k in range(2) for p in ("weight", "bias")
    ]
    assert names == ["input_conv.conv.weight", "input_conv.bn.weight", "input_conv.bn.bias", *stages,
                     "logit_linear.weight", "logit_linear.bias"]


def test_vgg38_module_order_and_block_names():
    model = vgg38()
    expected = ["input_conv"]
    for i in range(3):
        expected += [f"block_{i}_{j}" for j in range(5)] + [f"reduction_block_{i}"]
    expected += ["global_pool", "flatten", "logit_linear"]
    assert [name for name, _ in model.blocks] == expected
    assert [name for name, _ in model.named_children()] == expected
    names = [name for name, _ in model.named_parameters()]
    assert names[3:5] == ["block_0_0.conv_0.weight", "block_0_0.conv_1.weight"]
    assert "block_0_0.conv_0.bias" not in names  # processing convolutions have no bias
    assert names[-4:] == ["reduction_block_2.conv_1.weight", "reduction_block_2.conv_1.bias",
                          "logit_linear.weight", "logit_linear.bias"]


def test_batch_norm_variant_puts_bn_after_every_convolution():
    names = [name for name, _ in vgg38(batch_norm=True).named_parameters()]
    assert names[3:9] == ["block_0_0.conv_0.weight", "block_0_0.bn_0.weight", "block_0_0.bn_0.bias",
                          "block_0_0.conv_1.weight", "block_0_0.bn_1.weight", "block_0_0.bn_1.bias"]
    assert "reduction_block_1.bn_0.weight" in names and "reduction_block_1.conv_0.bias" in names
    bns = [m for m in vgg38(batch_norm=True).modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 37


def test_residual_variant_uses_identity_residual_blocks_in_processing_blocks_only():
    model = vgg38(residual=True)
    assert isinstance(model.block_1_3, nn.ResidualBlock)
    assert isinstance(model.block_1_3.shortcut, nn.Identity)
    assert not isinstance(model.reduction_block_1, nn.ResidualBlock)


@pytest.mark.parametrize("blocks, points", [(0, 9), (5, 39)])
def test_gradient_flow_parameters_are_the_weights_and_the_entry_bn_gamma(blocks, points):
    params = gradient_flow_parameters(VGG(blocks))
    assert len(params) == points
    assert params[0][0] == "input_conv.conv.weight"
    assert params[1][0] == "input_conv.bn.weight"
    assert params[-1][0] == "logit_linear.weight"
    assert all("bias" not in name for name, _ in params)


def test_forward_is_the_top_level_blocks_applied_in_order():
    md.manual_seed(0)
    model = VGG(1, num_classes=7).double()
    x = md.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)))
    out = x
    with md.no_grad():
        for _, block in model.blocks:
            out = block(out)
        direct = model(x)
    assert direct.shape == (2, 7)
    np.testing.assert_array_equal(out.numpy(), direct.numpy())


def test_spatial_size_halves_per_stage():
    model = vgg08(num_classes=10)
    shapes = {}
    for name, block in model.blocks:
        block.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, o.shape))
    model(md.tensor(np.zeros((2, 3, 32, 32), dtype=np.float32)))
    assert shapes["input_conv"] == (2, 32, 32, 32)
    assert shapes["reduction_block_0"] == (2, 32, 16, 16)
    assert shapes["reduction_block_2"] == (2, 32, 4, 4)
    assert shapes["global_pool"] == (2, 32, 1, 1)
    assert shapes["logit_linear"] == (2, 10)


def test_default_init_is_pytorchs_uniform_bound_not_he():
    md.manual_seed(0)
    model = vgg38()
    for name, param in model.named_parameters():
        values = param.numpy()
        if ".bn." in name or ".bn_" in name:
            expected = 1.0 if name.endswith("weight") else 0.0
            assert np.all(values == expected), name
            continue
        fan_in = 32 if name.startswith("logit_linear") else (3 if name.startswith("input_conv") else 32) * 9
        bound = 1 / math.sqrt(fan_in)
        assert np.abs(values).max() <= bound, name
        assert np.abs(values).max() > 0.9 * bound, name  # drawn over the whole interval, not a smaller one


def test_init_option_switches_every_weight_to_he():
    md.manual_seed(0)
    model = vgg38(init="he_normal")
    weight = model.block_1_1.conv_0.weight.numpy()
    assert abs(weight.std() - math.sqrt(2 / 288)) < 0.05 * math.sqrt(2 / 288)
    assert np.all(model.reduction_block_0.conv_0.bias.numpy() == 0)


def test_same_seed_same_model_and_different_seed_different_model():
    md.manual_seed(7)
    a = vgg08().state_dict()
    md.manual_seed(7)
    b = vgg08().state_dict()
    md.manual_seed(8)
    c = vgg08().state_dict()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["logit_linear.weight"], c["logit_linear.weight"])


def test_state_dict_round_trip_reproduces_outputs_bit_for_bit():
    md.manual_seed(0)
    model = VGG(1, num_classes=10, batch_norm=True)
    x = md.tensor(np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32))
    model(x)  # moves the running statistics away from their initial values
    model.eval()
    state = model.state_dict()
    md.manual_seed(123)
    other = VGG(1, num_classes=10, batch_norm=True).eval()
    other.load_state_dict(state)
    np.testing.assert_array_equal(model(x).numpy(), other(x).numpy())
    for name, value in other.state_dict().items():
        np.testing.assert_array_equal(value, state[name])


def test_double_converts_to_float64_and_gradients_flow():
    model = vgg08(num_classes=5).double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model.input_conv.bn.running_var.dtype == np.float64
    assert model.input_conv.bn.num_batches_tracked.dtype == np.int64
    loss = F.cross_entropy(model(md.tensor(np.ones((2, 3, 8, 8)))), np.array([0, 1]))
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == np.float64 for p in model.parameters())


def test_repr_shows_the_tree_and_parameter_counts():
    text = repr(vgg08())
    assert text.startswith("VGG(  # 59,716 parameters")
    assert "(input_conv): EntryBlock(  # 928 parameters" in text
    assert "(logit_linear): Linear(in_features=32, out_features=100, bias=True)  # 3,300 parameters" in text


@pytest.mark.parametrize("kwargs", [dict(num_blocks_per_stage=-1), dict(num_blocks_per_stage=1, num_stages=0),
                                    dict(num_blocks_per_stage=1, num_classes=0)])
def test_bad_arguments_are_reported(kwargs):
    with pytest.raises(ValueError, match="VGG"):
        VGG(**kwargs)


def test_wrong_input_channels_are_reported():
    with pytest.raises(ValueError, match="conv2d: input has 1 channels"):
        vgg08()(md.tensor(np.zeros((2, 1, 8, 8), dtype=np.float32)))


def test_unknown_activation_is_reported():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        vgg08(activation="swish")


# Pricope (2021)'s residual VGG: a strided 1x1 convolution shortcut (+ BN) around each reduction block.
@pytest.mark.parametrize(
    "blocks, batch_norm, expected",
    # Each of the three reduction blocks adds a 32x32 1x1 convolution (1,024) and, with BN, 64 for its BN.
    [(0, True, 60_100 + 3 * (1024 + 64)), (5, True, 338_500 + 3 * (1024 + 64)), (5, False, 336_196 + 3 * 1024)],
    ids=["vgg08_bn_res", "vgg38_bn_res", "vgg38_res"],
)
def test_projection_shortcuts_add_pricopes_1x1_convolutions(blocks, batch_norm, expected):
    model = VGG(blocks, batch_norm=batch_norm, residual=True, shortcut="projection")
    assert model.num_parameters() == expected
    assert model.reduction_block_0.shortcut.stride == (2, 2) and model.reduction_block_0.shortcut.kernel_size == (1, 1)


def test_coursework_residual_vgg08_is_vgg08_but_pricopes_is_not():
    # The coursework puts shortcuts around processing blocks only, and VGG08 has none.
    md.manual_seed(0)
    plain = VGG(0, batch_norm=True).double()
    x = md.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)))
    for shortcut, same in (("coursework", True), ("projection", False)):
        md.manual_seed(0)
        residual = VGG(0, batch_norm=True, residual=True, shortcut=shortcut).double()
        residual.load_state_dict(plain.state_dict(), strict=False)
        assert np.array_equal(residual(x).numpy(), plain(x).numpy()) is same, shortcut


def test_projection_shortcuts_stay_out_of_the_gradient_flow_plot():
    model = VGG(5, batch_norm=True, residual=True, shortcut="projection")
    names = [name for name, _ in gradient_flow_parameters(model)]
    assert len(names) == len(gradient_flow_parameters(VGG(5, batch_norm=True))) and not any("shortcut" in n for n in names)


def test_unknown_shortcut_is_reported():
    with pytest.raises(ValueError, match="VGG: shortcut must be one of .*'coursework', 'projection'.*got 'pooled'"):
        VGG(0, residual=True, shortcut="pooled")
