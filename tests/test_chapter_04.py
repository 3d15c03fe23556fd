"""Chapter 04 (highway networks): the models, the smoke preset, resume, and the quick-preset check script."""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

import minideep as md
from minideep import nn
from minideep.diagnostics import lesioned
from minideep.models.highway import (
    CeilMaxPool2d, ConvHighwayNet, HighwayMLP, PlainMLP, ceil_pool_size, gate_bias_for_depth,
)

ROOT = Path(__file__).resolve().parents[1]


def load(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def n_params(module) -> int:
    return sum(p.size for _, p in module.named_parameters())


# ---------------------------------------------------------------------------- the models


def test_plain_and_highway_hidden_layers_have_the_papers_five_thousand_parameters():
    plain, highway = PlainMLP(3), HighwayMLP(3)
    assert n_params(plain.layers[2]) == 71 * 71 + 71 == 5112
    assert n_params(highway.layers[2]) == 2 * (50 * 50 + 50) == 5100


@pytest.mark.parametrize("depth", [1, 10, 50])
def test_mlps_have_depth_hidden_layers_and_depth_minus_one_highway_layers(depth):
    plain, highway = PlainMLP(depth), HighwayMLP(depth)
    x = md.tensor(np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32))
    assert plain(x).shape == highway(x).shape == (4, 10)
    assert len(plain.layers) == len(highway.layers) == depth + 1  # flatten + the hidden layers
    assert len(highway.highways) == depth - 1


@pytest.mark.parametrize("depth, bias", [(1, -1.0), (10, -1.0), (11, -2.0), (20, -2.0), (50, -3.0), (100, -3.0)])
def test_gate_bias_follows_the_papers_guideline_by_depth(depth, bias):
    assert gate_bias_for_depth(depth) == bias
    if depth > 1:
        assert all(float(h.gate.bias.data[0]) == bias for h in HighwayMLP(depth).highways)


def test_bad_depth_names_the_model():
    with pytest.raises(ValueError, match="HighwayMLP: depth"):
        HighwayMLP(0)
    with pytest.raises(ValueError, match="PlainMLP: depth"):
        PlainMLP(2.5)
    with pytest.raises(ValueError, match="gate_bias_for_depth"):
        gate_bias_for_depth(-3)


def test_shut_gates_make_the_highway_stack_carry_the_entry_layers_output():
    md.manual_seed(0)
    net = HighwayMLP(6, width=8, in_features=12, gate_bias=-60.0)  # sigmoid(-60) ~ 1e-26: every gate shut
    x = md.tensor(np.random.default_rng(1).standard_normal((5, 12)))
    entry = net.layers[1](net.layers[0](x))
    np.testing.assert_allclose(net.layers(x).data, entry.data, rtol=1e-6, atol=1e-12)


def test_lesioning_every_highway_layer_leaves_the_plain_entry_and_classifier():
    md.manual_seed(0)
    net = HighwayMLP(5, width=8, in_features=12)
    x = md.tensor(np.random.default_rng(1).standard_normal((3, 12)))
    with lesioned(net, *[f"layers.{i}" for i in range(2, 6)]):
        out = net(x)
    np.testing.assert_allclose(out.data, net.classifier(net.layers[1](x)).data, rtol=1e-6)


def test_highway_mlp_gradient_matches_finite_differences():
    md.manual_seed(0)
    net = HighwayMLP(4, width=5, in_features=6, num_classes=3, activation="tanh").double()
    x = md.tensor(np.random.default_rng(2).standard_normal((2, 6)), requires_grad=True)
    assert md.gradcheck(lambda t: net(t), [x])


@pytest.mark.parametrize("width, count", [(16, 38_986), (32, 151_690)])
def test_conv_highway_net_has_the_official_topologys_parameter_count(width, count):
    net = ConvHighwayNet(width)
    assert net.num_parameters() == count
    assert net.feature_size == 3 and len(net.highways) == 8


def test_conv_highway_net_forward_shape_and_gates_start_at_minus_one():
    md.manual_seed(0)
    net = ConvHighwayNet(4)
    net.eval()
    x = md.tensor(np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32))
    assert net(x).shape == (2, 10)
    assert all(np.all(h.gate.bias.data == -1.0) for h in net.highways)


@pytest.mark.parametrize("size, kernel, stride, expected", [(24, 3, 2, 12), (12, 3, 2, 6), (6, 2, 2, 3), (7, 2, 2, 4)])
def test_ceil_pool_size_rounds_up_like_caffe(size, kernel, stride, expected):
    assert ceil_pool_size(size, kernel, stride) == expected


def test_ceil_max_pool_matches_torch_ceil_mode():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 24, 24))  # negative values: the padding must be -inf
    for kernel, stride in ((3, 2), (2, 2)):
        ours = CeilMaxPool2d(kernel, stride)(md.tensor(x)).data
        theirs = torch.nn.functional.max_pool2d(torch.tensor(x), kernel, stride, ceil_mode=True).numpy()
        np.testing.assert_allclose(ours, theirs)


def test_ceil_max_pool_gradient_matches_finite_differences():
    x = md.tensor(np.random.default_rng(3).standard_normal((1, 2, 7, 7)), requires_grad=True)
    assert md.gradcheck(lambda t: CeilMaxPool2d(3, 2)(t), [x])


# ---------------------------------------------------------------------------- the chapter


def test_smoke_preset_runs_and_writes_results_and_figures(tmp_path):
    pytest.importorskip("matplotlib")
    chapter = load("chapter_04", "chapters/04_highway.py")
    chapter.EXPERIMENT.main(["--preset", "smoke", "--out", str(tmp_path), "--no-progress"])
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["variants"]) == {"plain_10", "highway_10", "conv_highway_16"}
    assert results["dataset"]["name"] == "bundled"
    for name in ("plain_10", "highway_10"):
        run = results["variants"][name]["runs"]["0"]
        assert [t["lr"] for t in run["search"]] == results["config"]["lrs"]
        assert math.isfinite(run["loss_at_init"]) and math.isfinite(run["final_train_loss"])
        chain = run["chain_rule_at_init"]
        assert chain["identity_holds"] and len(chain["grad_norms"]) == 10 + 3  # input, flatten, 10 layers, classifier
    highway = results["variants"]["highway_10"]["runs"]["0"]
    assert highway["gate_bias_init"] == -1.0
    analysis = highway["analysis"]
    assert len(analysis["gates"]["mean_gate"]) == 9 and len(analysis["gates"]["mean_gate"][0]) == 50
    assert analysis["lesion_test"]["names"] == [f"layers.{i}" for i in range(2, 11)]
    conv = results["variants"]["conv_highway_16"]["runs"]["0"]
    assert conv["parameters"] == conv["paper_parameters"] == 38_986
    for figure in results["figures"]:
        assert (tmp_path / figure).stat().st_size > 1000
    assert {"depth_curves.png", "gates.png", "gates_by_class.png", "lesion_test.png",
            "chain_rule_depth10.png", "gradient_flow_depth10.png"} <= set(results["figures"])
    table = (tmp_path / "table.txt").read_text()
    assert "highway_10" in table and "151690" in table


def test_interrupted_run_resumes_without_redoing_finished_variants(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    chapter = load("chapter_04", "chapters/04_highway.py")
    real_run = chapter.EXPERIMENT.run_variant
    calls = []

    def interrupted(ctx):
        calls.append(ctx.variant)
        if ctx.variant == "highway_10":
            raise KeyboardInterrupt  # Ctrl-C during the second variant
        return real_run(ctx)

    args = ["--preset", "smoke", "--out", str(tmp_path), "--no-progress", "--variants", "plain_10", "highway_10"]
    monkeypatch.setattr(chapter.EXPERIMENT, "run_variant", interrupted)
    with pytest.raises(KeyboardInterrupt):
        chapter.EXPERIMENT.main(args)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert list(saved["variants"]) == ["plain_10"]

    calls.clear()
    monkeypatch.setattr(chapter.EXPERIMENT, "run_variant", lambda ctx: calls.append(ctx.variant) or real_run(ctx))
    chapter.EXPERIMENT.main(args + ["--resume"])
    assert calls == ["highway_10"]
    resumed = json.loads((tmp_path / "results.json").read_text())
    assert resumed["variants"]["plain_10"] == saved["variants"]["plain_10"]


def test_a_diverging_learning_rate_is_recorded_and_skipped(tmp_path, monkeypatch):
    chapter = load("chapter_04", "chapters/04_highway.py")
    from minideep.train import TrainingDiverged

    real = chapter.train_classifier

    def diverge_at_high_rates(model, data, **kw):
        if kw["lr"] > 0.05:
            raise TrainingDiverged("fit: training diverged: the training loss is nan; stopped", 0, 1, math.nan, None)
        return real(model, data, **kw)

    monkeypatch.setattr(chapter, "train_classifier", diverge_at_high_rates)
    monkeypatch.setitem(chapter.PRESETS["smoke"], "lrs", [0.01, 0.1])
    chapter.EXPERIMENT.main(["--preset", "smoke", "--out", str(tmp_path), "--no-progress", "--variants", "plain_10"])
    run = json.loads((tmp_path / "results.json").read_text())["variants"]["plain_10"]["runs"]["0"]
    assert [t["diverged"] for t in run["search"]] == [False, True]
    assert run["best"]["lr"] == 0.01


# ---------------------------------------------------------------------------- the check script


def quick_like_results(plain_final: float, highway_final: float) -> dict:
    def mlp(family, depth, final, ratio):
        gates = {"mean_gate": [[0.1] * 3] * (depth - 1)}
        lesion = {"accuracies": [0.8] * (depth - 1), "baseline": 0.8}
        run = {"family": family, "depth": depth, "init": "glorot_uniform", "loss_at_init": 2.3,
               "final_train_loss": final, "chain_rule_at_init": {"products": [ratio]}, "wall_time_s": 10.0}
        if family == "highway" and depth == 50:
            run["analysis"] = {"gates": gates, "lesion_test": lesion}
        return {"runs": {"0": run}}

    return {"preset": "quick", "variants": {
        "plain_10": mlp("plain", 10, 0.5, 0.05), "plain_50": mlp("plain", 50, plain_final, 1e-8),
        "highway_10": mlp("highway", 10, 0.3, 0.1), "highway_50": mlp("highway", 50, highway_final, 0.1),
    }}


def test_check_script_passes_when_plain_stalls_and_highway_trains():
    check = load("check_chapter_04", "scripts/check_chapter_04.py")
    outcomes = check.check(quick_like_results(plain_final=2.30, highway_final=0.32))
    assert all(ok for _, ok, _ in outcomes), [o for o in outcomes if not o[1]]


def test_check_script_fails_when_the_deep_plain_net_trains_too():
    check = load("check_chapter_04", "scripts/check_chapter_04.py")
    outcomes = dict((claim, ok) for claim, ok, _ in check.check(quick_like_results(plain_final=0.4, highway_final=0.32)))
    assert outcomes["plain_50 fails to reduce the training loss (final > 0.9 x init)"] is False
