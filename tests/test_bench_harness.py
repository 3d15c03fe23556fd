"""The benchmark harness's load check: a timing taken under load is marked, never a headline."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[1] / "benchmarks" / "harness.py"


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("bench_harness", HARNESS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


def quiet(harness, threads, samples):
    return harness.Quiet(threads, 2, samples, (0.1, 0.1, 0.1), (0.2, 0.1, 0.1))


def test_two_threads_on_two_cores_need_an_idle_machine(harness):
    assert quiet(harness, 2, [0, 0, 1, 0]).valid            # a quarter of a core of slack
    assert not quiet(harness, 2, [1, 1, 0, 1]).valid          # one other program: half the machine
    assert "UNDER LOAD" in quiet(harness, 2, [3, 3]).describe()


def test_one_thread_leaves_a_core_for_others(harness):
    assert quiet(harness, 1, [1, 1, 1]).valid
    assert not quiet(harness, 1, [2, 3, 2]).valid
    assert quiet(harness, 1, [1]).as_dict()["free_cores"] == 1


def test_no_samples_is_not_quiet(harness):
    assert not quiet(harness, 1, []).valid and not quiet(harness, 1, [-1]).valid


def test_compare_samples_the_competing_load_before_every_block(harness):
    samples: list[int] = []
    times = harness.compare({"a": lambda: None, "b": lambda: None}, rounds=3, warmup=1, pause_s=0.0,
                            min_block_s=0.001, samples=samples)
    assert len(samples) == 6 and all(s >= 0 for s in samples)  # one per block; Linux has /proc/stat
    assert set(times) == {"a", "b", "a_min", "b_min"}
