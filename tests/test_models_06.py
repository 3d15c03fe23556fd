"""Tiny-YOLO and ResNet26 of chapter 06 (McInroe 2020): parameter counts, shapes, init, gradients.

The paper's counts at 128x128 with 101 classes: Tiny-YOLO 10,311,833 (BN) / 10,307,257 (no
BN), ResNet26 11,237,413 (BN) / 11,227,813 (no BN). Ours meet all but the last exactly; the
tests below spell out where the 128 parameters of difference come from.
"""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F
from minideep.models.resnet26 import ResNet26
from minideep.models.tiny_yolo import TinyYOLO
from minideep.nn.init import TRUNCATED_NORMAL_STD

PAPER = {"tinyyolo_bn": 10_311_833, "tinyyolo_nobn": 10_307_257, "resnet26_bn": 11_237_413, "resnet26_nobn": 11_227_813}


def _bn_parameters(model) -> int:
    return sum(p.size for name, p in model.named_parameters() if ".bn" in name or "shortcut.1" in name)


# ------------------------------------------------------------------------------ parameter counts


def test_tiny_yolo_counts_are_the_papers_exactly():
    assert TinyYOLO(101, image_size=128, batch_norm=True).num_parameters() == PAPER["tinyyolo_bn"]
    assert TinyYOLO(101, image_size=128, batch_norm=False).num_parameters() == PAPER["tinyyolo_nobn"]


def test_tiny_yolo_published_count_needs_bn_after_all_eight_convolutions():
    # Table 1 draws BN after the first six convolutions only; that network would have 10,309,273.
    model = TinyYOLO(101, image_size=128, batch_norm=True)
    last_two = sum(p.size for name, p in model.named_parameters() if name.startswith(("conv_6.bn", "conv_7.bn")))
    assert last_two == 2 * (1024 + 256)
    assert model.num_parameters() - last_two == 10_309_273 != PAPER["tinyyolo_bn"]


def test_tiny_yolo_flattens_256_x_2_x_2_features_into_the_1470_unit_layer_at_128px():
    model = TinyYOLO(101, image_size=128, batch_norm=False)
    assert model.dense.weight.shape == (1470, 256 * 2 * 2)
    assert model.logits.weight.shape == (101, 1470)


def test_resnet26_count_with_bn_is_the_papers_exactly():
    model = ResNet26(101, batch_norm=True)
    assert model.num_parameters() == PAPER["resnet26_bn"]
    # BN after all 21 convolutions: the stem, 16 in the blocks, 4 projections (one per stage).
    assert _bn_parameters(model) == 2 * 4864 == 2 * (64 + 4 * (64 + 128 + 256 + 512) + 64 + 128 + 256 + 512)


def test_resnet26_without_bn_is_128_below_the_paper_because_the_papers_kept_one_64_channel_bn():
    with_bn, without = ResNet26(101, batch_norm=True), ResNet26(101, batch_norm=False)
    assert without.num_parameters() == 11_227_685
    assert with_bn.num_parameters() - without.num_parameters() == 2 * 4864
    # The paper's two counts differ by only 9,600 = 2 x 4,800: 64 channels' gamma and beta stayed.
    assert PAPER["resnet26_bn"] - PAPER["resnet26_nobn"] == 2 * 4800
    assert PAPER["resnet26_nobn"] - without.num_parameters() == 2 * 64


def test_resnet26_table_2_read_literally_three_blocks_per_stage_is_far_above_the_paper():
    # Six convolutions per stage as printed (1 + 24 + 1 = 26 layers) give 17.5M, not 11.2M parameters.
    assert ResNet26(101, batch_norm=True, blocks_per_stage=3).num_parameters() == 17_510_053
    assert ResNet26(101, batch_norm=False, blocks_per_stage=3).num_parameters() == 17_496_485


def test_width_multiplier_scales_every_channel_count():
    yolo = TinyYOLO(10, image_size=64, batch_norm=True, width=0.25)
    assert [getattr(yolo, f"conv_{i}").conv.weight.shape[0] for i in range(8)] == [4, 8, 16, 32, 64, 128, 256, 64]
    assert yolo.dense.weight.shape == (368, 64)  # 1470 / 4 rounded; 64 channels x 1 x 1 at 64 px
    resnet = ResNet26(10, width=0.25)
    assert resnet.stem.conv.weight.shape == (16, 3, 7, 7)
    assert [resnet.stage_0_0.conv_0.weight.shape[0], resnet.stage_3_1.conv_1.weight.shape[0]] == [16, 128]


# ------------------------------------------------------------------------------ structure and shapes


def test_tiny_yolo_maps_images_to_logits_through_six_pools():
    md.manual_seed(0)
    model = TinyYOLO(10, image_size=64, width=0.125)
    x = md.tensor(np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32))
    assert model(x).shape == (2, 10)
    assert isinstance(model.conv_0.act, md.nn.LeakyReLU) and model.conv_0.act.negative_slope == 0.1
    assert not hasattr(model.conv_6, "pool") and hasattr(model.conv_5, "pool")


def test_resnet26_halves_the_size_at_the_stem_the_pool_and_every_stage():
    md.manual_seed(0)
    model = ResNet26(10, width=0.125)
    x = md.tensor(np.random.default_rng(0).standard_normal((2, 3, 128, 128)).astype(np.float32))
    h = model.stem(x)
    assert h.shape[2:] == (32, 32)  # 7x7/2 then 2x2/2
    sizes = []
    for s in range(4):
        for b in range(2):
            h = getattr(model, f"stage_{s}_{b}")(h)
        sizes.append(h.shape[2])
    assert sizes == [16, 8, 4, 2]
    assert model(x).shape == (2, 10)
    # Every stage opens with a stride-2 block whose shortcut is a 1x1 projection; the others are identities.
    assert all(getattr(model, f"stage_{s}_0").shortcut_kind == "conv" for s in range(4))
    assert all(getattr(model, f"stage_{s}_1").shortcut_kind == "identity" for s in range(4))


def test_bad_sizes_raise_errors_that_name_the_model():
    with pytest.raises(ValueError, match="TinyYOLO: image_size must be a multiple of 64"):
        TinyYOLO(10, image_size=100)
    model = TinyYOLO(10, image_size=64, width=0.0625)
    with pytest.raises(ValueError, match=r"TinyYOLO: expected input \(N, C, 64, 64\)"):
        model(md.tensor(np.zeros((1, 3, 128, 128), dtype=np.float32)))
    with pytest.raises(ValueError, match="ResNet26: expected input"):
        ResNet26(10, width=0.0625)(md.tensor(np.zeros((1, 3, 16, 16), dtype=np.float32)))
    with pytest.raises(ValueError, match="ResNet26: width must be positive"):
        ResNet26(10, width=0)


# ------------------------------------------------------------------------------ initialisation


@pytest.mark.parametrize("init", ["he_truncated_normal", "glorot_truncated_normal"])
def test_weights_follow_the_truncated_normal_scheme_and_biases_start_at_zero(init):
    md.manual_seed(0)
    model = TinyYOLO(101, image_size=128, batch_norm=False, init=init)
    w = model.conv_6.conv.weight.data.astype(np.float64)  # 1024 x 512 x 3 x 3: 4.7M draws
    fan_in, fan_out = 512 * 9, 1024 * 9
    target = np.sqrt(2 / fan_in) if init.startswith("he") else np.sqrt(2 / (fan_in + fan_out))
    assert abs(w.std() / target - 1) < 0.01
    # Redrawn beyond two standard deviations of the untruncated normal (target / 0.8796).
    assert np.abs(w).max() <= 2 * target / TRUNCATED_NORMAL_STD * (1 + 1e-6)
    assert all(np.all(p.data == 0) for name, p in model.named_parameters() if name.endswith(".bias"))


# ------------------------------------------------------------------------------ gradients (float64)


def _directional_check(model, x, y, seed=0):
    """Backward's directional derivative g . v against (L(t + e v) - L(t - e v)) / 2e, all parameters and the input."""
    params = [p for _, p in model.named_parameters()]
    xt = md.tensor(x, requires_grad=True)
    model.zero_grad()
    loss = F.cross_entropy(model(xt), y)
    loss.backward()
    rng = np.random.default_rng(seed)
    directions = [rng.standard_normal(p.shape) for p in params] + [rng.standard_normal(x.shape)]
    norm = np.sqrt(sum(float((d**2).sum()) for d in directions))
    directions = [d / norm for d in directions]  # a unit step: no leaky-ReLU kink or pooling switch is crossed
    analytic = sum(float((p.grad * d).sum()) for p, d in zip(params, directions)) + float((xt.grad * directions[-1]).sum())
    eps = 1e-6

    def shifted(sign):
        for p, d in zip(params, directions):
            p.data += sign * eps * d
        with md.no_grad():
            value = F.cross_entropy(model(md.tensor(x + sign * eps * directions[-1])), y).item()
        for p, d in zip(params, directions):
            p.data -= sign * eps * d
        return value

    numeric = (shifted(1) - shifted(-1)) / (2 * eps)
    return analytic, numeric


@pytest.mark.parametrize("batch_norm", [True, False], ids=["bn", "nobn"])
@pytest.mark.parametrize("arch", ["tinyyolo", "resnet26"])
def test_backward_agrees_with_central_differences_in_float64(arch, batch_norm):
    md.manual_seed(1)
    if arch == "tinyyolo":
        model, size = TinyYOLO(7, image_size=64, batch_norm=batch_norm, width=0.0625), 64
    else:
        model, size = ResNet26(7, batch_norm=batch_norm, width=0.0625), 32
    model.double()
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((3, 3, size, size)), rng.integers(0, 7, 3)
    analytic, numeric = _directional_check(model, x, y)
    assert abs(analytic - numeric) <= 1e-6 * abs(numeric) + 1e-10, (analytic, numeric)


# ------------------------------------------------------------------------------ PyTorch twins


def _torch_forward(torch, model, params, x):
    """The same network written with torch.nn.functional, reading our parameter names."""
    tf = torch.nn.functional

    def bn(h, prefix):
        if prefix + ".weight" not in params:
            return h
        return tf.batch_norm(h, None, None, params[prefix + ".weight"], params[prefix + ".bias"], training=True, eps=1e-5)

    if isinstance(model, TinyYOLO):
        h = x
        for i in range(8):
            h = tf.conv2d(h, params[f"conv_{i}.conv.weight"], params[f"conv_{i}.conv.bias"], padding=1)
            h = tf.leaky_relu(bn(h, f"conv_{i}.bn"), 0.1)
            if i < 6:
                h = tf.max_pool2d(h, 2)
        h = tf.leaky_relu(tf.linear(h.flatten(1), params["dense.weight"], params["dense.bias"]), 0.1)
        return tf.linear(h, params["logits.weight"], params["logits.bias"])
    h = tf.conv2d(x, params["stem.conv.weight"], params["stem.conv.bias"], stride=2, padding=3)
    h = tf.max_pool2d(tf.relu(bn(h, "stem.bn")), 2)
    for s in range(4):
        for b in range(2):
            p, stride = f"stage_{s}_{b}", 2 if b == 0 else 1
            out = tf.relu(bn(tf.conv2d(h, params[f"{p}.conv_0.weight"], params[f"{p}.conv_0.bias"], stride=stride,
                                       padding=1), f"{p}.bn_0"))
            out = bn(tf.conv2d(out, params[f"{p}.conv_1.weight"], params[f"{p}.conv_1.bias"], padding=1), f"{p}.bn_1")
            if b == 0:
                short = tf.conv2d(h, params[f"{p}.shortcut.0.weight"], params[f"{p}.shortcut.0.bias"], stride=2)
                short = bn(short, f"{p}.shortcut.1")
            else:
                short = h
            h = tf.relu(out + short)
    return tf.linear(h.mean(dim=(2, 3)), params["logits.weight"], params["logits.bias"])


@pytest.mark.parametrize("batch_norm", [True, False], ids=["bn", "nobn"])
@pytest.mark.parametrize("arch", ["tinyyolo", "resnet26"])
def test_logits_and_every_gradient_match_pytorch(arch, batch_norm):
    torch = pytest.importorskip("torch")
    md.manual_seed(4)
    if arch == "tinyyolo":
        model, size = TinyYOLO(5, image_size=64, batch_norm=batch_norm, width=0.125, init="glorot_truncated_normal"), 64
    else:
        model, size = ResNet26(5, batch_norm=batch_norm, width=0.125), 64
    model.double()
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((4, 3, size, size)), rng.integers(0, 5, 4)
    params = {n: torch.tensor(np.array(p.data), requires_grad=True) for n, p in model.named_parameters()}
    logits_t = _torch_forward(torch, model, params, torch.from_numpy(x))
    torch.nn.functional.cross_entropy(logits_t, torch.from_numpy(y)).backward()

    model.zero_grad()
    logits = model(md.tensor(x))
    F.cross_entropy(logits, y).backward()
    expected = logits_t.detach().numpy()
    assert np.abs(logits.numpy() - expected).max() <= 1e-9 * np.abs(expected).max()
    scale = max(float(t.grad.abs().max()) for t in params.values())
    for name, p in model.named_parameters():
        g, t = p.grad, params[name].grad.numpy()
        if batch_norm and name.endswith(".bias") and ".bn" not in name and "shortcut.1" not in name \
                and "logits" not in name and "dense" not in name:
            # A convolution bias followed by BN: BN subtracts the channel mean, so the gradient is 0 exactly.
            assert np.abs(g).max() < 1e-10 * scale and np.abs(t).max() < 1e-10 * scale, name
        else:
            assert np.abs(g - t).max() <= 1e-8 * max(np.abs(t).max(), 1e-12 * scale), name
