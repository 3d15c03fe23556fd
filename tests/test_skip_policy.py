"""The CI skip policy: under CI=true a skip fails unless it names the GPU; elsewhere skips stay skips."""
from __future__ import annotations

import pytest

EXAMPLES = '''
import pytest

def test_needs_ray():
    pytest.importorskip("a_package_that_is_not_installed")

@pytest.mark.skipif(True, reason="needs CuPy and a GPU")
def test_needs_gpu():
    pass

@pytest.mark.xfail(reason="known")
def test_known_failure():
    assert False

def test_plain():
    pass
'''


@pytest.fixture
def examples(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest('pytest_plugins = ["skip_policy"]')
    pytester.makepyfile(test_examples=EXAMPLES)
    return pytester


def test_outside_ci_a_missing_package_is_a_skip(examples, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    result = examples.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)


def test_under_ci_a_missing_package_fails_with_the_skip_reason(examples, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = examples.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=1, failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*test_needs_ray skipped under CI=true: could not import "
                                 "'a_package_that_is_not_installed'*"])


def test_under_ci_a_module_level_skip_fails_the_collection(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")
    pytester.makeconftest('pytest_plugins = ["skip_policy"]')
    pytester.makepyfile(test_module='import pytest\npytest.importorskip("not_installed_either")\n'
                                    'def test_x():\n    pass\n')
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*skipped under CI=true: could not import 'not_installed_either'*"])
