"""scripts/compare_runs.py: two chapter runs compared number by number, timings skipped."""
from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "scripts" / "compare_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results() -> dict:
    run = {"test_accuracy": 0.74, "history": [{"epoch": 0, "val_loss": 1.25, "time": 1.3}],
           "gradient_flow": [{"conv_0": 0.0586, "dense": 0.0024}], "wall_time_s": 5.8,
           "load_average": [0.5, 0.6, 0.7], "settings": {"dataset": {"name": "bundled", "source": "/a/b.npz"}}}
    return {"variants": {"vgg38": {"runs": {"0": run, "1": copy.deepcopy(run)}}}}


def _write(tmp_path: Path, name: str, results: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(results))
    return str(path)


def test_equal_runs_agree_whatever_their_timings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script, first, second = _script(), _results(), _results()
    for run in second["variants"]["vgg38"]["runs"].values():
        run["wall_time_s"], run["history"][0]["time"], run["load_average"] = 9.9, 7.7, [2.0, 2.0, 2.0]
        run["settings"]["dataset"]["source"] = "/elsewhere/b.npz"
    assert script.main([_write(tmp_path, "a.json", first), _write(tmp_path, "b.json", second)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 runs in both, 12 values compared; largest relative difference 0; 0 beyond 1e-09")


def test_a_differing_number_is_named_with_both_values(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script, first, second = _script(), _results(), _results()
    second["variants"]["vgg38"]["runs"]["1"]["gradient_flow"][0]["dense"] = 0.0025
    second["variants"]["vgg38"]["runs"]["0"]["history"][0]["val_loss"] = 1.25 * (1 + 1e-12)  # summation noise
    assert script.main([_write(tmp_path, "a.json", first), _write(tmp_path, "b.json", second)]) == 1
    out = capsys.readouterr().out
    assert "1 beyond 1e-09" in out
    assert "vgg38/1/gradient_flow[0]/dense: 0.0024 vs 0.0025 (relative difference 0.04)" in out
    assert "val_loss" not in out  # within the tolerance
    assert script.main([_write(tmp_path, "a.json", first), _write(tmp_path, "b.json", second), "--tolerance", "0.05"]) == 0


def test_a_key_only_one_run_has_or_a_changed_string_differs(tmp_path: Path) -> None:
    script, first, second = _script(), _results(), _results()
    del second["variants"]["vgg38"]["runs"]["0"]["test_accuracy"]
    second["variants"]["vgg38"]["runs"]["1"]["settings"]["dataset"]["name"] = "fashion-mnist"
    report = script.compare_runs(first, second)
    assert {key for _, key, _, _ in report["differences"]} == {"vgg38/0/test_accuracy", "vgg38/1/settings/dataset/name"}
    assert report["largest"] == float("inf")


def test_files_with_no_common_run_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script, first, second = _script(), _results(), _results()
    second["variants"] = {"other": second["variants"]["vgg38"]}
    assert script.main([_write(tmp_path, "a.json", first), _write(tmp_path, "b.json", second)]) == 1
    assert "share no (variant, seed) run" in capsys.readouterr().out


def test_a_committed_run_agrees_with_itself() -> None:
    path = str(ROOT / "docs" / "figures" / "06" / "results.json")
    report = _script().compare_runs(json.loads(Path(path).read_text()), json.loads(Path(path).read_text()))
    assert report["runs"] and report["compared"] > 1000 and report["largest"] == 0.0
