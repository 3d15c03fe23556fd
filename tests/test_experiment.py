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
        return [{"claim": "b beats a", "source": "a paper, Table 1", "paper": "yes", "ours": results["best"],
                 "verdict": "reproduced", "evidence": "test accuracy"}]

    results = _experiment([], aggregate=aggregate, claims=claims, paper={"a": {"paper test": 12.5}},
                          summarize=lambda r: f"best {r['best']}", table_file="tables.txt").main(
        ["--preset", "smoke", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["best"] == results["best"] == "a" and saved["paper"] == {"a": {"paper test": 12.5}}
    ledger = json.loads((tmp_path / "claims.json").read_text())
    assert ledger["chapter"] == "99" and ledger["claims"][0]["ours"] == "a"
    assert "| b beats a | a paper, Table 1 | yes | a | **reproduced** | test accuracy |" in (tmp_path / "claims.md").read_text()
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


def _reporting_experiment(calls: list) -> Experiment:
    def figures(results, out):
        path = out / "figure.txt"
        path.write_text(f"variants {sorted(results['variants'])}\n")
        return [path]

    def claims(results):
        best = max(results["variants"], key=lambda v: results["variants"][v]["test_accuracy"])
        return [{"claim": "b beats a", "source": "Table 1", "paper": "b", "ours": best,
                 "verdict": "reproduced" if best == "b" else "differs", "evidence": "test accuracy"}]

    def tables(results):
        rows = [{"variant": v, "acc": e["test_accuracy"]} for v, e in results["variants"].items()]
        return {"accuracy": md.experiment.markdown_table(rows)}

    return _experiment(calls, figures=figures, claims=claims, tables=tables, summarize=lambda r: "table")


def test_from_results_regenerates_figures_tables_and_ledger_without_training(tmp_path):
    calls = []
    _reporting_experiment(calls).main(["--preset", "smoke", "--out", str(tmp_path / "run")])
    ran = len(calls)
    again = tmp_path / "again"
    _reporting_experiment(calls).main(["--from-results", str(tmp_path / "run" / "results.json"), "--out", str(again)])
    assert len(calls) == ran, "--from-results trained"
    for name in ("figure.txt", "claims.json", "claims.md", "accuracy.md", "table.txt"):
        assert (again / name).read_bytes() == (tmp_path / "run" / name).read_bytes(), name
    assert (again / "accuracy.md").read_text().startswith("| variant | acc |\n| --- | ---: |\n| a | 0.5 |")


def test_from_results_refuses_a_missing_file_and_another_chapters_results(tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        _reporting_experiment([]).main(["--from-results", str(tmp_path / "none.json"), "--out", str(tmp_path)])
    (tmp_path / "other.json").write_text(json.dumps({"chapter": "01_autodiff", "variants": {}}))
    with pytest.raises(SystemExit, match="holds chapter '01_autodiff'"):
        _reporting_experiment([]).main(["--from-results", str(tmp_path / "other.json"), "--out", str(tmp_path)])


@pytest.mark.parametrize("entry, message", [
    ({"claim": "x", "source": "s", "paper": "p", "ours": "o", "verdict": "sort of", "evidence": "e"}, "verdict 'sort of'"),
    ({"claim": "x", "paper": "p", "ours": "o", "verdict": "differs"}, r"lacks \['source', 'evidence'\]"),
])
def test_a_ledger_entry_needs_every_field_and_an_honest_verdict(tmp_path, entry, message):
    experiment = _experiment([], claims=lambda results: [entry])
    with pytest.raises(ValueError, match=message):
        experiment.main(["--preset", "smoke", "--out", str(tmp_path)])


def test_markdown_table_escapes_pipes_and_aligns_numbers():
    table = md.experiment.markdown_table([{"name": "a|b", "value": 0.123456, "n": None}])
    assert table.splitlines() == ["| name | value | n |", "| --- | ---: | ---: |", "| a\\|b | 0.1235 | - |"]


def test_results_name_the_git_commit_of_the_code_that_ran(tmp_path, monkeypatch):
    """versions.git is `git describe --always --dirty` of the checkout; absent outside one."""
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from minideep import experiment  # noqa: PLC0415

    root = Path(experiment.__file__).resolve().parents[1]
    if not (root / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    want = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert experiment.versions()["git"] == want and len(want.split("-")[0]) >= 12
    monkeypatch.setattr(experiment, "__file__", str(tmp_path / "minideep" / "experiment.py"))  # an installed copy
    assert experiment.git_revision() is None and "git" not in experiment.versions()


def test_results_name_the_cpu_model(tmp_path, monkeypatch):
    """machine.cpu is /proc/cpuinfo's model name (the ratio to PyTorch depends on it); Python's guess without it."""
    import builtins  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from minideep import experiment  # noqa: PLC0415

    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        if names:
            assert experiment.machine()["cpu"] == names[0]
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma avx512f\n")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: real_open(fake if str(path) == "/proc/cpuinfo" else path, *a, **k))
    assert experiment.cpu_model() == "AMD EPYC"
    assert experiment.cpu_vector_units() == ["avx2", "fma", "avx512f"]

    def no_cpuinfo(path, *a, **k):
        if str(path) == "/proc/cpuinfo":
            raise FileNotFoundError(path)
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", no_cpuinfo)
    monkeypatch.setattr(experiment.platform, "processor", lambda: "arm")
    assert experiment.cpu_model() == "arm" and experiment.cpu_vector_units() == []
