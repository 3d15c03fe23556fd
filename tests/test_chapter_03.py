"""Chapter 03 (VGG38 broken and fixed): Table 1's configurations, the smoke preset, the committed run, the ledger."""
import copy
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "figures" / "03"

# Every architecture kind of the chapter once (plain, BN, both shortcuts, sigmoid), and the
# weight-decay and learning-rate paths of Table 1's configurations.
SMOKE_VARIANTS = ["vgg08", "vgg08_bn", "vgg08_bn_res", "vgg38", "vgg38_bn", "vgg38_res", "vgg38_bn_res",
                  "vgg38_bn_res_bs256_lr0.01_wd6e-4", "vgg38_res_coursework", "vgg38_sigmoid_bn_bs512"]


def load_chapter():
    spec = importlib.util.spec_from_file_location("chapter_03", ROOT / "chapters" / "03_vgg38.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def chapter():
    return load_chapter()


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, chapter):
    out = tmp_path_factory.mktemp("ch03-smoke")
    chapter.EXPERIMENT.main(["--preset", "smoke", "--out", str(out), "--no-progress", "--threads", "1",
                             "--variants", *SMOKE_VARIANTS])
    return out, json.loads((out / "results.json").read_text())


def test_every_row_of_pricope_table_1_is_a_configuration_with_its_settings(chapter):
    rows = {cfg["pricope_row"]: name for name, cfg in chapter.VARIANTS.items() if cfg["pricope_row"]}
    assert sorted(rows) == list(range(1, 17))
    for row, name in rows.items():
        cfg = chapter.VARIANTS[name]
        batch, lr, wd = chapter.PRICOPE[row][:3]
        assert (cfg["batch_size"], cfg["lr"], cfg["weight_decay"]) == (batch, lr, wd), name
        # The paper preset trains each row exactly as the table says.
        s = chapter.settings(name, chapter.PRESETS["paper"])
        assert (s["batch_size"], s["lr"], s["weight_decay"]) == (batch, lr, wd)
        assert chapter.PAPER[name]["same settings"] is True
        # Pricope's residual rows use Pricope's projection shortcut.
        assert cfg["shortcut"] == ("projection" if cfg["residual"] else None)
    # Table 1's published numbers are where the settings match, and flagged where they do not.
    assert chapter.PAPER["vgg38_bn_bs256"]["Pricope test %"] == 47.22
    assert chapter.PAPER["vgg38_bn_res"]["same settings"] is False  # quick's batch-100 net vs Pricope's batch 512
    assert chapter.VARIANTS["vgg38_bn_res_coursework"]["shortcut"] == "coursework"
    assert set(chapter.DEFAULT_VARIANTS["quick"]) == {"vgg08", "vgg38", "vgg38_bn", "vgg38_res", "vgg38_bn_res"}
    assert set(rows.values()) <= set(chapter.DEFAULT_VARIANTS["paper"])


def test_parameter_counts_tell_the_two_residual_networks_apart(chapter):
    count = lambda name: sum(p.size for p in chapter.build(name, 100).parameters())
    assert count("vgg08") == 59_716
    assert count("vgg08_bn") == 60_100
    assert count("vgg08_bn_res") == 63_364  # Pricope's projection shortcuts around the reduction blocks
    assert count("vgg38") == 336_196 and count("vgg38_bn") == 338_500
    assert count("vgg38_res_coursework") == count("vgg38")  # the coursework's shortcuts add no parameters
    assert count("vgg38_bn_res") > count("vgg38_bn_res_coursework") == count("vgg38_bn")


def test_smoke_preset_records_parameters_chain_rule_and_curvature(smoke, chapter):
    out, results = smoke
    assert set(results["variants"]) == set(SMOKE_VARIANTS)  # in the order of VARIANTS
    for name, entry in results["variants"].items():
        run = entry["runs"]["0"]
        assert entry["parameters"] == sum(p.size for p in chapter.build(name, 10).parameters())
        assert entry["shortcut"] == chapter.VARIANTS[name]["shortcut"]
        assert run["training"]["weight_decay"] == chapter.VARIANTS[name]["weight_decay"]
        assert run["training"]["lr"] == chapter.VARIANTS[name]["lr"]
        assert 0.0 <= entry["test_accuracy"] <= 1.0 and len(entry["history"]) == 1
        flow = entry["gradient_flow"][0]
        assert next(iter(flow)) == "input_conv.conv" and list(flow)[-1] == "logit_linear"
        for key in ("chain_rule_at_init", "chain_rule_after_training"):
            rows = run[key]
            assert rows[0]["name"] == "input_conv" and rows[-1]["name"] == "logit_linear"
            assert all(r["rms"] > 0 and r["top"] > 0 for r in rows if r["kind"] != "Flatten")
        assert len(run["load_average"]["before"]) in (0, 3)
        assert (name in chapter.CURVATURE_VARIANTS) == ("curvature" in run)
    assert results["variants"]["vgg08_bn_res"]["parameters"] != results["variants"]["vgg08_bn"]["parameters"]
    # Residual blocks carry the theory's prediction, other blocks none.
    rows = results["variants"]["vgg38_res"]["runs"]["0"]["chain_rule_at_init"]
    assert all((r["predicted"] is not None) == (r["kind"] == "ResidualBlock") for r in rows)
    # The coursework's plot: 9 points for VGG08, 39 for VGG38 (every weight, entry BN gamma included).
    assert len(results["variants"]["vgg08"]["gradient_flow"][0]) == 9
    assert len(results["variants"]["vgg38"]["gradient_flow"][0]) == 39
    vgg38 = results["variants"]["vgg38"]["gradient_flow"][0]
    assert vgg38["input_conv.conv"] < 1e-2 * vgg38["logit_linear"]
    # Curvature at init and after the epoch; the second-order prediction and the actual change on the same batch.
    curv = results["variants"]["vgg38"]["runs"]["0"]["curvature"]
    assert [r["epoch"] for r in curv] == [0, 1]
    for r in curv:
        assert r["gTg"] > 0 and r["predicted_change"] == pytest.approx(-r["lr"] * r["gTg"] + 0.5 * r["lr"] ** 2 * r["gTHg"])
    for figure in results["figures"]:
        assert (out / figure).stat().st_size > 1000
    assert "curvature.png" in results["figures"]
    for name in ("results.md", "claims.md", "curvature.md", "chain_rule_summary.md", "chain_rule_vgg38_init.md"):
        assert (out / name).read_text().startswith("|"), name
    ledger = json.loads((out / "claims.json").read_text())
    assert {c["verdict"] for c in ledger["claims"]} <= {"reproduced", "differs", "not run"}


def test_ledger_verdicts_follow_the_results(smoke, chapter):
    _, results = smoke
    by_claim = lambda res: {c["claim"]: c for c in chapter.claims(res)}
    ledger = by_claim(copy.deepcopy(results))
    chance = "Plain VGG38 stays at chance"
    assert ledger[chance]["verdict"] == "reproduced"  # 10% on 10 classes after one smoke step
    changed = copy.deepcopy(results)
    changed["variants"]["vgg38"]["test_accuracy"] = 0.6
    assert by_claim(changed)[chance]["verdict"] == "differs"
    assert "60.0%" in by_claim(changed)[chance]["ours"]
    bn = "BN alone does not justify the deeper net (VGG38 BN about VGG08)"
    changed["variants"]["vgg38_bn"]["test_accuracy"] = changed["variants"]["vgg08"]["test_accuracy"] + 0.2
    assert by_claim(changed)[bn]["verdict"] == "differs"
    # A claim whose variants did not run says so, and how to run it.
    lr = by_claim(results)["Learning rate 1e-3 beats 1e-2 and 1e-1 for VGG38 BN"]
    assert lr["verdict"] == "not run" and "--variants" in lr["evidence"]
    del changed["variants"]["vgg38"]
    assert by_claim(changed)[chance]["verdict"] == "not run"


def test_twin_column_reads_the_twin_file_of_the_same_preset(smoke, chapter, tmp_path):
    _, results = smoke
    twin = {"preset": "smoke", "dataset": results["dataset"], "variants": {"vgg08": {"0": {"test_accuracy": 0.25}}}}
    path = tmp_path / "torch_twin.json"
    path.write_text(json.dumps(twin))
    assert chapter.twin_accuracies(results, path) == {"vgg08": [0.25]}
    twin["preset"] = "quick"
    path.write_text(json.dumps(twin))
    assert chapter.twin_accuracies(results, path) == {}


def test_from_results_regenerates_the_committed_figures_tables_and_ledger(tmp_path, chapter):
    committed = COMMITTED / "results.json"
    chapter.EXPERIMENT.main(["--from-results", str(committed), "--out", str(tmp_path)])
    results = json.loads(committed.read_text())
    assert results["preset"] == "quick"
    for name in results["figures"]:
        assert (tmp_path / name).stat().st_size > 1000, name
    # The page includes these files: regenerated from results.json (and the twin's file) they are the same bytes.
    for md in sorted(COMMITTED.glob("*.md")):
        assert (tmp_path / md.name).read_text() == md.read_text(), md.name
    assert json.loads((tmp_path / "claims.json").read_text()) == json.loads((COMMITTED / "claims.json").read_text())
    # Every variant of the quick preset, with its parameter count and shortcut kind.
    assert set(chapter.DEFAULT_VARIANTS["quick"]) <= set(results["variants"])
    for name, entry in results["variants"].items():
        assert entry["parameters"] == sum(p.size for p in chapter.build(name, results["dataset"]["classes"]).parameters())
        assert entry["shortcut"] == chapter.VARIANTS[name]["shortcut"]


def test_interrupted_run_resumes_without_redoing_finished_variants(tmp_path, monkeypatch, chapter):
    real_run = chapter.EXPERIMENT.run_variant
    calls = []

    def interrupted(ctx):
        calls.append(ctx.variant)
        if ctx.variant == "vgg38":
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the second variant
        return real_run(ctx)

    args = ["--preset", "smoke", "--out", str(tmp_path), "--no-progress", "--variants", "vgg08", "vgg38"]
    monkeypatch.setattr(chapter.EXPERIMENT, "run_variant", interrupted)
    with pytest.raises(KeyboardInterrupt):
        chapter.EXPERIMENT.main(args)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert list(saved["variants"]) == ["vgg08"]

    calls.clear()
    monkeypatch.setattr(chapter.EXPERIMENT, "run_variant", lambda ctx: calls.append(ctx.variant) or real_run(ctx))
    chapter.EXPERIMENT.main(args + ["--resume"])
    assert calls == ["vgg38"]
    resumed = json.loads((tmp_path / "results.json").read_text())
    assert resumed["variants"]["vgg08"]["runs"] == saved["variants"]["vgg08"]["runs"]
    assert set(resumed["variants"]) == {"vgg08", "vgg38"}


def test_page_sentences_agree_with_the_committed_run(chapter):
    """The prose of docs/chapters/03-vgg38.md that states what the run shows, checked against results.json."""
    results = json.loads((COMMITTED / "results.json").read_text())
    v = results["variants"]
    page = (ROOT / "docs" / "chapters" / "03-vgg38.md").read_text()
    # "many more than twelve orders of magnitude ... at initialisation and still after training"
    assert v["vgg38"]["chain_rule_at_init_summary"]["orders_of_magnitude"] > 12
    assert v["vgg38"]["chain_rule_after_training_summary"]["orders_of_magnitude"] > 12
    # "The plain VGG38's processing blocks have the predicted gain" (about 1/6, within a factor 1.5)
    assert 1 / 9 < v["vgg38"]["chain_rule_at_init_summary"]["processing_block_rms_geomean"] < 1 / 4
    # BN: "the measured processing-block gain ... is above one, so the gradient grows on the way down"
    assert v["vgg38_bn"]["chain_rule_at_init_summary"]["processing_block_rms_geomean"] > 1
    assert v["vgg38_bn"]["chain_rule_at_init_summary"]["orders_of_magnitude"] < 0
    # Residual without BN: "the residual block's gain close to one"
    rows = v["vgg38_res"]["runs"]["0"]["chain_rule_at_init"]
    gains = [r["rms"] for r in rows if r["kind"] == "ResidualBlock"]
    assert len(gains) == 15 and all(0.7 < g < 1.3 for g in gains)
    # Curvature: VGG38's total gTg is not small, its critical step is far above the learning rate, the step
    # lowers the loss as predicted; its first stage's gTg is orders of magnitude below the others'.
    verdicts = chapter.curvature_verdicts(results)
    assert verdicts["vanishing"] and not verdicts["curvature"]
    assert "the failure is the vanishing gradient, not Pricope's curvature" in page
    for rec in v["vgg38"]["runs"]["0"]["curvature"]:
        assert rec["critical_lr"] > 10 * rec["lr"]
        assert rec["actual_change"] < 0 and rec["predicted_change"] == pytest.approx(rec["actual_change"], rel=0.1)
    others = [v[n]["runs"]["0"]["curvature"][0]["gTg"] for n in chapter.CURVATURE_VARIANTS if n != "vgg38"]
    assert v["vgg38"]["runs"]["0"]["curvature"][0]["gTg"] > 1e-3 * min(others)
    # "over three seeds VGG38 BN is ahead of VGG08 by more than twice the larger seed spread", "VGG38 BN sits at chance
    # after its first epoch in every seed and overtakes VGG08 in the third, while both networks' validation accuracy
    # is still rising steeply at the last epoch"
    assert results["seeds"] == [0, 1, 2] and "three seeds" in page
    spread = max(v["vgg38_bn"]["test_accuracy_std"], v["vgg08"]["test_accuracy_std"])
    assert v["vgg38_bn"]["test_accuracy"] - v["vgg08"]["test_accuracy"] > 2 * spread
    # "the PyTorch twin of the same run puts it ahead too, by a similar margin"
    twin = chapter.twin_accuracies(results)
    ours, theirs = (v["vgg38_bn"]["test_accuracy"] - v["vgg08"]["test_accuracy"],
                    float(np.mean(twin["vgg38_bn"]) - np.mean(twin["vgg08"])))
    assert len(twin["vgg38_bn"]) == 3 and theirs > 2 * spread and abs(theirs - ours) < 2 * spread
    assert "puts it ahead too, by a similar margin" in page
    # The longer run: "behind VGG08, or within two points of it, for the first five epochs and ahead by more from
    # the sixth on, and after 12 epochs its test accuracy leads by more than after 3"
    longer = json.loads((COMMITTED / "longer" / "results.json").read_text())
    assert longer["config"]["epochs"] == 12 and longer["seeds"] == [0, 1, 2] and longer["dataset"] == results["dataset"]
    assert {k: x for k, x in longer["config"].items() if k != "epochs"} == {
        k: x for k, x in results["config"].items() if k != "epochs"}  # only the epochs differ
    lv = longer["variants"]
    val = {n: np.mean([[h["val_acc"] for h in r["history"]] for r in lv[n]["runs"].values()], axis=0)
           for n in ("vgg08", "vgg38_bn")}
    assert all(val["vgg38_bn"][e] - val["vgg08"][e] < 0.02 for e in range(5))
    assert all(val["vgg38_bn"][e] - val["vgg08"][e] > 0.02 for e in range(5, 12))
    long_gap = lv["vgg38_bn"]["test_accuracy"] - lv["vgg08"]["test_accuracy"]
    assert long_gap > ours and "The gap does not close" in page
    assert chapter.longer_accuracies(results)["epochs"] == 12
    chance = 1.0 / results["dataset"]["classes"]
    for seed in ("0", "1", "2"):
        bn = [h["val_acc"] for h in v["vgg38_bn"]["runs"][seed]["history"]]
        shallow = [h["val_acc"] for h in v["vgg08"]["runs"][seed]["history"]]
        assert abs(bn[0] - chance) < 0.02 and bn[0] < shallow[0] and bn[2] > shallow[2]
        assert bn[2] - bn[1] > 0.05 and shallow[2] - shallow[1] > 0.05
    # "VGG38 with BN at initialisation: the critical step is below the learning rate, the quadratic model predicts a
    # loss increase that the actual step does not show. After one epoch it is back in range."
    bn = v["vgg38_bn"]["runs"]["0"]["curvature"]
    assert bn[0]["critical_lr"] < bn[0]["lr"] and bn[0]["predicted_change"] > 0 > bn[0]["actual_change"]
    assert bn[1]["critical_lr"] > bn[1]["lr"]
    # The page includes every table the run writes, and the ledger.
    for md in COMMITTED.glob("*.md"):
        if md.name != "claims.md" and not md.name.startswith("chain_rule_vgg38_"):
            assert f'--8<-- "docs/figures/03/{md.name}"' in page, md.name
    assert '--8<-- "docs/figures/03/claims.md"' in page


def test_the_longer_run_script_lengthens_only_the_epochs(tmp_path):
    """scripts/longer_03.py: VGG08 and VGG38 BN for more epochs, everything else the preset's; its table per epoch."""
    spec = importlib.util.spec_from_file_location("longer_03", ROOT / "scripts" / "longer_03.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--preset", "smoke", "--epochs", "2", "--seeds", "0", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["epochs"] == 2 and set(results["variants"]) == {"vgg08", "vgg38_bn"}
    assert all(len(e["runs"]["0"]["history"]) == 2 for e in results["variants"].values())
    table = (tmp_path / "longer.md").read_text().splitlines()
    assert table[0] == "| accuracy % | vgg08 | vgg38_bn |" and len(table) == 2 + 2 + 1  # heading, rule, 2 epochs, test
