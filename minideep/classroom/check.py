"""What the workspace's tests run on a student's code: ``md.gradcheck`` and minideep's own op.

A test hands ``check_op`` the student's function and minideep's function for the same op,
and inputs on a generated shape. It grades, in this order:

1. the forward pass against minideep's (same shape, same values);
2. the backward pass against central finite differences (``md.gradcheck``: float64, every
   input, a random upstream gradient), whose report names the input, the element and both
   values;
3. the backward pass against minideep's, for the same upstream gradient.

Every failure ends the test with a short message for the student (``pytest.fail`` with
``pytrace=False``): what was compared, where it differs and a hint, never a traceback
from inside this file. An unfinished stub (``NotImplementedError``) reads "not implemented yet".

The fixtures ``student`` (imports the student's module of the test's chapter) and
``time_limit`` (a per-exercise limit while grading) are imported by the workspace's conftest.py.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import signal
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pytest

import minideep as md

from .workspace import TIMEOUT_VARIABLE

#: Agreement with minideep's own op, in float64.
ATOL, RTOL = 1e-8, 1e-6

SHAPE_HINT = (
    "A gradient has the shape of its input. If the input was broadcast in forward, sum the "
    "gradient back to the input's shape with sum_to (docs/broadcasting.md)."
)


def fail(message: str) -> None:
    """End the test with ``message``: no traceback, and not the error it replaces either."""
    try:
        pytest.fail(message, pytrace=False)
    except pytest.fail.Exception as failed:
        failed.__suppress_context__ = True  # what ``raise ... from None`` does
        raise


@contextlib.contextmanager
def graded(name: str) -> Iterator[None]:
    """Run student code: an unfinished stub and the engine's shape check become short messages."""
    try:
        yield
        return
    except NotImplementedError as err:
        message = f"{name}: not implemented yet: {_raised_in(err)}" + (f" ({err})" if str(err) else "")
    except RuntimeError as err:
        if "returned a gradient of shape" not in str(err):
            raise
        message = f"{name}: {err}.\n{SHAPE_HINT}"
    fail(message)


def _raised_in(err: BaseException) -> str:
    """The function that raised ``err`` ("Sin.forward"), from its traceback's innermost frame."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code if tb is not None else None
    return getattr(code, "co_qualname", getattr(code, "co_name", "?"))


def compare(what: str, got: Any, expected: Any, hint: str = "") -> None:
    """Fail unless ``got`` has ``expected``'s shape and values (within ATOL + RTOL |expected|)."""
    hint = f"\n{hint}" if hint else ""
    if got is None:
        fail(f"{what}: returned None (a missing return?).{hint}")
    got, expected = md.Tensor(got).numpy(), md.Tensor(expected).numpy()
    if got.shape != expected.shape:
        fail(f"{what}: shape {got.shape}, but minideep's has shape {expected.shape}.{hint}")
    error = np.abs(got - expected)
    bad = ~(error <= ATOL + RTOL * np.abs(expected))  # ~(<=) also catches nan
    if bad.any():
        k = np.unravel_index(np.argmax(np.where(bad, np.nan_to_num(error, nan=np.inf), -1.0)), got.shape)
        at = tuple(int(i) for i in k)
        fail(f"{what}: at index {at} minideep gives {expected[k]:.8g}, yours gives {got[k]:.8g} "
             f"({int(bad.sum())} of {bad.size} elements differ).{hint}")


def check_op(name: str, yours: Callable[..., md.Tensor], minideeps: Callable[..., md.Tensor],
             inputs: Sequence[np.ndarray], names: Sequence[str] | None = None, hint: str = "",
             seed: int = 0) -> None:
    """Grade ``yours(*tensors)`` against ``minideeps(*tensors)`` on float64 copies of ``inputs``.

    Every input is a leaf that requires grad. If ``minideeps`` returns a tensor without a
    graph (an op minideep does not have, computed with NumPy), only its forward is compared.
    """
    def leaves() -> list[md.Tensor]:
        return [md.tensor(np.array(x, dtype=np.float64), requires_grad=True) for x in inputs]

    reference = leaves()
    _grade(name, yours, lambda: minideeps(*reference), leaves, reference, names, hint, seed)


def check_module(name: str, yours: Callable[..., md.Tensor], module: md.nn.Module, x: np.ndarray,
                 weights: dict[str, np.ndarray], hint: str = "", seed: int = 0) -> None:
    """Grade ``yours(x, *weights.values())`` against ``module(x)`` with those weights loaded.

    ``weights`` maps the module's parameter names (``"transform.weight"``, ...) to arrays;
    the module is converted to float64, and its parameters' gradients are compared with yours.
    """
    params = dict(module.double().named_parameters())
    for key, w in weights.items():
        if key not in params:
            raise KeyError(f"check_module: {type(module).__name__} has no parameter {key!r}; it has {sorted(params)}")
        params[key].data = np.array(w, dtype=np.float64)
        params[key].grad = None
    x_ref = md.tensor(np.array(x, dtype=np.float64), requires_grad=True)

    def leaves() -> list[md.Tensor]:
        return [md.tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in (x, *weights.values())]

    reference = [x_ref, *(params[key] for key in weights)]
    _grade(name, yours, lambda: module(x_ref), leaves, reference, ["x", *weights], hint, seed)


def _grade(name, yours, run_reference, leaves, reference, names, hint, seed) -> None:
    """Forward, gradcheck, backward: ``leaves()`` makes fresh inputs, ``reference`` gets minideep's gradients."""
    mine = leaves()
    names = list(names) if names else [f"input {i}" for i in range(len(mine))]
    label = f"{name} on input shapes {', '.join(str(t.shape) for t in mine)}"
    with graded(name):
        out = yours(*mine)
    if not isinstance(out, md.Tensor):
        fail(f"{label}: returned {type(out).__name__}, expected a Tensor (call your Function on tensors)")
    expected = run_reference()
    compare(f"{label}, forward", out.data, expected.data, hint)

    report = io.StringIO()
    with graded(name), contextlib.redirect_stdout(report):
        ok = md.gradcheck(yours, leaves(), seed=seed)
    if not ok:
        numbered = ", ".join(f"input {i} is {n}" for i, n in enumerate(names))
        fail(f"{label}: the backward pass disagrees with finite differences (md.gradcheck; {numbered}):\n"
             f"{report.getvalue().strip()}" + (f"\n{hint}" if hint else ""))

    if not expected.requires_grad:
        return
    v = np.random.default_rng(seed + 1).standard_normal(out.shape)
    with graded(name):
        out.backward(v)
    expected.backward(v)
    for n, a, b in zip(names, mine, reference):
        compare(f"{label}, dL/d{n}", _grad(a), _grad(b), hint)


def _grad(t: md.Tensor) -> np.ndarray:
    return np.zeros(t.shape) if t.grad is None else md.Tensor(t.grad).numpy()


# ----------------------------------------------------------------------------------------
# Fixtures for the workspace's conftest.py
# ----------------------------------------------------------------------------------------

_import_failures: dict[str, str] = {}


@pytest.fixture(autouse=True)
def time_limit(request: pytest.FixtureRequest) -> Iterator[None]:
    """While grading: stop an exercise that runs past MINIDEEP_CLASSROOM_TIMEOUT seconds."""
    limit = float(os.environ.get(TIMEOUT_VARIABLE) or 0)
    if limit <= 0 or not hasattr(signal, "SIGALRM"):  # no limit asked, or no alarms (Windows)
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        fail(f"{request.node.name}: timed out after {limit:g} s (an endless loop?)")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def student(request: pytest.FixtureRequest, time_limit: None) -> Any:
    """The student's module of this chapter: test_ch01_autodiff.py grades ch01_autodiff.py."""
    name = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    if name in _import_failures:  # fail every exercise of the file at once, without importing again
        fail(_import_failures[name])
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        message = (f"{name}.py is missing" if err.name == name else
                   f"{name}.py could not be imported: it imports {err.name!r}, which is not installed here")
    except pytest.fail.Exception as err:  # the time limit struck during the import
        message = f"importing {name}.py: {err.msg}"
    except Exception as err:  # noqa: BLE001 - any error in the student's module is reported, not raised
        message = f"{name}.py could not be imported: {type(err).__name__}: {err}"
    _import_failures[name] = message
    fail(message)
