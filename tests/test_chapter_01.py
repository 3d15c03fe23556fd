"""Chapter 01 (reverse-mode autodiff): the smoke preset runs and its numbers are right."""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import pytest

CHAPTER = Path(__file__).resolve().parents[1] / "chapters" / "01_autodiff.py"


def load_chapter():
    """The chapter script as a module (its file name starts with a digit, so no plain import)."""
    spec = importlib.util.spec_from_file_location("chapter_01_autodiff", CHAPTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One smoke run of both variants: (results as returned, results.json as read, out folder)."""
    out = tmp_path_factory.mktemp("ch01")
    returned = load_chapter().EXPERIMENT.main(["--preset", "smoke", "--out", str(out)])
    return returned, json.loads((out / "results.json").read_text()), out


def test_smoke_writes_results_with_both_variants(run):
    returned, written, _ = run
    assert written["chapter"] == "01_autodiff" and written["preset"] == "smoke"
    assert set(written["variants"]) == {"expression", "mlp"}
    assert written["variants"].keys() == returned["variants"].keys()


def test_expression_gradients_match_the_hand_derivation(run):
    _, written, _ = run
    expr = written["variants"]["expression"]["runs"]["0"]
    a, b = expr["inputs"]["a"], expr["inputs"]["b"]
    u = a * b + math.tanh(a) + a / b
    # df/da = 2u (b + 1 - tanh(a)^2 + 1/b),  df/db = 2u (a - a/b^2)
    assert expr["value"] == pytest.approx(u**2, rel=1e-12)
    assert expr["gradients"]["a"] == pytest.approx(2 * u * (b + 1 - math.tanh(a) ** 2 + 1 / b), rel=1e-12)
    assert expr["gradients"]["b"] == pytest.approx(2 * u * (a - a / b**2), rel=1e-12)


@pytest.mark.parametrize("variant", ["expression", "mlp"])
def test_replay_finite_differences_and_gradcheck_agree(run, variant):
    _, written, _ = run
    result = written["variants"][variant]["runs"]["0"]
    assert result["replay_matches_engine"] is True
    assert result["gradcheck"] is True
    assert max(row["max_abs_error"] for row in result["finite_differences"].values()) < 1e-6


def test_expression_steps_follow_the_engine_order_and_sum_the_three_paths_into_a(run):
    _, written, _ = run
    steps = written["variants"]["expression"]["runs"]["0"]["steps"]
    assert steps[0]["node"] == "f = u^2" and steps[0]["grad"] == 1.0
    assert [s["op"] for s in steps[-2:]] == ["leaf", "leaf"]  # every op before the leaves
    into_a = [e["contribution"] for s in steps for e in s["edges"] if e["to"] == "a"]
    assert len(into_a) == 3  # a*b, tanh(a) and a/b
    leaf_a = next(s for s in steps if s["node"] == "a")
    assert leaf_a["grad"] == pytest.approx(sum(into_a), rel=1e-12)
    for step in steps:  # each local derivative times dL/d(node) is the contribution passed on
        for edge in step["edges"]:
            assert edge["contribution"] == pytest.approx(step["grad"] * edge["local_derivative"], rel=1e-12)


def test_graphs_are_written_as_dot_and_svg_when_graphviz_is_there(run):
    _, written, out = run
    for variant in ("expression", "mlp"):
        graph = written["variants"][variant]["runs"]["0"]["graph"]
        text = (out / graph["dot"]).read_text()
        assert text.startswith("digraph") and "requires_grad" in text
        if shutil.which("dot"):
            assert (out / graph["svg"]).read_text().lstrip().startswith(("<?xml", "<svg"))
    assert set(written["figures"]) >= {"expression_graph.dot", "mlp_graph.dot"}
    assert (out / "table.txt").read_text().count("passed") == 2


def test_resume_skips_finished_variants(run, capsys):
    _, _, out = run
    load_chapter().EXPERIMENT.main(["--preset", "smoke", "--out", str(out), "--resume"])
    printed = capsys.readouterr().out
    assert "expression seed 0: finished earlier, skipped" in printed
    assert "mlp seed 0: finished earlier, skipped" in printed
