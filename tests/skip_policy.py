"""Under ``CI=true``, a test that skips for any reason but a missing GPU fails the run.

A skip hides a missing install step behind a green run: the Ray tests skip without the
``sweep`` extra, the browser tests without Chromium, the real-data tests without Debian's
Fashion-MNIST. CI installs all of them, so there such a skip is a defect and is reported as a
failure, with the skip's own reason in the message. Only a skip that names the GPU (``GPU``,
``CuPy`` or ``CUDA`` in its reason) is expected on a machine without one.

Loaded by ``tests/conftest.py`` (``pytest_plugins``); outside CI nothing changes.
"""
from __future__ import annotations

import os
import re
from typing import Any

import pytest

#: A skip reason that names the accelerator: the one skip a CPU-only CI machine expects.
GPU_REASON = re.compile(r"\b(gpu|cupy|cuda)\b", re.IGNORECASE)


def strict() -> bool:
    """True when skips must fail: ``CI`` is set to ``true`` (or ``1``)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def skip_reason(report: Any) -> str:
    """The reason of a skipped report (pytest stores it as ``(path, line, "Skipped: why")``)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def unexpected(report: Any) -> bool:
    """Whether ``report`` is a skip that CI must not accept (not an xfail, not a GPU skip)."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return False
    return GPU_REASON.search(skip_reason(report)) is None


def fail_instead(report: Any) -> None:
    """Turn a skipped report into a failure whose message gives the skip's reason."""
    where = report.nodeid or "collection"
    report.longrepr = (f"{where} skipped under CI=true: {skip_reason(report)}\n"
                       "CI installs everything the suite needs (.ci/run): add the missing install step "
                       "instead of skipping; only skips that name the GPU are allowed.")
    report.outcome = "failed"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    if strict() and unexpected(report):
        fail_instead(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    # A module-level ``pytest.importorskip`` skips the whole file at collection.
    outcome = yield
    report = outcome.get_result()
    if strict() and unexpected(report):
        fail_instead(report)
