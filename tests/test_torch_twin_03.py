"""Chapter 03's PyTorch twin (scripts/torch_twin_03.py) trains the chapter's networks on the chapter's batches."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_twin_writes_every_variant_and_seed(tmp_path, torch):
    spec = importlib.util.spec_from_file_location("torch_twin_03", ROOT / "scripts" / "torch_twin_03.py")
    twin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(twin)
    out = tmp_path / "twin.json"
    assert twin.main(["--preset", "smoke", "--variants", "vgg08", "vgg38_bn_res", "--seeds", "0", "1",
                      "--threads", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["variants"]) == {"vgg08", "vgg38_bn_res"}
    for runs in result["variants"].values():
        assert set(runs) == {"0", "1"}
        for run in runs.values():
            assert 0.0 <= run["test_accuracy"] <= 1.0 and len(run["history"]) == result["config"]["epochs"]
    # The twin starts from the chapter's own initial weights: same parameter count as minideep's network.
    chapter = twin.load_chapter()
    assert result["variants"]["vgg08"]["0"]["parameters"] == chapter.build("vgg08", 10).num_parameters()
