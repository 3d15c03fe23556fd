"""Grade a folder of submissions, one sub-folder per student, each in a subprocess with a time limit.

For each student the grader copies their Python files (not their tests or conftest.py: those
may have been edited) into a temporary folder beside fresh copies of the workspace's tests,
and runs pytest there in a subprocess of its own:

* every exercise has ``timeout`` seconds (the tests' ``time_limit`` fixture stops it), so an
  endless loop fails that exercise only;
* the whole run has ``total_timeout`` seconds (by default every exercise's limit plus a
  minute); past that the process group is killed and the student is reported as timed out;
* a file that does not import (a syntax error, a package that is not installed) fails the
  exercises of its chapter, with the error as the note.

pytest writes a JUnit XML report, one test case per exercise, which gives the table.
"""
from __future__ import annotations

import ast
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .workspace import TEMPLATES, TIMEOUT_VARIABLE, template_files

PASSED = "passed"


def exercises() -> list[str]:
    """The exercise ids in workspace order, "ch01.sin" for test_sin in test_ch01_autodiff.py."""
    ids = []
    for name in template_files():
        if name.startswith("test_") and name.endswith(".py"):
            tree = ast.parse((TEMPLATES / name).read_text(encoding="utf-8"))
            chapter = name[len("test_"):].split("_")[0]
            ids += [f"{chapter}.{node.name[len('test_'):]}" for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
    return ids


@dataclass
class Result:
    """One student's grades: ``outcomes[exercise]`` is "passed" or the failure's message."""

    student: str
    outcomes: dict[str, str] = field(default_factory=dict)
    problem: str = ""  # what stopped the whole run (timed out, crashed, nothing handed in)

    @property
    def passed(self) -> int:
        return sum(outcome == PASSED for outcome in self.outcomes.values())

    def notes(self) -> str:
        """The problem, or what failed: import errors and time-outs spelled out, other failures named."""
        if self.problem:
            return self.problem
        failed = [e for e, outcome in self.outcomes.items() if outcome != PASSED]
        firsts = {e: self.outcomes[e].splitlines()[0] if self.outcomes[e] else "" for e in failed}
        whole_file = ("could not be imported", ".py is missing", "timed out")
        spelled = {o for o in firsts.values() if any(words in o for words in whole_file)}
        named = [e for e in failed if firsts[e] not in spelled]
        return "; ".join(sorted(spelled) + ([f"failed: {', '.join(named)}"] if named else []))


def grade_submission(folder: str | Path, timeout: float = 30.0, total_timeout: float | None = None) -> Result:
    """Run fresh copies of the workspace's tests on the student's files in ``folder``."""
    folder = Path(folder)
    ids = exercises()
    result = Result(folder.name, {e: "not graded" for e in ids})
    mine = [p for p in folder.glob("*.py") if not p.name.startswith("test_") and p.name != "conftest.py"]
    if not any(p.name.startswith("ch") for p in mine):
        result.problem = "no exercise files (ch01_autodiff.py, ...) handed in"
        return result
    total_timeout = timeout * len(ids) + 60 if total_timeout is None else total_timeout
    with tempfile.TemporaryDirectory(prefix="minideep-grade-") as work:
        work = Path(work)
        for path in mine:
            shutil.copyfile(path, work / path.name)
        for name in template_files():  # fresh tests, conftest.py and pytest.ini, never the student's
            if name.startswith("test_") or name in ("conftest.py", "pytest.ini"):
                shutil.copyfile(TEMPLATES / name, work / name)
        report, log = work / ".report.xml", work / ".pytest.log"
        package_root = str(Path(__file__).resolve().parents[2])  # the folder that holds minideep/
        # No third-party pytest plugins: they would slow every run down and could change its outcome.
        env = {**os.environ, TIMEOUT_VARIABLE: str(timeout), "PYTHONDONTWRITEBYTECODE": "1",
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "pytest", "-c", str(work / "pytest.ini"), "--rootdir", str(work),
                   f"--junitxml={report}", str(work)]
        with open(log, "wb") as out:
            process = subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                process.wait(timeout=total_timeout)
            except subprocess.TimeoutExpired:
                _kill(process)
                result.problem = f"timed out: the whole run was stopped after {total_timeout:g} s"
                return result
        if not report.exists():
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            result.problem = f"the test run crashed (exit code {process.returncode}): {tail[0][:200]}"
            return result
        result.outcomes.update(_outcomes(report))
    return result


def _kill(process: subprocess.Popen) -> None:
    """Stop the run and anything it started (its own process group, where there are groups)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (AttributeError, ProcessLookupError, PermissionError):
        process.kill()
    process.wait()


def _outcomes(report: Path) -> dict[str, str]:
    """{exercise id: "passed" or its failure's message} from pytest's JUnit XML."""
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        module, test = case.get("classname", "").rpartition(".")[2], case.get("name", "")
        if not module.startswith("test_") or not test.startswith("test_"):
            continue  # a collection error of a test file names no exercise
        exercise = f"{module[len('test_'):].split('_')[0]}.{test[len('test_'):]}"
        problems = [c for c in case if c.tag in ("failure", "error", "skipped")]
        outcomes[exercise] = _message(problems[0]) if problems else PASSED
    return outcomes


def _message(element: ET.Element) -> str:
    """The student-facing message of a failure (pytest prefixes "Failed: "; a fixture's adds more)."""
    message = (element.text or "").strip() or element.get("message") or element.tag
    return message.split("Failed: ", 1)[-1].strip().rstrip('"')[:2000]


def grade(submissions: str | Path, timeout: float = 30.0, total_timeout: float | None = None,
          csv_path: str | Path | None = None, echo: Callable[[str], None] | None = print,
          jobs: int = 1) -> list[Result]:
    """Grade every sub-folder of ``submissions`` (one per student); print the table, write the CSV.

    ``jobs`` students are graded at once (each in its own subprocess); the table keeps their order.
    """
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise FileNotFoundError(f"classroom grade: {submissions} is not a folder of submissions")
    students = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not students:
        raise ValueError(f"classroom grade: {submissions} has no sub-folders (one per student expected)")
    if jobs < 1:
        raise ValueError(f"classroom grade: jobs must be at least 1, got {jobs}")

    def one(folder: Path) -> Result:
        result = grade_submission(folder, timeout, total_timeout)
        if echo:
            echo(f"graded {result.student}: {result.passed}/{len(result.outcomes)} passed")
        return result

    with ThreadPoolExecutor(jobs) as pool:  # threads only wait: the work is in the subprocesses
        results = list(pool.map(one, students))
    if csv_path is not None:
        write_csv(results, csv_path)
    if echo:
        echo(table(results))
    return results


def write_csv(results: list[Result], path: str | Path) -> None:
    """One row per student: passed, total, 1/0 per exercise, notes."""
    ids = exercises()
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "passed", "total", *ids, "notes"])
        for r in results:
            writer.writerow([r.student, r.passed, len(ids), *(int(r.outcomes.get(e) == PASSED) for e in ids), r.notes()])


def table(results: list[Result]) -> str:
    """A plain-text table: passed exercises per student and per chapter, and the notes."""
    ids = exercises()
    chapters = sorted({e.split(".")[0] for e in ids})
    header = ["student", "passed", *chapters, "notes"]
    rows = [[r.student, f"{r.passed}/{len(ids)}",
             *(f"{sum(r.outcomes.get(e) == PASSED for e in ids if e.startswith(c + '.'))}/"
               f"{sum(e.startswith(c + '.') for e in ids)}" for c in chapters), r.notes()] for r in results]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)) + "  " + row[-1] for row in [header, *rows]]
    return "\n".join(line.rstrip() for line in lines)
