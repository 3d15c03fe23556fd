"""minideep.allocator: freed memory kept for the next step (glibc), measured in page faults, not time."""
from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from minideep import allocator

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# A stand-in for training steps: a 64 MiB block allocated, written and freed, then again.
STEPS = """
import json, resource, sys
import numpy as np
from minideep import allocator
kept = allocator.keep_freed_memory() if sys.argv[1] == "keep" else False
faults = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(16 << 20, dtype=np.float32)
    del a
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "applied": allocator.applied(), "faults": faults}))
"""


def _steps(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@glibc
def test_kept_memory_is_not_faulted_in_again() -> None:
    default, kept = _steps("default"), _steps("keep")
    # (Pages of 4 KiB or, where NumPy asks for transparent huge pages, 2 MiB: a few hundred faults.)
    assert default["applied"] is None and not default["kept"]
    assert min(default["faults"][1:]) >= 0.9 * default["faults"][0] > 0  # every step faults its block in again
    assert kept["kept"] and kept["applied"] == {"mmap_threshold": allocator.KEEP_BYTES,
                                                "trim_threshold": allocator.KEEP_BYTES}
    assert kept["faults"][0] >= 0.5 * default["faults"][0]  # the first step takes the memory from the kernel
    assert max(kept["faults"][1:]) <= kept["faults"][0] // 20  # the later ones reuse it


@glibc
def test_a_chapter_script_keeps_freed_memory_and_its_results_say_so(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "chapters" / "01_autodiff.py"), "--preset", "smoke", "--no-progress",
           "--out", str(tmp_path)]
    subprocess.run(cmd, capture_output=True, check=True, cwd=root)
    machine = json.loads((tmp_path / "results.json").read_text())["machine"]
    assert machine["malloc"] == {"mmap_threshold": allocator.KEEP_BYTES, "trim_threshold": allocator.KEEP_BYTES}


def test_a_library_call_of_main_sets_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Experiment.main(argv) (tests, notebooks) leaves the caller's allocator alone."""
    from minideep.experiment import chapter_experiment  # noqa: PLC0415

    monkeypatch.setattr(allocator, "_applied", None)
    root = Path(__file__).resolve().parents[1]
    chapter_experiment(root / "chapters" / "01_autodiff.py").main(["--preset", "smoke", "--no-progress",
                                                                     "--out", str(tmp_path)])
    assert allocator.applied() is None
    assert "malloc" not in json.loads((tmp_path / "results.json").read_text())["machine"]


def test_without_glibc_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    monkeypatch.setattr(allocator, "_applied", None)
    assert allocator.keep_freed_memory() is False
    assert allocator.applied() is None


def test_the_machine_record_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from minideep import experiment  # noqa: PLC0415

    monkeypatch.setattr(allocator, "_applied", None)
    assert "malloc" not in experiment.machine()
    monkeypatch.setattr(allocator, "_applied", {"mmap_threshold": 1, "trim_threshold": 1})
    assert experiment.machine()["malloc"] == {"mmap_threshold": 1, "trim_threshold": 1}
