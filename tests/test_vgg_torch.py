"""The VGG family against the same networks written in PyTorch (weights copied), in float64."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import minideep as md  # noqa: E402
import minideep.nn.functional as F  # noqa: E402
from minideep import optim  # noqa: E402
from minideep.models import VGG, vgg08  # noqa: E402
from torch_vgg import build_torch_vgg, max_relative_error, torch_grads, torch_state  # noqa: E402

REL = 1e-7
CONFIGS = {
    "plain_vgg38": dict(num_blocks_per_stage=5),
    "bn_vgg38": dict(num_blocks_per_stage=5, batch_norm=True),
    "residual_vgg38": dict(num_blocks_per_stage=5, residual=True),
    "bn_residual_vgg38": dict(num_blocks_per_stage=5, batch_norm=True, residual=True),
    "sigmoid_vgg_2x2": dict(num_blocks_per_stage=2, num_stages=2, activation="sigmoid"),
    # Pricope (2021)'s residual networks: a strided 1x1 convolution shortcut around each reduction block too.
    "pricope_bn_residual_vgg08": dict(num_blocks_per_stage=0, batch_norm=True, residual=True, shortcut="projection"),
    "pricope_bn_residual_vgg38": dict(num_blocks_per_stage=5, batch_norm=True, residual=True, shortcut="projection"),
    "pricope_residual_vgg_2x2": dict(num_blocks_per_stage=2, num_stages=2, residual=True, shortcut="projection"),
}


def _batch(seed: int = 0, n: int = 4, size: int = 8, classes: int = 10):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, size, size)), rng.integers(0, classes, n)


def _loss_and_grads(model, x, y):
    model.zero_grad()
    logits = model(md.tensor(x))
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return logits.numpy(), loss.item(), {name: p.grad for name, p in model.named_parameters()}


def _torch_loss_and_grads(reference, x, y):
    reference.zero_grad()
    logits = reference(torch.from_numpy(x))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
    loss.backward()
    return logits.detach().numpy(), loss.item(), torch_grads(reference)


@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
def test_loss_and_every_gradient_match_pytorch(config):
    md.manual_seed(3)
    model = VGG(num_classes=10, **CONFIGS[config]).double()
    reference = build_torch_vgg(model)
    x, y = _batch()
    logits, loss, grads = _loss_and_grads(model, x, y)
    t_logits, t_loss, t_grads = _torch_loss_and_grads(reference, x, y)
    assert max_relative_error(logits, t_logits) < REL
    assert abs(loss - t_loss) <= REL * abs(t_loss)
    assert list(grads) == list(t_grads), "parameter names and order differ from the PyTorch twin"
    scale = max(np.abs(g).max() for g in t_grads.values())
    for name, grad in grads.items():
        assert grad is not None, f"{name} got no gradient"
        if _cancelled_by_batch_norm(model, name):
            # BN subtracts the channel mean, so dL/d(bias) is 0 exactly; both sides hold rounding noise.
            assert np.abs(grad).max() < 1e-12 * scale and np.abs(t_grads[name]).max() < 1e-12 * scale, name
        else:
            assert max_relative_error(grad, t_grads[name]) < REL, name


def _cancelled_by_batch_norm(model, name: str) -> bool:
    """A convolution bias followed by BN: the reduction blocks' biases in a batch_norm VGG."""
    return model.batch_norm and name.startswith("reduction_block_") and name.endswith(".bias") and ".conv_" in name


def test_plain_vgg38_gradient_vanishes_towards_the_input_as_in_pytorch():
    # The point of the chapter: under PyTorch's default init the first layers get a tiny gradient.
    md.manual_seed(0)
    model = VGG(5, num_classes=10).double()
    x, y = _batch(size=16)
    _, _, grads = _loss_and_grads(model, x, y)
    first = np.abs(grads["block_0_0.conv_0.weight"]).mean()
    last = np.abs(grads["logit_linear.weight"]).mean()
    assert first < 1e-4 * last


def test_eval_mode_outputs_match_pytorch_after_training_mode_forwards():
    md.manual_seed(1)
    model = VGG(1, num_classes=10, batch_norm=True).double()
    reference = build_torch_vgg(model)
    for step in range(3):
        x, _ = _batch(seed=10 + step)
        model(md.tensor(x))
        with torch.no_grad():
            reference(torch.from_numpy(x))
    expected = torch_state(reference)
    for name, value in model.state_dict().items():
        assert max_relative_error(value, expected[name]) < REL, name
    assert int(model.input_conv.bn.num_batches_tracked) == 3
    model.eval()
    reference.eval()
    x, _ = _batch(seed=99)
    with torch.no_grad():
        expected_logits = reference(torch.from_numpy(x)).numpy()
    assert max_relative_error(model(md.tensor(x)).numpy(), expected_logits) < REL


def test_float32_model_agrees_with_pytorch_to_float32_precision():
    md.manual_seed(2)
    model = vgg08(num_classes=10)
    reference = build_torch_vgg(model).float()
    x, y = _batch(size=8)
    logits = model(md.tensor(x.astype(np.float32)))
    assert logits.dtype == np.float32
    expected = reference(torch.from_numpy(x.astype(np.float32))).detach().numpy()
    assert max_relative_error(logits.numpy(), expected) < 1e-5


def test_projection_shortcut_on_odd_maps_matches_pytorch():
    # 12 -> 6 -> 3 -> 1: the last reduction block pools a 3x3 map, and its shortcut reads the cropped 2x2.
    md.manual_seed(4)
    model = VGG(1, num_classes=10, batch_norm=True, residual=True, shortcut="projection").double()
    reference = build_torch_vgg(model)
    x, y = _batch(size=12)
    logits, loss, grads = _loss_and_grads(model, x, y)
    t_logits, t_loss, t_grads = _torch_loss_and_grads(reference, x, y)
    assert max_relative_error(logits, t_logits) < REL
    assert abs(loss - t_loss) <= REL * abs(t_loss)
    for name in ("reduction_block_2.shortcut.weight", "reduction_block_0.shortcut.weight", "input_conv.conv.weight"):
        assert max_relative_error(grads[name], t_grads[name]) < REL, name


TRAJECTORY_STEPS = 20
TRAJECTORY_REL = 1e-6
TRAJECTORIES = {
    "vgg08": dict(num_blocks_per_stage=0),
    "vgg38_bn_res": dict(num_blocks_per_stage=5, batch_norm=True, residual=True),
    "vgg38_bn_res_projection": dict(num_blocks_per_stage=5, batch_norm=True, residual=True, shortcut="projection"),
}


@pytest.mark.parametrize("config", list(TRAJECTORIES), ids=list(TRAJECTORIES))
def test_twenty_adam_steps_follow_pytorchs_trajectory(config):
    """Same initial weights, same batches in the same order, Adam with weight decay: the same run.

    Chapter 03's PyTorch twin (scripts/torch_twin_03.py) trains this way; here, in float64,
    every step's loss and the final parameters and BN statistics must agree to 1e-6.
    """
    md.manual_seed(5)
    model = VGG(num_classes=10, **TRAJECTORIES[config]).double()
    reference = build_torch_vgg(model)
    opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    t_opt = torch.optim.Adam(reference.parameters(), lr=1e-3, weight_decay=1e-4)
    for step in range(TRAJECTORY_STEPS):
        x, y = _batch(seed=100 + step, n=8)
        opt.zero_grad()
        loss = F.cross_entropy(model(md.tensor(x)), y)
        loss.backward()
        opt.step()
        t_opt.zero_grad()
        t_loss = torch.nn.functional.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(y))
        t_loss.backward()
        t_opt.step()
        assert abs(loss.item() - t_loss.item()) <= TRAJECTORY_REL * abs(t_loss.item()), f"step {step}"
    expected = torch_state(reference)
    for name, value in model.state_dict().items():
        assert max_relative_error(value, expected[name]) < TRAJECTORY_REL, name
