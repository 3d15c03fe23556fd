"""Gradient flow: the statistic itself, its layer names, and the fit callback that records it."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F
from minideep import nn, optim
from minideep.diagnostics import GradientFlowRecorder, gradient_flow, gradient_statistics, layer_name
from minideep.models import vgg08, vgg38
from minideep.train import fit


def small_cnn() -> nn.Module:
    md.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 5))


def backward_once(model: nn.Module, shape=(6, 3, 8, 8), classes: int = 5, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x = md.tensor(rng.standard_normal(shape).astype(np.float32))
    y = rng.integers(0, classes, shape[0])
    F.cross_entropy(model(x), y).backward()


def test_layer_name_strips_weight_and_skips_biases():
    assert layer_name("block_0_0.conv_0.weight") == "block_0_0.conv_0"
    assert layer_name("input_conv.bn.weight") == "input_conv.bn"  # BN gamma counts
    assert layer_name("input_conv.bn.bias") is None  # BN beta does not
    assert layer_name("head.bias") is None
    assert layer_name("gate.alpha") == "gate.alpha"


def test_gradient_flow_equals_direct_computation():
    model = small_cnn()
    backward_once(model)
    flow = gradient_flow(model)
    expected = {name[: -len(".weight")]: float(np.abs(p.grad).mean())
                for name, p in model.named_parameters() if not name.endswith("bias")}
    assert list(flow) == ["0", "1", "3", "7"]  # conv, BN gamma, conv, linear: in network order
    assert list(flow) == list(expected)
    for layer in expected:
        assert flow[layer] == pytest.approx(expected[layer], rel=1e-6)


def test_gradient_statistics_max_and_norm_equal_direct_computation():
    model = small_cnn()
    backward_once(model)
    stats = gradient_statistics(model)
    for name, p in model.named_parameters():
        layer = layer_name(name)
        if layer is None:
            continue
        g = p.grad.astype(np.float64)
        assert stats["max_abs"][layer] == pytest.approx(np.abs(g).max(), rel=1e-6)
        assert stats["norm"][layer] == pytest.approx(np.sqrt((g ** 2).sum()), rel=1e-6)
    assert stats["mean_abs"] == gradient_flow(model)


@pytest.mark.parametrize("build, points", [(vgg08, 9), (vgg38, 39)])
def test_vgg_gradient_flow_has_the_coursework_points(build, points):
    model = build(num_classes=10)
    backward_once(model, shape=(2, 3, 8, 8), classes=10)
    flow = gradient_flow(model)
    assert len(flow) == points
    assert list(flow)[:2] == ["input_conv.conv", "input_conv.bn"]
    assert list(flow)[-1] == "logit_linear"
    assert all(isinstance(v, float) and v >= 0 for v in flow.values())


def test_gradient_flow_before_backward_is_an_error():
    with pytest.raises(ValueError, match="gradient_flow: no parameter has a gradient"):
        gradient_flow(small_cnn())


def test_a_weight_without_gradient_counts_as_zero():
    model = _TwoHeads()
    x = md.tensor(np.ones((2, 3), dtype=np.float32))
    F.cross_entropy(model(x), np.array([0, 1])).backward()
    flow = gradient_flow(model)
    assert flow["unused"] == 0.0
    assert flow["used"] > 0


class _TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.used = nn.Linear(3, 2)
        self.unused = nn.Linear(3, 2)

    def forward(self, x):
        return self.used(x)


def tiny_data(n_batches: int = 3, batch: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, 3, 8, 8)).astype(np.float32), rng.integers(0, 5, batch))
            for _ in range(n_batches)]


class DirectFlow:
    """An independent callback: gradient_flow read straight from .grad at each epoch's end."""

    def __init__(self):
        self.per_epoch = []

    def on_epoch_end(self, state):
        self.per_epoch.append(gradient_flow(state.model))


class LastStepFlow:
    """Another witness: the flow at the step fit marks as the epoch's last one."""

    def __init__(self):
        self.per_epoch = []

    def on_step_end(self, state):
        if state.step == state.steps_per_epoch - 1:
            self.per_epoch.append(gradient_flow(state.model))


def test_recorder_per_epoch_record_matches_the_last_minibatch():
    model = small_cnn()
    recorder, direct, last = GradientFlowRecorder(), DirectFlow(), LastStepFlow()
    result = fit(model, optim.Adam(model.named_parameters()), tiny_data(), 2, callbacks=[recorder, direct, last],
                 progress=False, log=None)
    assert [r["epoch"] for r in recorder.records] == [0, 1]
    assert [r["step"] for r in recorder.records] == [2, 5]  # global index of each epoch's last step
    for record, seen_at_end, seen_at_step in zip(recorder.records, direct.per_epoch, last.per_epoch):
        assert record["mean_abs"] == seen_at_end == seen_at_step
        assert set(record) == {"epoch", "step", "mean_abs", "max_abs", "norm"}
    assert recorder.flow() == direct.per_epoch
    assert [h["gradient_flow"] for h in result.history] == recorder.records
    assert recorder.step_records == []


def test_recorder_records_are_json_and_round_trip(tmp_path):
    model = small_cnn()
    recorder = GradientFlowRecorder(every="step", interval=2)
    fit(model, optim.SGD(model.named_parameters(), lr=0.01), tiny_data(), 2, callbacks=[recorder],
        progress=False, log=None)
    assert [r["step"] for r in recorder.step_records] == [0, 2, 4]
    path = recorder.save(tmp_path / "flow.json")
    loaded = GradientFlowRecorder.from_dict(json.loads(path.read_text()))
    assert loaded.records == recorder.records and loaded.step_records == recorder.step_records
    assert loaded.layers == ["0", "1", "3", "7"]
    assert all(math.isfinite(v) for r in loaded.records for v in r["norm"].values())


def test_recorder_without_loader_length_reads_the_gradients_at_epoch_end():
    class NoLength:
        def __init__(self, batches):
            self.batches = batches

        def __iter__(self):
            return iter(self.batches)

    model = small_cnn()
    recorder, direct = GradientFlowRecorder(), DirectFlow()
    fit(model, optim.SGD(model.named_parameters(), lr=0.01), NoLength(tiny_data()), 2,
        callbacks=[recorder, direct], progress=False, log=None)
    assert recorder.flow() == direct.per_epoch
    assert [r["step"] for r in recorder.records] == [2, 5]


def test_recorder_rejects_bad_arguments():
    with pytest.raises(ValueError, match="every must be"):
        GradientFlowRecorder(every="batch")
    with pytest.raises(ValueError, match="interval must be a positive int"):
        GradientFlowRecorder(every="step", interval=0)
    with pytest.raises(ValueError, match="statistic must be one of"):
        GradientFlowRecorder().flow("median")
