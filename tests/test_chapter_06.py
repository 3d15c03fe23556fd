"""Chapter 06 (init x BN x architecture): the smoke preset runs the whole grid, writes results, resumes."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minideep.data import load_dataset

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]


def load_chapter():
    spec = importlib.util.spec_from_file_location("chapter_06", ROOT / "chapters" / "06_init_bn_arch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_grid_is_two_architectures_by_bn_by_two_inits():
    chapter = load_chapter()
    assert len(chapter.VARIANTS) == 8
    assert set(chapter.VARIANTS.values()) == {(a, bn, i) for a in ("tinyyolo", "resnet26")
                                              for bn in (True, False) for i in ("he", "glorot")}
    # Three runs of every combination unless --seeds says otherwise (one in the smoke preset).
    assert chapter.EXPERIMENT.default_seeds == {"smoke": [0], "quick": [0, 1, 2], "paper": [0, 1, 2]}
    paper = chapter.PRESETS["paper"]
    assert (paper["size"], paper["width"], paper["epochs"], paper["optimizer"]) == (128, 1.0, 50, "adam")


def test_smoke_preset_runs_every_combination_and_writes_results(tmp_path):
    chapter = load_chapter()
    chapter.EXPERIMENT.main(["--preset", "smoke", "--out", str(tmp_path), "--no-progress"])
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["variants"]) == list(chapter.VARIANTS)
    assert results["dataset"]["name"] == "bundled"
    assert results["dataset"]["image_shape"] == [3, 64, 64]
    assert results["seeds"] == [0]
    for name, entry in results["variants"].items():
        run = entry["runs"]["0"]
        assert 0.0 <= entry["test_accuracy"] <= 1.0
        assert len(run["history"]) == 1 and 0.0 <= run["final_train_acc"] <= 1.0
        assert all(v > 0 for v in run["gradient_flow_at_init"].values()), name
    flows = {n: list(e["runs"]["0"]["gradient_flow_at_init"]) for n, e in results["variants"].items()}
    # Convolution and dense weights only, so a network with BN and one without share the layer axis.
    assert flows["tinyyolo_bn_he"] == flows["tinyyolo_nobn_glorot"] == [f"conv_{i}.conv" for i in range(8)] + [
        "dense", "logits"]
    assert flows["resnet26_bn_he"] == flows["resnet26_nobn_he"]
    assert len(flows["resnet26_bn_he"]) == 1 + 16 + 4 + 1
    assert set(results["figures"]) >= {"init_bn_arch_train_acc.png", "gradient_flow_at_init.png"}
    for figure in results["figures"]:
        assert (tmp_path / figure).stat().st_size > 1000
    table = (tmp_path / "table.txt").read_text()
    assert "10,311,833" in table and "11,227,813" in table and "-128" in table
    # The per-block chain-rule table at initialisation, every combination, the variance argument as theory.
    for name, entry in results["variants"].items():
        blocks = entry["runs"]["0"]["blocks_at_init"]
        assert [b["name"] for b in blocks][-1] == "logits" and all(b["rms"] > 0 for b in blocks), name
        assert (tmp_path / f"blocks_{name}.md").read_text().startswith("| block |")
    nobn = results["variants"]["tinyyolo_nobn_he"]["runs"]["0"]["blocks_at_init"]
    assert nobn[-1]["predicted"] == pytest.approx(2 ** 0.5)  # a Linear under He: sqrt(fan_in * 2 / fan_in)
    assert all(b["predicted"] is None for b in results["variants"]["tinyyolo_bn_he"]["runs"]["0"]["blocks_at_init"]
               if b["name"].startswith("conv_"))  # BN sets the gain, not the init
    ledger = json.loads((tmp_path / "claims.json").read_text())
    assert ledger["chapter"] == "06" and len(ledger["claims"]) == 8
    assert "| combination |" in (tmp_path / "blocks_summary.md").read_text()


def test_predicted_gain_of_the_variance_argument():
    from minideep import nn
    chapter = load_chapter()
    conv = nn.Conv2d(16, 32, 3)
    assert chapter.predicted_gain(conv, "he") == pytest.approx(2 ** 0.5)
    assert chapter.predicted_gain(conv, "glorot") == pytest.approx((2 * 144 / (144 + 288)) ** 0.5)
    assert chapter.predicted_gain(nn.LeakyReLU(0.1), "he") == pytest.approx(((1 + 0.01) / 2) ** 0.5)
    assert chapter.predicted_gain(nn.Sequential(conv, nn.BatchNorm2d(32), nn.ReLU()), "he") is None


def test_check_script_prints_the_ledger(tmp_path):
    chapter = load_chapter()
    chapter.EXPERIMENT.main(["--preset", "smoke", "--out", str(tmp_path), "--no-progress"])
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_chapter_06.py"), str(tmp_path / "results.json")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith(("REPRODUCED", "DIFFERS", "NOT RUN"))]
    assert len(lines) == 8


COMMITTED = ROOT / "docs" / "figures" / "06"


def test_from_results_regenerates_the_committed_tables_and_ledger(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "chapters" / "06_init_bn_arch.py"), "--from-results",
                           str(COMMITTED / "results.json"), "--out", str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    made = sorted(p.name for p in tmp_path.glob("*.md"))
    assert {"claims.md", "accuracy.md", "blocks_summary.md", "blocks_tinyyolo_nobn_he.md"} <= set(made)
    for name in made:
        assert (tmp_path / name).read_text() == (COMMITTED / name).read_text(), name


def test_interrupted_run_resumes_without_redoing_finished_runs(tmp_path, monkeypatch):
    chapter = load_chapter()
    real_run = chapter.EXPERIMENT.run_variant
    calls = []

    def interrupted(ctx):
        calls.append((ctx.variant, ctx.seed))
        if ctx.seed == 1:
            raise KeyboardInterrupt  # Ctrl-C during the second run
        return real_run(ctx)

    args = ["--preset", "smoke", "--out", str(tmp_path), "--no-progress", "--variants", "tinyyolo_nobn_he",
            "--seeds", "0", "1"]
    monkeypatch.setattr(chapter.EXPERIMENT, "run_variant", interrupted)
    with pytest.raises(KeyboardInterrupt):
        chapter.EXPERIMENT.main(args)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert list(saved["variants"]["tinyyolo_nobn_he"]["runs"]) == ["0"]

    calls.clear()
    monkeypatch.setattr(chapter.EXPERIMENT, "run_variant", lambda ctx: calls.append((ctx.variant, ctx.seed))
                        or real_run(ctx))
    chapter.EXPERIMENT.main(args + ["--resume"])
    assert calls == [("tinyyolo_nobn_he", 1)]
    resumed = json.loads((tmp_path / "results.json").read_text())
    assert resumed["variants"]["tinyyolo_nobn_he"]["runs"]["0"] == saved["variants"]["tinyyolo_nobn_he"]["runs"]["0"]
    assert list(resumed["variants"]["tinyyolo_nobn_he"]["runs"]) == ["0", "1"]


def test_grayscale_28px_images_are_padded_to_32_and_upsampled_to_64():
    small = load_dataset("bundled", "test").subset(20)
    big = small.as_shape(3, 64, grow="repeat")  # what the chapter's load_data asks chapter_data for
    assert big.images.shape == (20, 3, 64, 64) and big.images.dtype == np.uint8
    # Nearest upsampling of the 32x32 padded image: every 2x2 block is one original pixel.
    padded = np.pad(small.images[:, 0], ((0, 0), (2, 2), (2, 2)))
    np.testing.assert_array_equal(big.images[:, 1, ::2, ::2], padded)
    np.testing.assert_array_equal(big.images[:, 2, 1::2, 1::2], padded)


def test_large_images_are_average_pooled_down_by_an_integer_factor():
    small = load_dataset("bundled", "test").subset(10)
    photos = small.as_shape(3, 128, grow="repeat")
    back = photos.as_shape(3, 64, grow="repeat")
    np.testing.assert_array_equal(back.images, small.as_shape(3, 64, grow="repeat").images)
    # 128 to 48 pools by ceil(128 / 48) = 3 (the last two rows and columns dropped) and pads 42 to 48.
    pooled = photos.as_shape(3, 48, grow="repeat").images
    expected = np.rint(photos.images[:, :, :126, :126].astype(np.float32).reshape(10, 3, 42, 3, 42, 3).mean(axis=(3, 5)))
    np.testing.assert_array_equal(pooled[:, :, 3:45, 3:45], expected)
    assert (pooled[:, :, :3] == 0).all() and (pooled[:, :, 45:] == 0).all()


def test_the_grid_runs_as_sweep_jobs_in_worker_processes_and_resumes(tmp_path):
    chapter = load_chapter()
    args = ["--preset", "smoke", "--out", str(tmp_path), "--no-progress", "--workers", "2",
            "--variants", "tinyyolo_bn_he", "tinyyolo_nobn_glorot"]
    first = chapter.EXPERIMENT.main(args)
    assert set(first["variants"]) == {"tinyyolo_bn_he", "tinyyolo_nobn_glorot"}
    for name in first["variants"]:
        record = json.loads((tmp_path / "sweep" / name / "seed0.json").read_text())
        assert record["status"] == "ok" and record["config"]["variant"] == name
        assert record["pid"] != os.getpid()  # it ran in a worker process
        assert first["variants"][name]["runs"]["0"]["history"] == record["result"]["history"]
    # The same seed gives the same run in a worker process as in this one, up to float32 rounding
    # (NumPy's reductions may take another SIMD path when the arrays sit at other addresses).
    here = chapter.EXPERIMENT.main(["--preset", "smoke", "--out", str(tmp_path / "here"), "--no-progress",
                                    "--variants", "tinyyolo_bn_he"])
    assert here["variants"]["tinyyolo_bn_he"]["runs"]["0"]["history"][0]["train_loss"] == pytest.approx(
        first["variants"]["tinyyolo_bn_he"]["runs"]["0"]["history"][0]["train_loss"], rel=1e-4)
    # Resuming finds every run finished: nothing runs again.
    again = chapter.EXPERIMENT.main(args + ["--resume"])
    assert again["variants"] == first["variants"]


def test_the_paper_preset_runs_end_to_end_on_local_food101_files(tmp_path, monkeypatch):
    """The paper preset's whole path (Food-101 found locally, resized to 128x128 and cached, the grid run,
    results written) on a tiny Food-101 folder in the official layout; only the epochs and width are cut."""
    from test_data_formats import FOOD_CLASSES, write_food101

    write_food101(tmp_path / "data", n_train=4, n_test=2)
    chapter = load_chapter()
    monkeypatch.setitem(chapter.PRESETS, "paper", {**chapter.PRESETS["paper"], "epochs": 1, "width": 0.0625,
                                                   "block_batch": 2, "block_probes": 2, "block_iterations": 2})
    results = chapter.EXPERIMENT.main(["--preset", "paper", "--data-dir", str(tmp_path / "data"), "--out",
                                       str(tmp_path / "out"), "--variants", "tinyyolo_bn_he", "resnet26_nobn_glorot",
                                       "--seeds", "0", "--no-progress"])
    assert results["dataset"]["name"] == "food101" and results["dataset"]["image_shape"] == [3, 128, 128]
    assert results["dataset"]["classes"] == len(FOOD_CLASSES)
    assert (tmp_path / "data" / "food101" / "processed-128px").is_dir()  # the resized arrays, cached
    for entry in results["variants"].values():
        assert len(entry["runs"]["0"]["history"]) == 1 and entry["runs"]["0"]["blocks_at_init"]
    ledger = json.loads((tmp_path / "out" / "claims.json").read_text())
    assert ledger["preset"] == "paper"


def test_the_pages_account_of_the_run_is_the_committed_runs():
    """'seeds 0, 1 and 2, 24 runs in one process, 2 threads'; the time itself is read by the benchmarks page."""
    results = json.loads((COMMITTED / "results.json").read_text())
    runs = [run for v in results["variants"].values() for run in v["runs"].values()]
    assert results["preset"] == "quick" and results["seeds"] == [0, 1, 2] and len(runs) == 24
    assert results["sweep"]["workers"] == 1 and results["sweep"]["threads_per_run"] == 2
    assert all(run["cpu_time_s"] > 0 and run["wall_time_s"] > 0 for run in runs)
    page = (ROOT / "docs" / "chapters" / "06-init-bn-arch.md").read_text()
    assert "seeds 0, 1 and 2, 24 runs in one process, 2 threads" in page and "benchmarks page" in page
