"""``new_workspace``: copy the stub and test templates (package data) into a student's folder."""
from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

TEMPLATES = resources.files("minideep.classroom") / "templates"
#: Seconds per exercise, which the grader sets for the tests (``grade --timeout``); unset: no limit.
TIMEOUT_VARIABLE = "MINIDEEP_CLASSROOM_TIMEOUT"


def template_files() -> list[str]:
    """Names of the files a workspace gets: stubs, tests, conftest.py, pytest.ini, README.md."""
    return sorted(p.name for p in TEMPLATES.iterdir() if p.is_file() and p.suffix in (".py", ".ini", ".md"))


def new_workspace(folder: str | Path, force: bool = False) -> list[Path]:
    """Write a student's workspace into ``folder`` and return the files written.

    A folder that exists and is not empty is refused (it may hold a student's work), unless
    ``force``: then the template files are written over, and other files are left alone.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"classroom new: {folder} exists and is not a folder")
    if folder.exists() and any(folder.iterdir()) and not force:
        raise FileExistsError(
            f"classroom new: {folder} already exists and is not empty (it may hold someone's work); "
            "choose a new folder, or pass --force to overwrite the exercise files in it"
        )
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in template_files():
        with resources.as_file(TEMPLATES / name) as source:
            shutil.copyfile(source, folder / name)
        written.append(folder / name)
    return written
