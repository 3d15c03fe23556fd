"""Chapter 03 (VGG38 broken and fixed): the smoke preset runs, writes results, and resumes."""
import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]


def load_chapter():
    spec = importlib.util.spec_from_file_location("chapter_03", ROOT / "chapters" / "03_vgg38.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_preset_runs_every_variant_and_writes_results(tmp_path):
    chapter = load_chapter()
    chapter.EXPERIMENT.main(["--preset", "smoke", "--out", str(tmp_path), "--no-progress"])
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["variants"]) == set(chapter.VARIANTS)
    assert results["dataset"]["name"] == "bundled"
    for name, entry in results["variants"].items():
        assert 0.0 <= entry["test_accuracy"] <= 1.0
        assert len(entry["history"]) == 1
        flow = entry["gradient_flow"][0]
        assert list(flow)[0] == "input_conv.conv" and list(flow)[-1] == "logit_linear"
    # The coursework's plot: 9 points for VGG08, 39 for VGG38 (every weight, entry BN gamma included).
    assert len(results["variants"]["vgg08"]["gradient_flow"][0]) == 9
    assert len(results["variants"]["vgg38"]["gradient_flow"][0]) == 39
    # The plain deep network's gradient vanishes on the way back even after two steps.
    vgg38 = results["variants"]["vgg38"]["gradient_flow"][0]
    assert vgg38["input_conv.conv"] < 1e-2 * vgg38["logit_linear"]
    for figure in results["figures"]:
        assert (tmp_path / figure).stat().st_size > 1000
    assert "vgg38" in (tmp_path / "table.txt").read_text()


def test_interrupted_run_resumes_without_redoing_finished_variants(tmp_path, monkeypatch):
    chapter = load_chapter()
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
    assert resumed["variants"]["vgg08"] == saved["variants"]["vgg08"]
    assert set(resumed["variants"]) == {"vgg08", "vgg38"}
