"""The classroom kit: a workspace of stubs, its tests in three states, and the grader.

The three states of a workspace are graded with reference solutions that live here
(tests/classroom_solutions/, never in the package or a workspace) and with typical
mistakes made by patching one line of a solution (MISTAKES below). pytest on a workspace
and the grader run in subprocesses, the slow part: there are few of them.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minideep.classroom import exercises, grade, grade_submission, new_workspace
from minideep.classroom.__main__ import main
from minideep.classroom.workspace import TEMPLATES, template_files

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = Path(__file__).resolve().parent / "classroom_solutions"
CHAPTERS = ["ch01_autodiff", "ch02_chain_rule", "ch03_vgg38", "ch04_highway", "ch05_skip_to_head"]

#: Typical mistakes: (file, line of the solution, the mistaken line, exercise, words the message must have).
MISTAKES = {
    "missing sum_to": ("ch01_autodiff.py", "return sum_to(grad * self.b, self.a.shape), sum_to(grad * self.a, self.b.shape)",
                       "return grad * self.b, grad * self.a", "ch01.mul",
                       ["Mul.backward returned a gradient of shape", "sum_to"]),
    "transposed weight gradient": ("ch02_chain_rule.py", "grad.T @ self.x", "self.x.T @ grad", "ch02.linear",
                                   ["gradcheck failed for input 1", "input 1 is weight", "backward gives",
                                    "finite differences give", "dL/dW = G^T x"]),
    "col2im overwrites instead of adding": ("ch03_vgg38.py", "stride * ow : stride] += cols", "stride * ow : stride] = cols",
                                            "ch03.col2im", ["gradcheck failed for input 0", "input 0 is x", "+="]),
}


def solved(folder: Path, files: list[str] | None = None) -> Path:
    """``folder`` with the reference solution of every chapter (or of ``files``) in it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in files or [f"{c}.py" for c in CHAPTERS]:
        shutil.copyfile(SOLUTIONS / name, folder / name)
    return folder


def patch(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} no longer contains {old!r}: update MISTAKES"
    path.write_text(text.replace(old, new))


# ----------------------------------------------------------------------------------------
# The workspace
# ----------------------------------------------------------------------------------------


def test_new_writes_a_stub_file_and_a_test_file_per_chapter(tmp_path: Path, capsys) -> None:
    assert main(["new", str(tmp_path / "ws")]) == 0
    names = {p.name for p in (tmp_path / "ws").iterdir()}
    for chapter in CHAPTERS:
        assert {f"{chapter}.py", f"test_{chapter}.py"} <= names
    assert {"conftest.py", "pytest.ini", "README.md"} <= names
    assert "pytest" in capsys.readouterr().out


def test_new_refuses_a_folder_that_is_not_empty_unless_forced(tmp_path: Path, capsys) -> None:
    work = tmp_path / "ws"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    assert main(["new", str(work)]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and str(work) in err
    assert not (work / "ch01_autodiff.py").exists()
    assert main(["new", str(work), "--force"]) == 0
    assert (work / "ch01_autodiff.py").exists() and (work / "notes.txt").read_text() == "mine"


def test_every_stub_raises_not_implemented_with_a_page_that_exists() -> None:
    for chapter in CHAPTERS:
        text = (TEMPLATES / f"{chapter}.py").read_text()
        pointers = re.findall(r'raise NotImplementedError\("see (docs/[\w/.-]+\.md)', text)
        assert pointers, f"{chapter}.py has no stub that points to a page"
        assert text.count("raise NotImplementedError") == len(pointers), f"a stub in {chapter}.py names no page"
        for page in pointers:
            assert (ROOT / page).is_file(), f"{chapter}.py points to {page}, which does not exist"


def test_the_templates_are_package_data() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"minideep.classroom" = ["templates/*.py", "templates/*.ini", "templates/*.md"]' in pyproject
    assert {p.rsplit(".", 1)[-1] for p in template_files()} == {"py", "ini", "md"}


def test_every_exercise_has_a_reference_solution() -> None:
    for chapter in CHAPTERS:
        stubs = set(re.findall(r"^(?:def|class) (\w+)", (TEMPLATES / f"{chapter}.py").read_text(), re.MULTILINE))
        solution = set(re.findall(r"^(?:def|class) (\w+)", (SOLUTIONS / f"{chapter}.py").read_text(), re.MULTILINE))
        assert stubs <= solution, f"{chapter}: no solution for {sorted(stubs - solution)}"


def test_pytest_on_a_new_workspace_fails_every_exercise_with_not_implemented_yet(tmp_path: Path) -> None:
    new_workspace(tmp_path / "ws")
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # quicker; the workspace needs no plugin
    run = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "ws")], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert f"{len(exercises())} failed" in out
    for exercise in exercises():
        name = exercise.split(".")[1]
        assert re.search(rf"^_+ test_{name} _+\n\w+: not implemented yet: \S+ \(see docs/", out, re.MULTILINE), \
            f"test_{name}: no 'not implemented yet' message:\n{out}"
    # One message per exercise, not a traceback wall.
    assert "Traceback" not in out and "NotImplementedError" not in out and "During handling" not in out
    assert len(out.splitlines()) < 3 * len(exercises()) + 10


# ----------------------------------------------------------------------------------------
# Grading: solutions, mistakes, an import that fails, an endless loop
# ----------------------------------------------------------------------------------------


def test_grade_passes_solutions_explains_mistakes_and_reports_a_bad_import_and_a_crash(tmp_path: Path, capsys) -> None:
    submissions = tmp_path / "submissions"
    solved(submissions / "ada")
    mistakes = solved(submissions / "bo")
    for file, old, new, _, _ in MISTAKES.values():
        patch(mistakes / file, old, new)
    (mistakes / "test_ch01_autodiff.py").write_text("def test_mul(): pass\n")  # a student's own test is ignored
    bad = solved(submissions / "cy", ["ch01_autodiff.py", "ch04_highway.py"])
    bad.joinpath("ch01_autodiff.py").write_text("import not_a_package\n" + (bad / "ch01_autodiff.py").read_text())

    crash = submissions / "dee"  # ends the test process itself at import
    crash.mkdir()
    crash.joinpath("ch01_autodiff.py").write_text("import os\nos._exit(3)\n")

    results = {r.student: r for r in grade(submissions, timeout=120, csv_path=tmp_path / "marks.csv", jobs=2)}
    ids = exercises()

    ada = results["ada"]
    assert ada.passed == len(ids), ada.outcomes
    assert ada.notes() == ""

    bo = results["bo"]
    failed = {e for e, outcome in bo.outcomes.items() if outcome != "passed"}
    assert {m[3] for m in MISTAKES.values()} <= failed
    assert failed <= {m[3] for m in MISTAKES.values()} | {"ch03.conv2d_backward"}  # conv uses the broken col2im
    for mistake, (_, _, _, exercise, words) in MISTAKES.items():
        for word in words:
            assert word in bo.outcomes[exercise], f"{mistake}: {word!r} missing from:\n{bo.outcomes[exercise]}"

    cy = results["cy"]
    ch01 = [e for e in ids if e.startswith("ch01.")]
    for e in ch01:
        assert "ch01_autodiff.py could not be imported" in cy.outcomes[e] and "not_a_package" in cy.outcomes[e]
    assert cy.outcomes["ch04.highway"] == "passed"  # the bad import costs its own chapter only
    assert cy.outcomes["ch02.linear"] == "ch02_chain_rule.py is missing"
    assert "not_a_package" in cy.notes()

    assert results["dee"].problem.startswith("the test run crashed (exit code 3)"), results["dee"].problem
    assert results["dee"].passed == 0

    table = capsys.readouterr().out
    assert re.search(rf"^ada\s+{len(ids)}/{len(ids)}\s", table, re.MULTILINE), table
    assert re.search(rf"^bo\s+{len(ids) - len(failed)}/{len(ids)}\s.*failed: .*ch02\.linear", table, re.MULTILINE), table
    assert re.search(r"^cy\s+2/.*not_a_package", table, re.MULTILINE), table
    with open(tmp_path / "marks.csv", newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert rows["ada"]["passed"] == str(len(ids)) and rows["ada"]["total"] == str(len(ids))
    assert rows["bo"]["ch02.linear"] == "0" and rows["bo"]["ch02.leaky_relu"] == "1"
    assert rows["cy"]["ch04.highway_mix"] == "1" and rows["cy"]["ch01.sin"] == "0"


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="per-exercise time limits need SIGALRM")
def test_grade_stops_an_endless_loop_for_that_exercise_only(tmp_path: Path, capsys) -> None:
    submissions = tmp_path / "submissions"
    loops = solved(submissions / "loops", ["ch01_autodiff.py"])
    patch(loops / "ch01_autodiff.py", "return grad * np.cos(self.x)", "while True:\n            pass")
    solved(submissions / "ada", ["ch01_autodiff.py"])

    assert main(["grade", str(submissions), "--timeout", "2", "--jobs", "2"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "test_sin: timed out after 2 s" in lines["loops"] and "ch02_chain_rule.py is missing" in lines["loops"]
    assert re.match(r"loops\s+5/", lines["loops"]), lines  # sin timed out; the other ch01 exercises passed
    assert re.match(r"ada\s+6/", lines["ada"]), lines


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="the hang ignores SIGALRM")
def test_grade_kills_a_run_that_hangs_past_the_total_limit(tmp_path: Path) -> None:
    hangs = tmp_path / "hangs"
    hangs.mkdir()
    # Ignores the per-exercise alarm and loops at import: only the whole run's limit stops it.
    hangs.joinpath("ch01_autodiff.py").write_text(
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass\n")
    result = grade_submission(hangs, timeout=1, total_timeout=3)
    assert result.problem == "timed out: the whole run was stopped after 3 s"
    assert result.passed == 0 and result.notes() == result.problem


def test_grade_refuses_a_folder_without_student_folders(tmp_path: Path, capsys) -> None:
    assert main(["grade", str(tmp_path)]) == 1
    assert "no sub-folders" in capsys.readouterr().err
    assert main(["grade", str(tmp_path / "nowhere")]) == 1
    assert "is not a folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------
# The checks themselves, in this process (quick)
# ----------------------------------------------------------------------------------------


def test_check_op_names_the_stub_that_is_not_implemented() -> None:
    import minideep as md
    from minideep.classroom.check import check_op

    class Half(md.Function):
        def forward(self, x):
            return x / 2

        def backward(self, grad):
            raise NotImplementedError("see docs/engine.md")

    with pytest.raises(pytest.fail.Exception) as failed:
        check_op("half", lambda x: Half()(x), lambda x: x / 2, [np.ones(3)], ["x"])
    assert str(failed.value) == "half: not implemented yet: test_check_op_names_the_stub_that_is_not_implemented.<locals>.Half.backward (see docs/engine.md)"


def test_check_op_fails_with_the_gradcheck_report_and_the_hint() -> None:
    import minideep as md
    from minideep.classroom.check import check_op

    class Scale(md.Function):  # y = a * b with dL/db wrong (it should be g * a)
        def forward(self, a, b):
            self.a, self.b = a, b
            return a * b

        def backward(self, grad):
            return grad * self.b, grad * self.b

    rng = np.random.default_rng(0)
    with pytest.raises(pytest.fail.Exception) as failed:
        check_op("scale", lambda a, b: Scale()(a, b), lambda a, b: a * b, [rng.standard_normal(4), rng.standard_normal(4)],
                 ["a", "b"], hint="dL/db = g * a.")
    message = str(failed.value)
    assert "scale on input shapes (4,), (4,)" in message and "input 1 is b" in message
    assert "gradcheck failed for input 1 (shape (4,)) at index" in message and "finite differences give" in message
    assert "gradcheck failed for input 0" not in message and message.endswith("dL/db = g * a.")


def test_compare_names_the_element_and_both_values() -> None:
    from minideep.classroom.check import compare

    with pytest.raises(pytest.fail.Exception) as failed:
        compare("f, forward", np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert str(failed.value) == "f, forward: at index (1, 1) minideep gives 4, yours gives 5 (1 of 4 elements differ)."
    with pytest.raises(pytest.fail.Exception, match=r"shape \(3,\), but minideep's has shape \(2,\)"):
        compare("g", np.zeros(3), np.zeros(2))
    with pytest.raises(pytest.fail.Exception, match="returned None"):
        compare("h", None, np.zeros(2))
