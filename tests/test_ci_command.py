"""CI runs the README's test command, and that command installs every extra the suite tests."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    """The README's quick-start line that runs the tests."""
    lines = [line.strip() for line in (ROOT / "README.md").read_text().splitlines()]
    commands = [line for line in lines if line.startswith("pip install") and "pytest" in line]
    assert len(commands) == 1, f"README.md should give one test command, found {commands}"
    return commands[0]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    command = readme_test_command().removeprefix("pip install")
    assert command in ci, f".ci/run does not run the README's test command (pip install{command})"


def test_the_test_command_installs_every_extra_except_the_gpu():
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    installed = set(re.search(r'-e "\.\[([^\]]*)\]"', readme_test_command()).group(1).split(","))
    # "run" is a subset of "test"; "gpu" (CuPy for CUDA) cannot install on a machine without one.
    missing = extras - installed - {"gpu", "run"}
    assert not missing, f"the README's test command leaves out the extras {sorted(missing)}"
