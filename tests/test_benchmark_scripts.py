"""The benchmark scripts that feed the benchmarks page run and say what they measured (no timing thresholds)."""
from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_flop_count_of_a_vgg_step_follows_its_convolutions() -> None:
    profile = _load("profile_step")
    conv = lambda c_in, side: 2 * 9 * c_in * 32 * side * side * 100  # noqa: E731  one 3x3 conv, batch 100, forward
    # VGG08: the entry conv (forward + weight gradient only), then per stage a conv at the stage's size and one
    # after the pool, each forward + input gradient + weight gradient; the linear layer 32 -> 100.
    vgg08 = 2 * conv(3, 32) + 3 * (conv(32, 32) + conv(32, 16) + conv(32, 16) + conv(32, 8) + conv(32, 8) + conv(32, 4))
    assert profile.vgg_flops(0) == pytest.approx(vgg08 + 3 * 2 * 32 * 100 * 100)
    assert profile.vgg_flops(5) / 1e9 == pytest.approx(84.0, abs=0.1)  # the 84 GFLOP


def test_the_profile_accounts_for_the_whole_step(tmp_path: Path) -> None:
    profile = _load("profile_step")
    assert profile.main(["--blocks", "0", "--steps", "1", "--threads", "1", "--out", str(tmp_path)]) == 0
    # Under OPENBLAS_CORETYPE (CI keeps the environment's pins) the files say so in their names.
    (path,) = tmp_path.glob("profile-vgg08-1thread*.json")
    report = json.loads(path.read_text())
    assert path.name == "profile-vgg08-1thread.json" if not report["openblas_pins"] else "pinned" in path.name
    rows = report["rows_s"]
    assert {"conv forward", "conv backward-input products", "conv backward-weight products", "optimizer (Adam)",
            "engine Python (graph, sort, gradient sums)"} <= set(rows)
    assert sum(rows.values()) == pytest.approx(report["step_s"])  # the parts add up to the step, by construction
    assert all(v >= 0 for k, v in rows.items() if not k.startswith("engine"))
    text = path.with_suffix(".md").read_text()
    assert text.startswith("## Where the time of one VGG08 training step goes (1 thread") and "FLOP floor" in text


def test_chapter_times_reads_every_committed_run(tmp_path: Path) -> None:
    times = _load("chapter_times")
    assert times.main(["--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "chapter-times.json").read_text())
    assert [r["chapter"] for r in rows] == ["01", "02", "03", "04", "05", "06", "07"]
    for row in rows:
        results = json.loads((ROOT / "docs" / "figures" / row["chapter"] / "results.json").read_text())
        assert row["command_s"] == (results.get("sweep") or {}).get("wall_time_s")  # read, never retyped
    assert (tmp_path / "chapter-times.md").read_text().startswith("## Each chapter's quick preset")


def test_the_committed_chapter_times_page_is_current(tmp_path: Path) -> None:
    """benchmarks/results/chapter-times.md is what chapter_times.py makes of the committed runs today."""
    committed = ROOT / "benchmarks" / "results" / "chapter-times.md"
    if not committed.exists():
        pytest.fail("benchmarks/results/chapter-times.md is missing: run python benchmarks/chapter_times.py")
    _load("chapter_times").main(["--out", str(tmp_path)])
    assert (tmp_path / "chapter-times.md").read_text() == committed.read_text()


def test_the_benchmarks_page_prose_agrees_with_the_committed_results() -> None:
    """docs/benchmarks.md's sentences about the targets and the profiles, checked against benchmarks/results/."""
    results = ROOT / "benchmarks" / "results"
    page = (ROOT / "docs" / "benchmarks.md").read_text()

    def items(name: str) -> dict:
        return {r["name"]: r for r in json.loads((results / name).read_text())["results"]}

    one, two = items("cpu-1thread.json"), items("cpu.json")
    for table in (one, two):
        assert all(r["extra"]["conditions"]["valid"] for r in table.values() if "conditions" in r.get("extra", {}))
    steps = [n for n in one if "training step" in n]
    memory = next(n for n in one if "peak memory" in n)
    # "At one thread each, both training steps are within the 1.3x target and the peak memory is a little above
    # PyTorch's; at two threads each, both steps miss the target and the memory is below PyTorch's"
    assert len(steps) == 2 and all(one[n]["target_met"] for n in steps) and not any(two[n]["target_met"] for n in steps)
    assert "At one thread each, both training steps are within the 1.3x\ntarget" in page
    # "the single measurement in the two-thread table is just below PyTorch's, but repeated in fresh processes
    # minideep's growth is a few percent above PyTorch's median at one thread and at two, and very steady, while
    # PyTorch's varies from process to process by about as much as the difference"
    assert 0.95 < two[memory]["ratio"] <= 1.0
    spread = json.loads((results / "memory-spread.json").read_text())["records"]
    values = {(r["framework"], r["threads"]): r["growth_mib"] for r in spread}
    for threads in (1, 2):
        ours, theirs = values["minideep", threads], values["torch", threads]
        assert len(ours) == len(theirs) >= 5
        ratio = statistics.median(ours) / statistics.median(theirs)
        assert 1.0 < ratio < 1.15 and max(ours) - min(ours) < 0.01 * min(ours)
        assert max(theirs) - min(theirs) > 0.3 * (statistics.median(ours) - statistics.median(theirs))
    # "its step is barely faster with two threads than with one ... PyTorch's step is about a third faster"
    vgg38 = next(n for n in steps if "VGG38" in n)
    assert two[vgg38]["minideep_s"] / one[vgg38]["minideep_s"] > 0.85
    assert 0.55 < two[vgg38]["torch_s"] / one[vgg38]["torch_s"] < 0.75
    # "its convolution products ... speed up by less than a fifth" and "run at less than half the rate of the
    # 1024x1024 product that sets the FLOP floor"
    profiles = {t: json.loads((results / f"profile-vgg38-{t}thread.json").read_text()) for t in (1, 2)}
    products = {t: sum(v for k, v in p["rows_s"].items() if k.startswith("conv") and "rest" not in k)
                for t, p in profiles.items()}
    assert products[1] / products[2] < 1.2
    assert profiles[2]["gflop"] / products[2] < 0.5 * profiles[2]["gemm_gflops"]
    # "Pinned to Haswell, NumPy's float32 products here run at about half the rate"
    pinned = json.loads((results / "profile-vgg38-2thread-haswell-pinned.json").read_text())
    assert pinned["openblas_pins"] and 0.4 < pinned["gemm_gflops"] / profiles[2]["gemm_gflops"] < 0.65


def test_memory_spread_writes_every_process_s_value(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    spread = _load("memory_spread")
    assert spread.main(["--repeats", "1", "--threads", "1", "--out", str(tmp_path)]) == 0
    records = json.loads((tmp_path / "memory-spread.json").read_text())["records"]
    assert [(r["framework"], r["threads"], len(r["growth_mib"])) for r in records] == [("minideep", 1, 1), ("torch", 1, 1)]
    assert all(v > 50 for r in records for v in r["growth_mib"])  # two VGG38 steps hold hundreds of MiB
    assert (tmp_path / "memory-spread.md").read_text().startswith("## VGG38 step peak memory")
