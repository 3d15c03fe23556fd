"""minideep.experiment.Experiment: the one chapter runner's hooks (grid, aggregate, claims, paper, tail)."""
import json

import pytest

import minideep as md
from minideep import backend
from minideep.experiment import Experiment, RunContext


@pytest.fixture(autouse=True)
def restore_threads():
    saved = backend._num_threads
    yield
    backend._num_threads = saved


def _grid(preset: str, config: dict, groups: list[str]) -> dict[str, dict]:
    """Two groups that share one configuration (lr=0.1), as chapter 07's tables share cells."""
    cells = {"a": [0.1, 0.2], "b": [0.1, 0.3]}
    return {f"lr={lr}": {"lr": lr} for g in groups for lr in cells[g]}


def _experiment(calls: list, **fields) -> Experiment:
    def run_variant(ctx: RunContext) -> dict:
        calls.append((ctx.variant, ctx.seed, dict(ctx.configuration)))
        return {"test_accuracy": ctx.configuration.get("lr", 0.5) + ctx.seed / 100}

    base = dict(chapter="99_test", description="test", presets={p: {"x": 1} for p in ("smoke", "quick", "paper")},
                variants=["a", "b"], run_variant=run_variant)
    return Experiment(**{**base, **fields})


def test_a_configuration_grid_runs_each_shared_cell_once_per_seed(tmp_path):
    calls = []
    results = _experiment(calls, configurations=_grid, variant_flags=("--tables",)).main(
        ["--preset", "smoke", "--out", str(tmp_path), "--tables", "all", "--seeds", "0", "1"])
    assert [c[:2] for c in calls] == [("lr=0.1", 0), ("lr=0.1", 1), ("lr=0.2", 0), ("lr=0.2", 1),
                                      ("lr=0.3", 0), ("lr=0.3", 1)]
    assert calls[0][2] == {"lr": 0.1}
    assert results["variants"]["lr=0.2"]["config"] == {"lr": 0.2}
    assert results["variants"]["lr=0.2"]["test_accuracy"] == pytest.approx(0.205)
    assert results["selected"] == ["a", "b"] and results["sweep"]["ran"] == 6


def test_resume_skips_finished_cells_and_counts_them(tmp_path):
    calls = []
    args = ["--preset", "smoke", "--out", str(tmp_path), "--variants", "a"]
    _experiment(calls, configurations=_grid).main(args)
    again = _experiment(calls, configurations=_grid).main(["--preset", "smoke", "--out", str(tmp_path),
                                                           "--variants", "a", "b", "--resume"])
    assert [c[0] for c in calls] == ["lr=0.1", "lr=0.2", "lr=0.3"]
    assert again["sweep"]["skipped"] == 2 and again["sweep"]["ran"] == 1


def test_aggregate_claims_paper_and_the_table_file(tmp_path):
    def aggregate(results):
        results["best"] = max(results["variants"], key=lambda v: results["variants"][v]["test_accuracy"])

    def claims(results):
        return [{"claim": "b beats a", "paper": "yes", "ours": results["best"], "verdict": "reproduced"}]

    results = _experiment([], aggregate=aggregate, claims=claims, paper={"a": {"paper test": 12.5}},
                          summarize=lambda r: f"best {r['best']}", table_file="tables.txt").main(
        ["--preset", "smoke", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["best"] == results["best"] == "a" and saved["paper"] == {"a": {"paper test": 12.5}}
    ledger = json.loads((tmp_path / "claims.json").read_text())
    assert ledger["chapter"] == "99_test" and ledger["claims"][0]["ours"] == "a"
    assert (tmp_path / "tables.txt").read_text() == "best a\n"


def test_the_runner_sets_the_threads_explicitly(tmp_path):
    _experiment([]).main(["--preset", "smoke", "--out", str(tmp_path), "--threads", "3"])
    assert md.get_num_threads() == 3


def test_script_runs_main_only_as_a_script(tmp_path, monkeypatch):
    calls = []
    experiment = _experiment(calls)
    assert experiment.script("chapter_module") is experiment and calls == []
    monkeypatch.setattr("sys.argv", ["99_test.py", "--preset", "smoke", "--out", str(tmp_path)])
    experiment.script("__main__")
    assert [c[0] for c in calls] == ["a", "b"]
