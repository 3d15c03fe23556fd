"""Chapter 07 (tuning the residual VGG38): the model, the smoke preset, restart, the tables and the check script."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minideep as md
from minideep.models import VGG, ResidualVGG
from minideep.models.residual_vgg import ResidualReductionBlock

ROOT = Path(__file__).resolve().parents[1]


def load_chapter():
    spec = importlib.util.spec_from_file_location("chapter_07", ROOT / "chapters" / "07_resnet_tuning.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["chapter_07"] = module  # pool processes find run_one by its module's name
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the report's network

def test_residual_vgg38_has_vgg38s_parameters_and_a_shortcut_around_every_block():
    model, plain = ResidualVGG(5), VGG(5)
    assert model.num_parameters() == plain.num_parameters() == 336196
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in plain.named_parameters()]
    assert all(isinstance(getattr(model, f"reduction_block_{i}"), ResidualReductionBlock) for i in range(3))
    x = md.tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    assert model(x).shape == (2, 100)


def test_residual_reduction_block_adds_the_pooled_input():
    block = ResidualReductionBlock(4, batch_norm=False, activation="relu", init=None, dtype=np.float64)
    for name, param in block.named_parameters():
        param.data[...] = 0.0  # conv branch silenced: only the shortcut is left
    x = np.random.default_rng(1).uniform(0.1, 1.0, (2, 4, 6, 6))
    y = block(md.tensor(x)).data
    pooled = x.reshape(2, 4, 3, 2, 3, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(y, pooled)


def test_residual_reduction_block_gradient_checks():
    block = ResidualReductionBlock(2, batch_norm=False, activation="leaky_relu", init=None, dtype=np.float64)
    x = md.tensor(np.random.default_rng(2).standard_normal((2, 2, 4, 4)), requires_grad=True)
    assert md.gradcheck(lambda t: block(t), (x,))


def test_the_shortcuts_carry_the_gradient_to_the_first_layer():
    # Without BN, at the coursework's init: the plain VGG38's first-layer gradient vanishes, the report's does not.
    rng = np.random.default_rng(3)
    x = md.tensor(rng.standard_normal((4, 3, 16, 16)).astype(np.float32))
    y = rng.integers(0, 100, 4)
    ratios = {}
    for name, model in (("plain", VGG(5)), ("residual", ResidualVGG(5))):
        md.manual_seed(0)
        md.nn.functional.cross_entropy(model(x), y).backward()
        first = float(np.abs(model.input_conv.conv.weight.grad).mean())
        last = float(np.abs(model.logit_linear.weight.grad).mean())
        ratios[name] = first / last
    assert ratios["plain"] < 1e-3 and ratios["residual"] > 1e-2


def test_residual_vgg_rejects_images_the_pools_cannot_halve():
    with pytest.raises(ValueError, match="ResidualVGG: input must be .* divisible by 8.*\\(2, 3, 28, 28\\)"):
        ResidualVGG(1)(md.tensor(np.zeros((2, 3, 28, 28), np.float32)))


# ---------------------------------------------------------------- the chapter

pytest.importorskip("matplotlib")


def test_the_tables_cells_share_configurations():
    chapter = load_chapter()
    preset = chapter.PRESETS["paper"]
    configs = chapter.configurations("paper", preset, chapter.TABLES)
    # 4 learning rates + 4 more weight decays + 4 more batch sizes + 3 new combinations (wd 1e-3 / 1e-4 at
    # batch 100 are Table 3's cells): the report's 16 configurations, 80 runs with five seeds; and the
    # depth table's three networks (VGG08, VGG38, residual VGG38).
    assert len(configs) == 16 + 3
    assert "lr=0.001,wd=0,bs=100" in configs and "lr=0.001,wd=0.0005,bs=50" in configs
    assert chapter.PRESETS["paper"]["seeds"] == [0, 2045458, 186285, 2122020, 11132]


def test_the_quick_presets_images_are_pooled_and_padded_to_8x8():
    from minideep.data import load_dataset

    data = load_dataset("bundled", "test").subset(20, 0)
    small = data.as_shape(1, 8)  # what the chapter asks chapter_data for (shape=(None, 8))
    assert small.images.shape == (20, 1, 8, 8) and small.images.dtype == np.uint8
    expected = data.images[:, :, :28, :28].reshape(20, 1, 7, 4, 7, 4).astype(np.float32).mean(axis=(3, 5))
    np.testing.assert_allclose(small.images[:, :, :7, :7], np.rint(expected))
    assert (small.images[:, :, 7, :] == 0).all() and (small.images[:, :, :, 7] == 0).all()


def test_smoke_preset_runs_every_table_and_writes_results(tmp_path):
    chapter = load_chapter()
    results = chapter.EXPERIMENT.main(["--preset", "smoke", "--out", str(tmp_path), "--no-progress"])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["tables"] == list(chapter.TABLES) and saved["dataset"]["name"] == "bundled"
    assert saved["dataset"]["image_shape"] == [1, 8, 8]
    configs = chapter.configurations("smoke", chapter.PRESETS["smoke"], chapter.TABLES)
    assert set(saved["variants"]) == set(configs)
    for name, entry in saved["variants"].items():
        assert set(entry["runs"]) == {"0", "1"}  # every configuration with both seeds
        for run in entry["runs"].values():
            assert run["diverged"] or 0.0 <= run["test_accuracy"] <= 1.0
    assert saved["sweep"]["failed"] == [] and saved["sweep"]["ran"] == 2 * len(configs)
    for row in saved["summary"]:
        accs = [r["val_accuracy"] for r in saved["variants"][row["name"]]["runs"].values() if not r["diverged"]]
        if len(accs) == 2:
            assert row["val_accuracy"]["mean"] == pytest.approx(np.mean(accs))
            assert row["val_accuracy"]["std"] == pytest.approx(np.std(accs, ddof=1))
    text = (tmp_path / "tables.txt").read_text()
    for title in ("Table 2", "Table 3", "Table 4", "Table 5", "Table 6"):
        assert title in text
    assert "77.2 ± 0.6" in text and "±" in text  # the report's numbers beside ours
    for figure in saved["figures"]:
        assert (tmp_path / figure).stat().st_size > 1000
    assert "sweep_learning_rate.png" in saved["figures"] and "curves_default_vs_best.png" in saved["figures"]
    assert {"gradient_flow_7_vs_37.png", "gradient_flow_residual_fix.png", "gradient_flow_default.png"} <= set(
        saved["figures"])
    for table in ("learning_rate", "depth", "spatial", "claims"):
        assert (tmp_path / f"{table}.md").read_text().startswith("| ")
    assert saved["variants"]["lr=0.001,wd=0,bs=20"]["config"] == {"lr": 1e-3, "weight_decay": 0.0, "batch_size": 20}
    assert results["variants"].keys() == saved["variants"].keys()
    # The depth networks' chain-rule tables: first seed only, at init and after training, every block.
    for model, hyper in chapter.table_cells(chapter.PRESETS["smoke"], "depth"):
        runs = saved["variants"][chapter.cell_name(hyper)]["runs"]
        assert "blocks_at_init" in runs["0"] and "blocks_at_init" not in runs["1"]
        for key, when in (("blocks_at_init", "init"), ("blocks_after_training", "trained")):
            rows = runs["0"][key]
            assert rows[0]["name"] == "input_conv" and rows[-1]["name"] == "logit_linear"
            assert all(r["rms"] > 0 and r["top"] >= r["rms"] * 0.5 and r["grad_norm"] > 0 for r in rows)
            residual = [r for r in rows if r["kind"] == "ResidualBlock"]
            assert bool(residual) == (model == "residual38")  # only the residual VGG has residual blocks
            for r in residual:  # the branch measured apart, and the theory beside it
                assert r["predicted"] == pytest.approx(np.sqrt(1 + r["branch_rms"] ** 2))
            table = (tmp_path / f"blocks_{model}_{when}.md").read_text()
            assert table.startswith("| block | ‖dL/dh‖ |") and table.count("\n") == len(rows) + 2  # heading, rule, one line per block


def test_restart_skips_finished_runs_and_reruns_nothing(tmp_path, monkeypatch):
    chapter = load_chapter()
    args = ["--preset", "smoke", "--out", str(tmp_path), "--no-progress", "--tables", "learning_rate"]
    first = chapter.EXPERIMENT.main(args)
    calls = []
    real = chapter.EXPERIMENT.run_variant
    monkeypatch.setattr(chapter.EXPERIMENT, "run_variant",
                        lambda ctx: calls.append(f"{ctx.variant}/seed{ctx.seed}") or real(ctx))
    again = chapter.EXPERIMENT.main(args + ["--resume", "--tables", "learning_rate", "batch_size"])
    # Only the batch-size cells that Table 2 did not already have were trained.
    assert calls == [f"lr=0.001,wd=0,bs=10/seed{s}" for s in (0, 1)]
    assert again["sweep"]["skipped"] == 4
    for name in first["variants"]:
        assert again["variants"][name]["runs"] == first["variants"][name]["runs"]


def test_a_failing_run_in_a_process_pool_is_reported_and_the_others_finish(tmp_path, monkeypatch):
    from minideep import experiment

    chapter = load_chapter()
    real = chapter.EXPERIMENT.run_variant

    def flaky(ctx):
        if ctx.configuration["lr"] == 1e-2 and ctx.seed == 1:
            raise MemoryError("out of memory (simulated)")
        return real(ctx)

    monkeypatch.setattr(chapter.EXPERIMENT, "run_variant", flaky)
    # The pool's forked processes find the experiment (with the flaky run) where the jobs look it up.
    monkeypatch.setitem(experiment._CHAPTERS, str(Path(__file__).resolve()), chapter.EXPERIMENT)
    results = chapter.EXPERIMENT.main(["--preset", "smoke", "--out", str(tmp_path), "--no-progress",
                                       "--tables", "learning_rate", "--workers", "2"])
    assert results["sweep"]["failed"] == [{"name": "lr=0.01,wd=0,bs=20", "seed": 1,
                                           "error": "MemoryError: out of memory (simulated)"}]
    assert set(results["variants"]["lr=0.001,wd=0,bs=20"]["runs"]) == {"0", "1"}
    assert "Failed runs:" in (tmp_path / "tables.txt").read_text()


def test_a_process_pool_gives_the_same_tables(tmp_path):
    chapter = load_chapter()
    args = ["--preset", "smoke", "--no-progress", "--tables", "learning_rate"]
    one = chapter.EXPERIMENT.main(args + ["--out", str(tmp_path / "one")])
    pool = chapter.EXPERIMENT.main(args + ["--out", str(tmp_path / "pool"), "--workers", "2"])
    for name, entry in one["variants"].items():
        for seed, run in entry["runs"].items():
            other = pool["variants"][name]["runs"][seed]
            # One convolution thread per pool process instead of two: the same numbers up to float32 rounding.
            assert other["test_accuracy"] == pytest.approx(run["test_accuracy"], abs=1e-6)
            for mine, theirs in zip(other["history"], run["history"]):
                assert {k: pytest.approx(v, rel=1e-5) for k, v in mine.items() if k != "time"} == \
                    {k: v for k, v in theirs.items() if k != "time"}


def test_check_script_reports_each_claim(tmp_path):
    chapter = load_chapter()
    chapter.EXPERIMENT.main(["--preset", "smoke", "--out", str(tmp_path), "--no-progress"])
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_chapter_07.py"), str(tmp_path / "results.json")],
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(("REPRODUCED", "DIFFERS", "NOT RUN"))]
    assert done.returncode == 0 and len(lines) == len(chapter.claims(json.loads((tmp_path / "results.json").read_text())))
    assert len(lines) >= 6, done.stdout + done.stderr
    assert "not the quick preset" in done.stdout  # the smoke preset is too small to judge the claims


def test_every_row_shows_our_settings_and_the_reports_cell():
    """Quick's weight decays are 10x the report's: the table shows both settings, never one number beside another."""
    chapter = load_chapter()
    quick = chapter.PRESETS["quick"]
    hyper, numbers = chapter.report_cell(quick, "weight_decay", 1e-2)
    assert hyper == {"lr": 1e-3, "weight_decay": 1e-3, "batch_size": 100} and numbers == ("70.4 ± 0.8", "58.9 ± 0.6")
    hyper, numbers = chapter.report_cell(quick, "combinations", (1e-3, 50))  # the collapse, as is
    assert hyper["weight_decay"] == 1e-3 and hyper["batch_size"] == 50 and numbers == ("1.0 ± 0", "0.6 ± 0")
    hyper, _ = chapter.report_cell(quick, "learning_rate", 1e-5)
    assert hyper == {"lr": 1e-5, "weight_decay": 0.0, "batch_size": 100}  # ours runs at batch 50: both shown
    assert chapter.report_cell(quick, "batch_size", 25)[0]["batch_size"] == 25
    assert 1e-5 in quick["learning_rate"] and 1e-3 in quick["combinations"]["weight_decay"]


def test_claims_follow_the_results(tmp_path):
    """The collapse verdict is computed from the runs: at chance it is reproduced, above it it differs."""
    chapter = load_chapter()
    chapter.EXPERIMENT.main(["--preset", "smoke", "--out", str(tmp_path), "--no-progress"])
    results = json.loads((tmp_path / "results.json").read_text())
    name = chapter.cell_name({**results["config"]["default"], "weight_decay": 1e-3, "batch_size": 50})
    chance = 1 / results["dataset"]["classes"]
    results["variants"][name] = {"runs": {"0": {"diverged": False, "final_train_accuracy": chance}}}
    results["summary"].append({"name": name, "val_accuracy": {"mean": chance}, "train_accuracy": {"mean": chance}})
    collapse = next(c for c in chapter.claims(results) if "collapses" in c["claim"])
    assert collapse["verdict"] == "reproduced"
    results["variants"][name]["runs"]["0"]["final_train_accuracy"] = 0.9
    collapse = next(c for c in chapter.claims(results) if "collapses" in c["claim"])
    assert collapse["verdict"] == "differs"


COMMITTED = ROOT / "docs" / "figures" / "07"


def test_from_results_regenerates_the_committed_tables_and_ledger(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "chapters" / "07_resnet_tuning.py"), "--from-results",
                           str(COMMITTED / "results.json"), "--out", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    made = sorted(p.name for p in tmp_path.glob("*.md"))
    assert {"claims.md", "learning_rate.md", "combinations.md", "depth.md", "spatial.md"} <= set(made)
    for name in made:
        assert (tmp_path / name).read_text() == (COMMITTED / name).read_text(), name
    for name in json.loads((COMMITTED / "results.json").read_text())["figures"]:
        assert (tmp_path / name).stat().st_size > 1000


@pytest.mark.slow
def test_the_tables_through_a_local_ray_instance(tmp_path):
    ray = pytest.importorskip("ray")
    chapter = load_chapter()
    args = ["--preset", "smoke", "--no-progress", "--tables", "learning_rate"]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        # The job function goes to the workers by value (its script is not importable there).
        on_ray = chapter.EXPERIMENT.main(args + ["--out", str(tmp_path / "ray"), "--backend", "ray"])
    finally:
        ray.shutdown()
    here = chapter.EXPERIMENT.main(args + ["--out", str(tmp_path / "here")])
    assert on_ray["sweep"]["failed"] == [] and on_ray["sweep"]["ran"] == 4
    for name, entry in here["variants"].items():
        for seed, run in entry["runs"].items():
            assert on_ray["variants"][name]["runs"][seed]["test_accuracy"] == pytest.approx(run["test_accuracy"], abs=1e-6)


def test_the_weight_decay_mapping_survives_results_json():
    """results.json stores the mapping's keys as strings: the report's cells are still found."""
    chapter = load_chapter()
    stored = json.loads(json.dumps(chapter.PRESETS["quick"]))
    assert chapter.report_cell(stored, "weight_decay", 1e-2)[1] == ("70.4 ± 0.8", "58.9 ± 0.6")
    assert chapter.report_cell(stored, "combinations", (1e-3, 50))[1] == ("1.0 ± 0", "0.6 ± 0")


def test_page_sentences_on_the_chain_rule_agree_with_the_committed_run():
    """The prose of the page's block-by-block section, checked against docs/figures/07/results.json."""
    chapter = load_chapter()
    results = json.loads((ROOT / "docs" / "figures" / "07" / "results.json").read_text())
    page = (ROOT / "docs" / "chapters" / "07-resnet-tuning.md").read_text()
    runs = {model: results["variants"][chapter.cell_name(hyper)]["runs"]["0"]
            for model, hyper in chapter.table_cells(results["config"], "depth")}

    def first_over_last(model, key):
        rows = [r for r in runs[model][key] if r["kind"] not in ("Flatten", "AdaptiveAvgPool2d")]
        return rows[0]["grad_norm"] / rows[-2]["grad_norm"]

    both = ("blocks_at_init", "blocks_after_training")
    # "In the plain VGG38 ... smaller by many orders of magnitude, at initialisation and still after training"
    assert all(first_over_last("vgg38", k) < 1e-12 for k in both)
    # "In the 7-convolution VGG08 the ratio starts a few orders of magnitude down ... training raises those gains
    # until it is within an order of magnitude"
    assert 1e-6 < first_over_last("vgg08", "blocks_at_init") < 1e-2 < 0.1 < first_over_last("vgg08", "blocks_after_training")
    before = [r["rms"] for r in runs["vgg08"]["blocks_at_init"] if r["kind"] == "ReductionBlock"]
    after = [r["rms"] for r in runs["vgg08"]["blocks_after_training"] if r["kind"] == "ReductionBlock"]
    assert len(before) == 3 and all(g < 0.2 for g in before) and all(a > b for a, b in zip(after, before))
    # "The residual VGG38 keeps it within an order of magnitude at both moments. Every residual block's rms gain stays
    # close to one ... each residual reduction block's gain is close to one half"
    assert all(first_over_last("residual38", k) > 0.1 for k in both)
    for key in both:
        rows = runs["residual38"][key]
        residual = [r for r in rows if r["kind"] == "ResidualBlock"]
        reduction = [r for r in rows if r["kind"] == "ResidualReductionBlock"]
        assert len(residual) == 15 and len(reduction) == 3
        assert all(0.7 < r["rms"] < 1.3 and r["branch_rms"] < 0.5 for r in residual)
        assert all(0.35 < r["rms"] < 0.65 for r in reduction)
    for name in ("blocks_summary", "blocks_vgg38_init", "blocks_residual38_trained", "blocks_vgg08_init"):
        assert f'--8<-- "docs/figures/07/{name}.md"' in page
