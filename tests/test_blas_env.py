"""minideep.blas_env: script runs restart once without the OpenBLAS kernel pins, and say so."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minideep import blas_env

ROOT = Path(__file__).resolve().parents[1]
PINS = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in blas_env.PINS and k != blas_env.DROPPED}
    return {**env, **extra}


def test_restart_drops_the_pins_and_records_them(tmp_path: Path) -> None:
    script = tmp_path / "show.py"
    script.write_text(
        "import json, os, sys\n"
        "from minideep import blas_env\n"
        "blas_env.restart_without_pins('show')\n"
        "print(json.dumps({'pinned': blas_env.pinned(), 'dropped': blas_env.dropped(), 'argv': sys.argv[1:]}))\n"
    )
    out = subprocess.run([sys.executable, str(script), "a", "--b"], env=_env(**PINS), capture_output=True, text=True,
                         check=True, cwd=ROOT)
    shown = json.loads(out.stdout)
    assert shown == {"pinned": {}, "dropped": "OPENBLAS_CORETYPE=Haswell,OPENBLAS_L2_SIZE=512", "argv": ["a", "--b"]}
    assert "show: restarting without OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE" in out.stderr


def test_without_pins_nothing_restarts(tmp_path: Path) -> None:
    script = tmp_path / "show.py"
    script.write_text("from minideep import blas_env\nblas_env.restart_without_pins('show')\nprint(blas_env.dropped())\n")
    out = subprocess.run([sys.executable, str(script)], env=_env(), capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "None" and out.stderr == ""


def test_a_chapter_script_restarts_and_its_results_say_which_kernel_ran(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "chapters" / "01_autodiff.py"), "--preset", "smoke", "--no-progress"]
    subprocess.run([*cmd, "--out", str(tmp_path / "a")], env=_env(**PINS), capture_output=True, check=True, cwd=ROOT)
    machine = json.loads((tmp_path / "a" / "results.json").read_text())["machine"]
    assert machine["openblas_pins_dropped"] == "OPENBLAS_CORETYPE=Haswell,OPENBLAS_L2_SIZE=512"
    assert "openblas_pins" not in machine
    assert "openblas_kernel" in machine  # the kernel OpenBLAS chose (None where threadpoolctl cannot tell)
    # --keep-openblas-env: no restart, the pins are recorded as kept.
    subprocess.run([*cmd, "--out", str(tmp_path / "b"), "--keep-openblas-env"], env=_env(**PINS), capture_output=True,
                   check=True, cwd=ROOT)
    machine = json.loads((tmp_path / "b" / "results.json").read_text())["machine"]
    assert machine["openblas_pins"] == PINS and "openblas_pins_dropped" not in machine


def test_a_library_call_of_main_never_restarts(tmp_path: Path, monkeypatch) -> None:
    """Experiment.main(argv) (tests, notebooks) keeps the process: only a script run restarts."""
    calls = []
    monkeypatch.setattr(blas_env, "restart_without_pins", lambda *a, **k: calls.append(a))
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("chapter01", ROOT / "chapters" / "01_autodiff.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.EXPERIMENT.main(["--preset", "smoke", "--no-progress", "--out", str(tmp_path)])
    assert calls == []


def test_only_the_script_itself_counts_as_a_script_run(monkeypatch) -> None:
    """A test that sets sys.argv (as tests/test_experiment.py does) must not have pytest replaced."""
    monkeypatch.setattr("sys.argv", ["99_test.py", "--preset", "smoke"])
    assert not blas_env.running_as_script()


def test_restart_is_refused_outside_a_script_run(monkeypatch) -> None:
    """Even with pins set, a process that is not the script itself (here: pytest) is never replaced."""
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setattr("os.execve", lambda *a: pytest.fail("os.execve called inside pytest"))
    blas_env.restart_without_pins("test")
