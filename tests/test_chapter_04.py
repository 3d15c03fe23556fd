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
    assert set(results["variants"]) == {"plain_10", "highway_10", "highway_50_analysis", "conv_highway_16",
                                        "best_highway_analysis"}
    assert results["dataset"]["name"] == "bundled"
    for name in ("plain_10", "highway_10"):
        run = results["variants"][name]["runs"]["0"]
        family = VARIANTS_FAMILY[name]
        expected = chapter.search_trials(family, 10, results["config"]["trials"], results["config"]["search_seed"])
        assert [{k: t[k] for k in expected[0]} for t in run["search"]] == expected  # the seeded search ran
        assert run["search_summary"]["trials"] == len(expected)
        assert math.isfinite(run["loss_at_init"]) and math.isfinite(run["final_train_loss"])
        assert run["search_summary"]["best"] == min(t["final_train_loss"] for t in run["search"])
        chain = run["chain_rule_at_init"]
        assert chain["identity_holds"] and len(chain["grad_norms"]) == 10 + 3  # input, flatten, 10 layers, classifier
    highway = results["variants"]["highway_10"]["runs"]["0"]
    assert highway["gate_bias_init"] == highway["best"]["gate_bias"] and -10 <= highway["gate_bias_init"] <= -1
    assert highway["longer"]["epochs"] == results["config"]["long_epochs"]  # the budget check ran
    # The per-block table: the gate theory on every highway layer, none on the plain entry layer.
    blocks = results["variants"]["highway_50_analysis"]["runs"]["0"]["blocks_at_init"]
    predicted = [r["predicted"] for r in blocks if r["kind"] == "Highway"]
    assert len(predicted) == 49 and all(0 < v < 1 for v in predicted)
    t = 1 / (1 + math.exp(2.0))  # b_T = -2, tanh: sqrt((1 - t)^2 + t^2)
    assert predicted[0] == pytest.approx(math.sqrt((1 - t) ** 2 + t ** 2))
    # The paper's analysis net: tanh, b_T = -2; the best searched one: the search's best trial, retrained.
    paper_net = results["variants"]["highway_50_analysis"]["runs"]["0"]
    assert paper_net["best"]["activation"] == "tanh" and paper_net["gate_bias_init"] == -2.0
    best = results["variants"]["best_highway_analysis"]["runs"]["0"]
    assert {k: best["best"][k] for k in highway["best"]} == highway["best"]
    analysis = best["analysis"]
    assert len(analysis["gates"]["mean_gate"]) == 9 and len(analysis["gates"]["mean_gate"][0]) == 50
    stats = analysis["gate_statistics"]
    assert len(stats["active_on_average"]) == len(stats["active_per_example"]) == 9
    assert all(0 <= v <= 1 for v in stats["active_on_average"] + stats["active_per_example"])
    assert analysis["lesion_test"]["names"] == [f"layers.{i}" for i in range(2, 11)]
    lesion = analysis["lesion_train"]
    assert lesion["n_examples"] == results["dataset"]["n_train"] and len(lesion["loss"]) == 9
    conv = results["variants"]["conv_highway_16"]["runs"]["0"]
    assert conv["parameters"] == conv["paper_parameters"] == 38_986
    for figure in results["figures"]:
        assert (tmp_path / figure).stat().st_size > 1000
    assert {"depth_curves.png", "search.png", "budget.png", "gates.png", "gate_statistics.png", "routing.png",
            "lesion_train.png", "lesion_test.png", "chain_rule_depth10.png", "gradient_flow_depth10.png",
            "gates_paper_config.png"} <= set(results["figures"])
    for name in ("claims.md", "search.md", "budget.md", "analysis.md", "blocks_highway_50_analysis_at_init.md",
                 "conv_mnist.md", "conv_cifar.md"):
        assert (tmp_path / name).read_text().startswith("| ")
    table = (tmp_path / "table.txt").read_text()
    assert "highway_10" in table


VARIANTS_FAMILY = {"plain_10": "plain", "highway_10": "highway"}


def test_random_search_is_reproducible_from_its_seed_and_stays_in_its_ranges():
    chapter = load("chapter_04", "chapters/04_highway.py")
    a = chapter.search_trials("highway", 50, 20, 2015)
    assert a == chapter.search_trials("highway", 50, 20, 2015)
    assert a != chapter.search_trials("highway", 50, 20, 2016)
    assert a != chapter.search_trials("highway", 100, 20, 2015)  # every network has its own trials
    space = chapter.SEARCH_SPACE
    for t in a:
        assert space["lr"][0] <= t["lr"] <= space["lr"][1]
        assert 1 - space["one_minus_momentum"][1] <= t["momentum"] <= 1 - space["one_minus_momentum"][0]
        assert space["lr_decay"][0] <= t["lr_decay"] <= space["lr_decay"][1]
        assert -10 <= t["gate_bias"] <= -1 and t["activation"] in ("relu", "tanh")
    plain = chapter.search_trials("plain", 50, 20, 2015)
    assert all("gate_bias" not in t for t in plain)
    assert {t["activation"] for t in a} == {"relu", "tanh"}
    assert chapter.PRESETS["paper"]["trials"] == 100 and chapter.PRESETS["paper"]["top_k"] == 10


def test_search_summary_reports_best_and_the_mean_of_the_best_k():
    chapter = load("chapter_04", "chapters/04_highway.py")
    search = [{"final_train_loss": v, "diverged": not math.isfinite(v)} for v in (0.5, math.inf, 0.1, 0.3, 2.0)]
    s = chapter.search_summary(search, 3)
    assert s["best"] == 0.1 and s["top_k_mean"] == pytest.approx(0.3) and s["diverged"] == 1
    s = chapter.search_summary(search, 5)
    assert s["top_k_mean"] is None and s["top_k_mean_finite"] == pytest.approx(0.725)


def test_conv_highway_cifar_net_has_the_official_parameter_count():
    from minideep.models.highway import ConvHighwayCIFAR
    net = ConvHighwayCIFAR(10)
    assert net.num_parameters() == 2_256_838  # the paper's "~2.3M" (Highway B / Table 3)
    assert ConvHighwayCIFAR(100).num_parameters() == 2_265_928
    assert len(net.highways) == 14 and all(float(h.gate.bias.numpy().mean()) == -2.0 for h in net.highways)
    net.eval()
    out = net(md.tensor(np.random.default_rng(0).random((2, 3, 32, 32)).astype(np.float32)))
    assert out.shape == (2, 10)


def test_lesioning_on_the_training_set_reports_cross_entropy_and_matches_lesion_study():
    chapter = load("chapter_04", "chapters/04_highway.py")
    from minideep.diagnostics import lesion_study
    md.manual_seed(0)
    net = HighwayMLP(5, width=6, in_features=4, num_classes=3)
    x = md.tensor(np.random.default_rng(1).standard_normal((30, 4)).astype(np.float32))
    y = np.random.default_rng(2).integers(0, 3, 30)
    ours = chapter.lesion_cross_entropy(net, x, y)
    theirs = lesion_study(net, (x, y))
    assert ours["names"] == theirs.names and ours["accuracy"] == pytest.approx(theirs.accuracies)
    assert ours["baseline_accuracy"] == pytest.approx(theirs.baseline)
    # The intact loss is the network's cross-entropy; a lesioned layer changes it.
    with md.no_grad():
        intact = float(md.ops.loss.cross_entropy(net(x), y).item())
    assert ours["baseline_loss"] == pytest.approx(intact, rel=1e-5)
    assert any(abs(v - intact) > 1e-6 for v in ours["loss"])


def test_gate_statistics_both_ways_and_routing_are_consistent():
    chapter = load("chapter_04", "chapters/04_highway.py")
    md.manual_seed(0)
    net = HighwayMLP(4, width=5, in_features=3, num_classes=2, gate_bias=0.0)
    x = md.tensor(np.random.default_rng(3).standard_normal((40, 3)).astype(np.float32))
    y = np.arange(40) % 2
    st = chapter.gate_statistics(net, x, y)
    assert len(st["active_on_average"]) == 3 and len(st["routing"]) == 2
    # Equal class sizes: the class means average to the overall mean, so the routing maps cancel.
    total = np.asarray(st["routing"]["0"]) + np.asarray(st["routing"]["1"])
    np.testing.assert_allclose(total, 0, atol=2e-4)


def test_a_diverging_trial_is_recorded_and_skipped(tmp_path, monkeypatch):
    chapter = load("chapter_04", "chapters/04_highway.py")
    from minideep.train import TrainingDiverged

    real = chapter.train_classifier
    trials = chapter.search_trials("plain", 10, chapter.PRESETS["smoke"]["trials"], chapter.PRESETS["smoke"]["search_seed"])
    cut = min(t["lr"] for t in trials) * 1.0001  # every trial but the slowest diverges

    def diverge_at_high_rates(model, data, **kw):
        if kw["lr"] > cut:
            raise TrainingDiverged("fit: training diverged: the training loss is nan; stopped", 0, 1, math.nan, None)
        return real(model, data, **kw)

    monkeypatch.setattr(chapter, "train_classifier", diverge_at_high_rates)
    chapter.EXPERIMENT.main(["--preset", "smoke", "--out", str(tmp_path), "--no-progress", "--variants", "plain_10"])
    run = json.loads((tmp_path / "results.json").read_text())["variants"]["plain_10"]["runs"]["0"]
    assert [t["diverged"] for t in run["search"]] == [t["lr"] > cut for t in trials]
    assert run["best"]["lr"] < cut and run["search_summary"]["diverged"] == len(trials) - 1


# ---------------------------------------------------------------------------- the committed run


COMMITTED = ROOT / "docs" / "figures" / "04" / "results.json"


def test_from_results_regenerates_the_committed_run_s_figures_tables_and_ledger(tmp_path):
    pytest.importorskip("matplotlib")
    chapter = load("chapter_04", "chapters/04_highway.py")
    chapter.EXPERIMENT.main(["--from-results", str(COMMITTED), "--out", str(tmp_path)])
    committed = COMMITTED.parent
    for name in ("claims.md", "search.md", "budget.md", "analysis.md", "conv_cifar.md"):
        assert (tmp_path / name).read_text() == (committed / name).read_text(), name
    results = json.loads(COMMITTED.read_text())
    for figure in results["figures"]:
        assert (tmp_path / figure).stat().st_size > 1000
    ledger = json.loads((tmp_path / "claims.json").read_text())
    assert ledger["claims"] == json.loads((committed / "claims.json").read_text())["claims"]


def test_ledger_verdicts_are_computed_from_the_results():
    chapter = load("chapter_04", "chapters/04_highway.py")
    results = json.loads(COMMITTED.read_text())
    claims = {c["claim"]: c for c in chapter.claims(results)}
    key = "highway-100 is more than 100x better than plain-100"
    run = lambda name: results["variants"][name]["runs"]["0"]  # noqa: E731
    if key in claims and claims[key]["verdict"] != "not run":
        run("plain_100")["search_summary"]["best"] = 1000 * run("highway_100")["search_summary"]["best"]
        assert {c["claim"]: c for c in chapter.claims(results)}[key]["verdict"] == "reproduced"
        run("plain_100")["search_summary"]["best"] = run("highway_100")["search_summary"]["best"]
        assert {c["claim"]: c for c in chapter.claims(results)}[key]["verdict"] == "differs"
    biases = "Most transform-gate biases decreased further during training"
    best = run("best_highway_analysis")
    best["gate_bias_trained_mean"] = best["gate_bias_init"] - 1
    assert {c["claim"]: c for c in chapter.claims(results)}[biases]["verdict"] == "reproduced"
    best["gate_bias_trained_mean"] = best["gate_bias_init"] + 1
    assert {c["claim"]: c for c in chapter.claims(results)}[biases]["verdict"] == "differs"
    assert all(c["verdict"] in ("reproduced", "differs", "not run") for c in claims.values())


def test_check_script_prints_the_ledger_of_the_committed_run(capsys):
    check = load("check_chapter_04", "scripts/check_chapter_04.py")
    assert check.main([str(COMMITTED)]) == 0
    out = capsys.readouterr().out
    assert "reproduced" in out and "Most transform gates are active on average" in out


def test_page_sentences_on_the_search_agree_with_the_committed_run():
    """The prose of docs/chapters/04-highway.md about the search and the budget, checked against results.json."""
    results = json.loads(COMMITTED.read_text())
    v = {name: entry["runs"]["0"] for name, entry in results["variants"].items()}
    page = (ROOT / "docs" / "chapters" / "04-highway.md").read_text()
    assert results["config"]["trials"] == 40 and "with forty\nrandom trials" in page
    # "the plain nets' best training loss rises at every depth step and their best trials all picked tanh"
    plain = [v[f"plain_{d}"] for d in (10, 50, 100)]
    assert plain[0]["search_summary"]["best"] < plain[1]["search_summary"]["best"] < plain[2]["search_summary"]["best"]
    assert all(p["best"]["activation"] == "tanh" for p in plain)
    # "The highway nets' best five-epoch losses, and the means of their best ten, are the same at 10, 50 and 100
    # layers to within a few percent"
    for key in ("best", "top_k_mean"):
        values = [v[f"highway_{d}"]["search_summary"][key] for d in (10, 50, 100)]
        assert max(values) / min(values) < 1.05, (key, values)
    # "gate biases more negative than the paper's guideline of -1 to -3 at every depth"
    assert all(v[f"highway_{d}"]["best"]["gate_bias"] < -3 for d in (10, 50, 100))
    # "trained four times longer, both fall a long way, the 10-layer net further, and the two stay within the
    # ledger's factor of two"
    short = {d: v[f"highway_{d}"]["final_train_loss"] for d in (10, 100)}
    long = {d: v[f"highway_{d}"]["longer"]["final_train_loss"] for d in (10, 100)}
    assert all(long[d] < 0.7 * short[d] for d in (10, 100)) and long[10] < long[100] < 2 * long[10]
    # "every 100-layer trial with b_T above -3 stays at the uniform guess ln 10"
    high = [t for t in v["highway_100"]["search"] if t["gate_bias"] > -3]
    assert high and all(abs(t["final_train_loss"] - np.log(10)) < 0.01 for t in high)
