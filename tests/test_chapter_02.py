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
    assert list(results["variants"]) == list(chapter.VARIANTS) and len(chapter.VARIANTS) == 9
    for entry in results["variants"].values():
        run0 = entry["runs"]["0"]
        assert list(run0["depths"]) == [str(d) for d in results["config"]["depths"]]
        assert 0.0 <= entry["test_accuracy"] <= 1.0
        assert run0["history"] and all(math.isfinite(r["train_loss"]) for r in run0["history"])


def test_figures_and_table_are_written(run):
    results, out = run
    assert len(results["figures"]) == 4
    for name in results["figures"]:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    table = (out / "table.txt").read_text()
    assert "verdict at init" in table and "by depth" in table


def test_gradient_norm_is_the_output_norm_times_the_gains_above(run):
    results, _ = run
    for variant in results["variants"]:
        report = _deepest(results, variant)["report"]
        norms, gains = report["grad_norms"], report["gains"]
        assert len(gains) == len(norms) - 1 == max(results["config"]["depths"]) + 1
        for l in range(len(norms)):
            assert norms[l] == pytest.approx(norms[-1] * math.prod(gains[l:]), rel=1e-9)
        assert report["identity_holds"]


def test_measured_relu_gains_match_the_variance_argument(chapter, run):
    results, _ = run
    for init in ("small", "glorot", "he"):
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


@pytest.mark.parametrize(("ratio", "loss", "expected"), [
    (1e-3, 2.3, "vanish"), (0.5, 2.3, "stable"), (50.0, 2.3, "explode"),
    (float("nan"), 2.3, "vanish"), (1.0, float("nan"), "diverged"),
])
def test_verdict(chapter, ratio, loss, expected):
    assert chapter.verdict({"ratio_first_to_last": ratio, "loss": loss}) == expected
