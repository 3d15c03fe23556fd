"""Check a backward pass against central finite differences, in float64.

For a function f and a random upstream gradient v, backward gives the vector-Jacobian
product v^T J. Finite differences give the same numbers one input element at a time:

    d(v . f)/dx_k  ~=  (v . f(x + eps e_k) - v . f(x - eps e_k)) / (2 eps)

with an error of order eps^2. A random v (not all ones) catches a backward that, say,
sums where it should not.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .autograd import Tensor, no_grad
from .backend import as_numpy, get_array_module


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    verbose: bool = True,
) -> bool:
    """True when ``fn``'s backward agrees with central differences for every input element.

    Every input that ``requires_grad`` is checked, element by element, with
    ``|analytic - numeric| <= atol + rtol * |numeric|``. While it runs, each such tensor
    holds a float64 copy of its data (so ``fn`` may also reach it through a module, as
    ``lambda x, *p: model(x)`` does); afterwards every input has its own array, dtype and
    ``.grad`` back: the caller's tensors are never converted. On failure it prints, for the worst element of each failing input, its index,
    both values and the difference, and returns False.

    Args:
        fn: maps the input tensors to one output tensor (any shape).
        inputs: the tensors to differentiate with respect to (others may be constants).
        eps: the finite-difference step.
        atol, rtol: absolute and relative tolerance.
        seed: seed of the random upstream gradient.
        verbose: print a report on failure.
    """
    inputs = [x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float64)) for x in inputs]
    checked = [i for i, x in enumerate(inputs) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    saved = [(inputs[i], inputs[i].data, inputs[i].grad) for i in checked]
    try:
        for x, data, _ in saved:
            # C order, so that the flat view nudged below is a view of x.data, not a copy (say of x.T).
            x.data, x.grad = data.astype(np.float64, order="C", copy=True), None
        return _check(fn, inputs, checked, eps, atol, rtol, seed, verbose)
    finally:
        for x, data, grad in saved:
            x.data, x.grad = data, grad


def _check(fn: Callable[..., Tensor], inputs: list[Tensor], checked: list[int], eps: float, atol: float,
           rtol: float, seed: int, verbose: bool) -> bool:
    """The comparison itself, on inputs that already hold float64 data."""
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    v = np.random.default_rng(seed).standard_normal(out.shape)
    # xp.asarray moves v to the output's device (cupy.ndarray(v) would read v as a shape).
    v = get_array_module(out.data).asarray(v, dtype=out.dtype)
    out.backward(v)

    def projected(*args: Tensor) -> float:
        with no_grad():
            return float((as_numpy(fn(*args).data) * as_numpy(v)).sum())

    ok = True
    for i in checked:
        x = inputs[i]
        analytic = np.zeros(x.shape) if x.grad is None else as_numpy(x.grad)
        numeric = np.zeros(x.shape)
        flat = x.data.reshape(-1)  # a view: nudging it nudges x
        for k in range(flat.size):
            original = float(flat[k])
            flat[k] = original + eps
            plus = projected(*inputs)
            flat[k] = original - eps
            minus = projected(*inputs)
            flat[k] = original
            numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
        error = np.abs(analytic - numeric)
        allowed = atol + rtol * np.abs(numeric)
        if np.any(error > allowed) or not np.all(np.isfinite(analytic)):
            ok = False
            if verbose:
                worst = np.unravel_index(np.argmax(error - allowed), x.shape)
                print(
                    f"gradcheck failed for input {i} (shape {x.shape}) at index {tuple(int(w) for w in worst)}: "
                    f"backward gives {analytic[worst]:.8g}, finite differences give {numeric[worst]:.8g} "
                    f"(difference {error[worst]:.3g}, allowed {allowed[worst]:.3g}; "
                    f"{int(np.sum(error > allowed))} of {x.size} elements disagree)"
                )
    return ok
