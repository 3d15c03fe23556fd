"""Chapter 02 (the chain rule in deep plain nets): the smoke preset runs and shows the chapter's claims."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

CHAPTER = Path(__file__).resolve().parents[1] / "chapters" / "02_chain_rule.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_chapter():
    """The chapter script as a module (its file name starts with a digit, so no plain import)."""
    name = "chapter_02_chain_rule"
    spec = importlib.util.spec_from_file_location(name, CHAPTER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def chapter():
    return load_chapter()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One smoke run of every variant, as a student runs it: (results.json as read, out folder).

    A subprocess: the script exactly as a student runs it from the command line (the chapter
    runner calls md.set_num_threads, one BLAS thread, as every chapter does).
    """
    out = tmp_path_factory.mktemp("ch02")
    root = CHAPTER.parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(CHAPTER), "--preset", "smoke", "--out", str(out), "--no-progress"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "verdict at init" in done.stdout  # the table is printed
    return json.loads((out / "results.json").read_text()), out


def _deepest(results, variant, when="init"):
    depth = str(max(results["config"]["depths"]))
    return results["variants"][variant]["runs"]["0"]["depths"][depth][when]


def test_smoke_runs_every_activation_init_pair_at_every_depth(chapter, run):
    results, _ = run
    assert results["chapter"] == "02_chain_rule" and results["preset"] == "smoke"
    assert results["dataset"]["name"] == "bundled" and results["dataset"]["features"] == 784
    assert list(results["variants"]) == list(chapter.VARIANTS) and len(chapter.PAIRS) == 12
    for name in chapter.PAIRS:
        entry = results["variants"][name]
        run0 = entry["runs"]["0"]
        assert list(run0["depths"]) == [str(d) for d in results["config"]["depths"]]
        assert 0.0 <= entry["test_accuracy"] <= 1.0
        assert run0["history"] and all(math.isfinite(r["train_loss"]) for r in run0["history"])


def test_figures_and_table_are_written(run):
    results, out = run
    assert len(results["figures"]) == 6  # saturation, relu30 and the four chain-rule figures
    for name in results["figures"]:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    table = (out / "table.txt").read_text()
    assert "verdict at init" in table and "by depth" in table


def test_gradient_norm_is_the_output_norm_times_the_gains_above(chapter, run):
    results, _ = run
    for variant in chapter.PAIRS:
        report = _deepest(results, variant)["report"]
        norms, gains = report["grad_norms"], report["gains"]
        assert len(gains) == len(norms) - 1 == max(results["config"]["depths"]) + 1
        for l in range(len(norms)):
            assert norms[l] == pytest.approx(norms[-1] * math.prod(gains[l:]), rel=1e-9)
        assert report["identity_holds"]


def test_measured_relu_gains_match_the_variance_argument(chapter, run):
    results, _ = run
    for init in ("standard", "small", "glorot", "he"):
        measured = _deepest(results, f"relu_{init}")["median_hidden_gain"]
        predicted = chapter.predicted_gain("relu", init, results["config"]["width"])
        assert measured == pytest.approx(predicted, rel=0.2), init


def test_small_init_vanishes_for_every_activation_and_he_keeps_relu_stable(run):
    results, _ = run
    for activation in ("sigmoid", "tanh", "relu"):
        assert results["variants"][f"{activation}_small"]["runs"]["0"]["verdict_at_init"] == "vanish"
    assert results["variants"]["relu_he"]["runs"]["0"]["verdict_at_init"] == "stable"
    small, he = _deepest(results, "relu_small"), _deepest(results, "relu_he")
    assert small["ratio_first_to_last"] < 1e-3 < 0.5 < he["ratio_first_to_last"] < 2


def test_predicted_gain_formula(chapter):
    assert chapter.predicted_gain("relu", "he", 64) == pytest.approx(1.0)
    assert chapter.predicted_gain("tanh", "glorot", 100) == pytest.approx(1.0)
    assert chapter.predicted_gain("sigmoid", "glorot", 64) == pytest.approx(0.25)
    assert chapter.predicted_gain("relu", "small", 64) == pytest.approx(math.sqrt(64 * 1e-4 / 2))
    assert chapter.predicted_gain("tanh", "standard", 64) == pytest.approx(math.sqrt(1 / 3))
    assert chapter.predicted_gain(None, "he", 64, 10) == pytest.approx(math.sqrt(2))  # a Linear alone


def test_standard_init_is_glorot_and_bengios_uniform_with_zero_bias():
    import numpy as np

    import minideep as md
    from minideep import nn
    md.manual_seed(0)
    layer = nn.Linear(400, 300, init="standard_uniform", dtype=np.float64)
    w = layer.weight.data
    assert np.abs(w).max() <= 1 / 20 and np.abs(w).max() > 0.049  # U(-1/sqrt(400), 1/sqrt(400))
    assert w.var() == pytest.approx(1 / (3 * 400), rel=0.02)
    assert not np.any(layer.bias.data)


def _numbers(results):
    """Every variant's record without the wall times and load averages (the machine's state, not results):
    what must be the same bit for bit."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("wall_time_s", "load_average")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(results["variants"])


def test_the_same_command_gives_the_same_numbers_bit_for_bit(run, tmp_path):
    """A second smoke run of the same command: every recorded number identical (json floats are exact)."""
    results, _ = run
    root = CHAPTER.parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(CHAPTER), "--preset", "smoke", "--out", str(tmp_path), "--no-progress"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    again = json.loads((tmp_path / "results.json").read_text())
    assert _numbers(again) == _numbers(results)


def test_rounding_sensitivity_is_recorded(run):
    results, _ = run
    d = _deepest(results, "tanh_glorot", when="perturbed")
    assert d["eps"] == results["config"]["sensitivity_eps"] == 1e-14
    assert math.isfinite(d["ratio_first_to_last"]) and 0 <= d["test_accuracy"] <= 1


def test_block_table_has_the_variance_argument_as_theory(chapter, run):
    results, out = run
    depth = str(results["config"]["table_depth"])
    rows = results["variants"]["relu_he"]["runs"]["0"]["depths"][depth]["blocks"]["init"]
    assert [r["name"] for r in rows] == [f"layer{k}" for k in range(1, int(depth) + 1)] + ["output"]
    width = results["config"]["width"]
    assert rows[1]["predicted"] == pytest.approx(chapter.predicted_gain("relu", "he", width))
    assert rows[0]["predicted"] == pytest.approx(chapter.predicted_gain("relu", "he", 784, width))
    table = (out / "blocks_relu_he.md").read_text()
    assert table.startswith("| block |") and "theory" in table and "layer1" in table


def test_claims_are_computed_from_results(chapter, run):
    results, out = run
    ledger = json.loads((out / "claims.json").read_text())
    assert ledger["chapter"] == "02" and len(ledger["claims"]) == 7
    assert all(c["verdict"] in ("reproduced", "differs", "not run") for c in ledger["claims"])
    # Change the measurement, and the verdict follows it.
    import copy
    fake = copy.deepcopy(results)
    sat = fake["variants"]["saturation"]["runs"]["0"]["runs"]["sigmoid"]["records"]
    sat[:] = [{"step": k, "layers": [{"mean": 0.5, "std": 0.1, "p2": 0.3, "p98": 0.7}, {"mean": m, "std": 0.1,
               "p2": 0.0, "p98": 0.7}]} for k, m in enumerate([0.5, 0.01, 0.3])]
    verdicts = {c["claim"]: c["verdict"] for c in chapter.claims(fake)}
    assert [v for k, v in verdicts.items() if "toward 0" in k or "leaves" in k] == ["reproduced", "reproduced"]
    for rec in sat:
        rec["layers"][-1]["mean"] = 0.5
    verdicts = {c["claim"]: c["verdict"] for c in chapter.claims(fake)}
    assert [v for k, v in verdicts.items() if "toward 0" in k or "leaves" in k] == ["differs", "differs"]


COMMITTED = CHAPTER.parents[1] / "docs" / "figures" / "02"


def test_from_results_regenerates_the_committed_tables_and_ledger(tmp_path):
    """--from-results on the committed run: the same Markdown tables and ledger as the page includes."""
    root = CHAPTER.parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(CHAPTER), "--from-results", str(COMMITTED / "results.json"),
                           "--out", str(tmp_path)], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    made = sorted(p.name for p in tmp_path.glob("*.md"))
    assert "claims.md" in made and "summary.md" in made and "blocks_relu_he.md" in made
    for name in made:
        assert (tmp_path / name).read_text() == (COMMITTED / name).read_text(), name
    for name in json.loads((COMMITTED / "results.json").read_text())["figures"]:
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(("ratio", "loss", "expected"), [
    (1e-3, 2.3, "vanish"), (0.5, 2.3, "stable"), (50.0, 2.3, "explode"),
    (float("nan"), 2.3, "vanish"), (1.0, float("nan"), "diverged"),
])
def test_verdict(chapter, ratio, loss, expected):
    assert chapter.verdict({"ratio_first_to_last": ratio, "loss": loss}) == expected


def test_the_pages_settings_are_the_committed_runs():
    """The settings the page's prose names are those of the committed run (numbers are not retyped)."""
    results = json.loads((COMMITTED / "results.json").read_text())
    cfg, page = results["config"], (CHAPTER.parents[1] / "docs" / "chapters" / "02-chain-rule.md").read_text()
    assert results["preset"] == "quick" and (cfg["width"], cfg["steps"], cfg["batch_size"], cfg["lr"]) == (64, 200, 32, 0.05)
    assert cfg["depths"] == [2, 5, 10, 20, 50] and cfg["table_depth"] == 10
    sat, r30 = cfg["saturation"], cfg["relu30"]
    assert (sat["depth"], sat["width"], sat["steps"], sat["record_every"], sat["probe"], sat["batch"], sat["lr"]) == (
        4, 256, 3000, 100, 300, 10, 0.05)
    assert (r30["depth"], r30["width"], r30["steps"]) == (30, 64, 1000)
    for text in ("width 64", "200 SGD steps of batch 32 at learning rate 0.05", "Four hidden layers of 256 units",
                 "every 100 steps", "300 fixed test", "in 3,000 steps", "30-layer MLP of width 64 (1,000 SGD steps",
                 "depth-10 network", "1 + 10^{-14}"):
        assert text in page, text
    assert cfg["sensitivity_eps"] == 1e-14
    # "the chapter scripts ... run OpenBLAS's own choice, SkylakeX, where an earlier committed run had the
    # environment's Haswell pin": the kernel the committed run records (the time is the benchmarks page's to read)
    machine = results["machine"]
    assert machine["openblas_kernel"] == "SkylakeX" and "Haswell" in machine.get("openblas_pins_dropped", "")
    assert "run OpenBLAS's own\nchoice, SkylakeX" in page and "benchmarks page" in page


def test_the_paper_preset_is_glorot_and_bengios_setting(chapter):
    """MNIST (CIFAR-10 with --dataset cifar10), five hidden layers of 1,000 units among the depths, batches of 10."""
    paper = chapter.PRESETS["paper"]
    assert paper["dataset"] == "mnist" and paper["width"] == 1000 and 5 in paper["depths"]
    assert paper["batch_size"] == 10 and paper["saturation"]["width"] == 1000 and paper["relu30"]["depth"] == 30
