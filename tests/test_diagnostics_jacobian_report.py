"""block_report: one row of Jacobian gains per block, for chains, residual, highway and skip-to-head nets."""
from __future__ import annotations

import json

import numpy as np
import pytest

import minideep as md
from minideep import nn
from minideep.diagnostics import block_report, jacobian_gains, report_table
from minideep.models import HighwayMLP, SkipToHeadNet, vgg08


def batch(shape, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.integers(0, classes, shape[0])


def tanh_chain() -> nn.Sequential:
    md.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5, bias=False), nn.Tanh(), nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def test_a_plain_chain_gives_one_row_per_layer_and_no_skip():
    model = tanh_chain()
    x, y = batch((1, 6), 3)
    rows = block_report(model, x, y, probes=32, iterations=200)
    assert [r["name"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert [r["kind"] for r in rows] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    w = model[0].weight.data
    first = rows[0]  # m = 1 * 5 <= 32 probes: rms exact; top by power iteration
    assert first["rms"] == pytest.approx(np.linalg.norm(w) / np.sqrt(5), rel=1e-12)
    assert first["top"] == pytest.approx(np.linalg.svd(w, compute_uv=False)[0], rel=1e-6)
    for row, below in zip(rows[1:], rows[:-1]):
        # in a chain, the gradient at a block's input is all of the gradient at the previous output
        assert row["on_gradient"] * row["grad_norm"] == pytest.approx(below["grad_norm"], rel=1e-12)
        assert below["skip_grad_norm"] <= 1e-14 * below["grad_norm"]
        assert below["chain_grad_norm"] == pytest.approx(below["grad_norm"], rel=1e-12)
    assert rows[-1]["skip_grad_norm"] is None  # nothing reads the last output but the loss
    json.dumps(rows)


def test_each_row_is_that_blocks_own_jacobian_gains():
    md.manual_seed(2)
    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()),
                          nn.ResidualBlock(4, 4), nn.ResidualBlock(4, 4),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).double()
    x, y = batch((3, 3, 6, 6), 3)
    rows = block_report(model, x, y, probes=6, iterations=8, seed=1)
    assert [r["kind"] for r in rows] == ["Conv2d", "ReLU", "ResidualBlock", "ResidualBlock",
                                         "AdaptiveAvgPool2d", "Flatten", "Linear"]
    h = model[0](md.tensor(x)).data  # the first residual block's input
    direct = jacobian_gains(model[1], h, probes=6, iterations=8, seed=1)
    assert rows[2]["rms"] == pytest.approx(direct["rms"], rel=1e-12)
    assert rows[2]["top"] == pytest.approx(direct["top"], rel=1e-12)
    assert rows[2]["input_shape"] == [3, 4, 6, 6]
    # the residual branch F(x) alone, measured at the same input
    with_branch = block_report(model, x, y, probes=6, iterations=8, seed=1,
                               branch=lambda name, m: getattr(m, "residual", None))
    branch = jacobian_gains(model[1].residual, h, probes=6, iterations=8, seed=1)
    assert with_branch[2]["branch_rms"] == pytest.approx(branch["rms"], rel=1e-12)
    assert with_branch[2]["branch_top"] == pytest.approx(branch["top"], rel=1e-12)
    assert with_branch[0]["branch_rms"] is None


def test_a_highway_mlp_reports_every_highway_layer():
    md.manual_seed(3)
    model = HighwayMLP(4, width=6, in_features=8, num_classes=3).double()
    x, y = batch((5, 8), 3)
    rows = block_report(model, x, y, probes=4, iterations=4)
    kinds = [r["kind"] for r in rows]
    assert kinds.count("Highway") == 3
    for row in rows:
        assert row["on_gradient"] > 0 and row["rms"] > 0 and row["top"] >= 0
    for row, below in zip(rows[1:], rows[:-1]):
        if below["skip_grad_norm"] is not None:
            assert below["skip_grad_norm"] <= 1e-12 * below["grad_norm"]


def test_skip_to_head_reports_the_skip_separately_from_the_layers_own_gain():
    md.manual_seed(4)
    concat = SkipToHeadNet(6, 3, "concat", hidden=(16, 8), image_size=16, dropout=0.5).double()
    x, y = batch((4, 3, 16, 16), 10)
    rows = {r["name"]: r for r in block_report(concat, x, y, probes=4, iterations=4)}
    conv = rows["body.layers.1"]  # a tapped ConvReLU: its output goes on, and to the head
    assert conv["skip_grad_norm"] > 0.05 * conv["grad_norm"]
    # the old ratio ||dL/dh_in|| / ||dL/dh_out|| mixes in the skip; on_gradient is the layer's own J^T g
    ratio = rows["body.layers.0"]["grad_norm"] / conv["grad_norm"]
    assert abs(ratio - conv["on_gradient"]) > 1e-3
    # the chain part and the skip part add up to the whole gradient (vectors: triangle inequality)
    assert conv["grad_norm"] <= conv["chain_grad_norm"] + conv["skip_grad_norm"] + 1e-12
    baseline = SkipToHeadNet(6, 3, "baseline", hidden=(16, 8), image_size=16).double()
    for row in block_report(baseline, x, y, probes=2, iterations=2):
        if row["skip_grad_norm"] is not None:
            assert row["skip_grad_norm"] <= 1e-12 * row["grad_norm"]


def test_the_model_is_left_as_it_was():
    md.manual_seed(5)
    model = vgg08(num_filters=4, num_classes=5, batch_norm=True).double()
    x, y = batch((3, 3, 8, 8), 5)
    state = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    block_report(model, x, y, probes=2, iterations=2)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert model.training


def test_dropout_masks_are_fixed_and_the_generator_is_left_alone():
    md.manual_seed(6)
    net = nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.5), nn.Linear(6, 3)).double()
    x, y = batch((4, 6), 3)
    md.manual_seed(9)
    rows = block_report(net, x, y, probes=2, iterations=3)
    assert md.backend.get_generator().random() == np.random.default_rng(9).random()
    assert rows[1]["top"] == pytest.approx(2.0, rel=1e-8)  # 1 / (1 - p): one fixed mask
    assert rows[0]["skip_grad_norm"] <= 1e-14 * rows[0]["grad_norm"]  # the same mask in both passes
    assert "forward" not in net[1].__dict__


def test_theory_fills_the_predicted_column_and_zero_skips_a_measurement():
    model = tanh_chain()
    x, y = batch((2, 6), 3)
    rows = block_report(model, x, y, probes=0, iterations=0,
                        theory=lambda name, module, row: 1.0 if type(module).__name__ == "Tanh" else None)
    assert [r["predicted"] for r in rows] == [None, 1.0, None, 1.0, None]
    assert all(r["rms"] is None and r["top"] is None and r["on_gradient"] > 0 for r in rows)


def test_report_table_is_markdown_with_one_line_per_row():
    model = tanh_chain()
    rows = block_report(model, *batch((2, 6), 3), probes=2, iterations=2)
    table = report_table(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| block | kind | ‖dL/dh‖ | on gradient | rms | top |")
    assert lines[1].startswith("| --- |")
    assert len(lines) == 2 + len(rows)
    assert "predicted" not in lines[0]
    custom = report_table(rows, ["name", "top"], digits=2).splitlines()
    assert custom[0] == "| block | top |" and custom[2].startswith("| 0 | ")


def test_explicit_blocks_and_bad_input():
    model = tanh_chain()
    x, y = batch((2, 6), 3)
    rows = block_report(model, x, y, blocks=["0", "2"], probes=2, iterations=2)
    assert [r["name"] for r in rows] == ["0", "2"]
    assert rows[0]["skip_grad_norm"] is None  # block 2 does not read block 0's output
    with pytest.raises(ValueError, match="block_report: model has no module named 'nope'"):
        block_report(model, x, y, blocks=["nope"])
    with pytest.raises(ValueError, match="block_report: probes must be an int >= 0"):
        block_report(model, x, y, probes=-1)
