"""Highway gate analysis and lesioning: a lesioned layer is really bypassed, and put back."""
from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest

import minideep as md
from minideep import nn
from minideep.diagnostics import gate_analysis, lesion_kind, lesion_study, lesioned
from minideep.diagnostics.lesion import accuracy


def data(shape, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(np.float32), rng.integers(0, classes, shape[0])


def out(model, x) -> np.ndarray:
    with md.no_grad():
        return model(md.tensor(x)).numpy()


def highway_net(n: int = 4, seed: int = 0) -> nn.Sequential:
    md.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), *[nn.Highway(10, gate_bias=-1.0) for _ in range(n)],
                         nn.Linear(10, 3))


def without(model: nn.Sequential, drop: str) -> nn.Sequential:
    """The same network built without child ``drop``, sharing the remaining layers' weights."""
    return nn.Sequential(OrderedDict((name, m) for name, m in model.named_children() if name != drop))


def copy_without(model: nn.Sequential, drop: str, build) -> nn.Sequential:
    """A freshly built network without child ``drop``, the weights copied over by name."""
    fresh = build()
    kept = [name for name, _ in model.named_children() if name != drop]
    rename = {new: old for new, old in zip([n for n, _ in fresh.named_children()], kept)}
    source = model.state_dict()
    fresh.load_state_dict({key: source[rename[key.split(".", 1)[0]] + "." + key.split(".", 1)[1]]
                           for key in fresh.state_dict()})
    return fresh


# --- lesioning ----------------------------------------------------------------------------


def test_lesioned_highway_layer_equals_the_network_without_it():
    model = highway_net()
    x, _ = data((7, 6))
    smaller = copy_without(model, "3", lambda: highway_net(3, seed=5))
    assert not np.allclose(out(model, x), out(smaller, x))
    with lesioned(model, "3") as m:
        assert m is model and len(model[3]._forward_hooks) == 1  # the hook that shuts the gate
        np.testing.assert_array_equal(out(model, x), out(smaller, x))
    assert not model[3]._forward_hooks


def test_lesioned_residual_block_equals_the_network_without_it():
    md.manual_seed(3)
    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()),
                          nn.ResidualBlock(4, 4), nn.ResidualBlock(4, 4), nn.ResidualBlock(4, 4),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    x, _ = data((3, 3, 6, 6))
    assert lesion_kind(model[2]) == "residual"
    reference = without(model, "2")
    before = out(model, x)
    assert not np.allclose(before, out(reference, x))  # the block does change the output
    with lesioned(model, model[2]):
        np.testing.assert_allclose(out(model, x), out(reference, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out(model, x), before)


def test_lesioned_plain_layer_becomes_the_identity():
    md.manual_seed(4)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    x, _ = data((4, 5))
    with lesioned(model, "2"):
        np.testing.assert_array_equal(out(model, x), out(without(model, "2"), x))
    with pytest.raises(ValueError, match=r"lesioned: layer '0' maps \(4, 5\) to \(4, 8\)"):
        with lesioned(model, "0"):
            out(model, x)
    assert "forward" not in model[0].__dict__ and "forward" not in model[2].__dict__


def test_lesion_is_undone_after_an_exception_and_nests():
    model = highway_net()
    x, _ = data((3, 6))
    before = out(model, x)
    with pytest.raises(RuntimeError):
        with lesioned(model, "2", "4"):
            assert model[2]._forward_hooks and model[4]._forward_hooks
            raise RuntimeError("boom")
    assert not model[2]._forward_hooks and not model[4]._forward_hooks
    np.testing.assert_array_equal(out(model, x), before)
    with pytest.raises(ValueError, match="name at least one layer"):
        with lesioned(model):
            pass


def test_lesion_study_matches_each_lesion_by_hand():
    model = highway_net()
    model.train()
    x, y = data((40, 6))
    report = lesion_study(model, (x, y), batch_size=16)
    assert report.names == ["2", "3", "4", "5"] and report.kinds == ["gate"] * 4
    assert report.n_examples == 40
    assert report.baseline == accuracy(model, (x, y))[0]
    for name, acc in zip(report.names, report.accuracies):
        smaller = without(model, name)
        assert acc == pytest.approx(np.mean(out(smaller, x).argmax(axis=1) == y))
    assert all(m.training for m in model.modules())  # the mode it had
    assert json.loads(json.dumps(report.to_dict()))["names"] == report.names
    assert "gate" in report.table()


def test_lesion_study_on_a_plain_net_takes_the_shape_keeping_layers():
    md.manual_seed(4)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    x, y = data((10, 5), classes=2)
    batches = [(x[:5], y[:5]), (x[5:], y[5:])]
    report = lesion_study(model, batches)
    assert report.names == ["1", "2", "3"] and report.kinds == ["identity"] * 3
    explicit = lesion_study(model, (x, y), layers=[model[2]])
    assert explicit.names == ["2"] and explicit.accuracies == [report.accuracies[1]]


# --- gate analysis --------------------------------------------------------------------------


def test_gate_analysis_equals_direct_computation():
    model = highway_net(3)
    x, y = data((12, 6))
    report = gate_analysis(model, x, y, example=5)
    assert report.names == ["2", "3", "4"]
    h = md.tensor(x)
    with md.no_grad():
        h = model[1](model[0](h))
        for i, name in enumerate(report.names):
            layer = model[int(name)]
            t = md.nn.functional.sigmoid(layer.gate(h)).numpy()
            h = layer(h)
            np.testing.assert_allclose(report.mean_gate[i], t.mean(axis=0), rtol=1e-6)
            np.testing.assert_allclose(report.example_gate[i], t[5], rtol=1e-6)
            np.testing.assert_allclose(report.block_outputs[i], h.numpy()[5], rtol=1e-6)
            assert report.mean_activity[i] == pytest.approx(t.mean())
            assert report.closed_fraction[i] == pytest.approx((t < 0.1).mean())
            for label in np.unique(y):
                assert report.by_class[str(label)][i] == pytest.approx(t[y == label].mean())
    assert report.gate_bias_mean == [-1.0, -1.0, -1.0]
    assert np.shape(report.gate_biases) == (3, 10)
    assert all(not m._forward_hooks for m in model.modules())  # the gate hooks are gone
    json.dumps(report.to_dict())


def test_gate_analysis_of_conv_highway_averages_over_pixels():
    md.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), *[nn.HighwayConv2d(5) for _ in range(2)],
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3))
    x, _ = data((4, 3, 6, 6))
    report = gate_analysis(model, x)
    assert np.shape(report.mean_gate) == (2, 5) and np.shape(report.block_outputs) == (2, 5)
    assert report.by_class == {}
    with pytest.raises(ValueError, match="not highway layers"):
        gate_analysis(model, x, layers=["0"])
    with pytest.raises(ValueError, match="has no highway layers"):
        gate_analysis(nn.Sequential(nn.Linear(3, 3)), np.zeros((2, 3), dtype=np.float32))
