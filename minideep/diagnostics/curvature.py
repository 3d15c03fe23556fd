"""Curvature of the loss along the gradient: Pricope's second-order argument, measured.

A gradient step w -> w - eps g changes the loss by, to second order,

    L(w - eps g) - L(w) ~ -eps g^T g + 1/2 eps^2 g^T H g,

so the step helps only while eps < 2 g^T g / g^T H g: where the curvature along the
gradient, g^T H g / g^T g, is large, the usable learning rate is small, whatever the size
of g. ``curvature_along_gradient`` measures the pieces (one Hessian-vector product) and
the actual change of the loss for a step on the same batch; ``largest_hessian_eigenvalue``
finds the sharpest direction of all by power iteration on H v.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Sequence

import numpy as np

from ..autograd import Tensor, enable_grad, no_grad
from ..backend import as_numpy, get_array_module
from .jacobian import _data, hessian_vector_product, measuring


def _dot(a: Sequence[Any], b: Sequence[Any]) -> float:
    return float(sum(float(as_numpy((x * y).sum())) for x, y in zip(a, b)))


def _loss_and_gradient(loss_fn: Callable[[], Tensor], params: list[Tensor], fn: str) -> tuple[float, list[Any]]:
    """L(w) and its exact gradient, in float64 (parameters promoted for the pass, then put back)."""
    saved = [(p.data, p.grad, p.requires_grad) for p in params]
    try:
        for p in params:
            p.data, p.grad, p.requires_grad = _data(p, "params", fn), None, True
        with enable_grad():
            loss = loss_fn()
            if not isinstance(loss, Tensor) or loss.size != 1:
                raise ValueError(f"{fn}: loss_fn must return a scalar Tensor, got {type(loss).__name__}")
            loss.backward()
        grads = [p.grad.astype(np.float64) if p.grad is not None else get_array_module(p.data).zeros(p.shape)
                 for p in params]
        return float(loss.item()), grads
    finally:
        for p, (data, grad, flag) in zip(params, saved):
            p.data, p.grad, p.requires_grad = data, grad, flag


def _loss_at(loss_fn: Callable[[], Tensor], params: list[Tensor], values: list[Any]) -> float:
    """L at the parameter values ``values`` (float64), the parameters put back afterwards."""
    saved = [p.data for p in params]
    try:
        for p, v in zip(params, values):
            p.data = v
        with no_grad():
            return float(loss_fn().item())
    finally:
        for p, data in zip(params, saved):
            p.data = data


def curvature_along_gradient(loss_fn: Callable[[], Tensor], params: Sequence[Tensor], *, lr: float = 0.01,
                             module: Any = None) -> dict[str, float]:
    """g^T g, g^T H g, the curvature along g, and the second-order prediction of a step's effect.

    .. math::

        \\kappa = \\frac{g^\\top H g}{g^\\top g}, \\qquad
        \\Delta L_\\text{predicted} = -\\varepsilon\\, g^\\top g + \\tfrac12 \\varepsilon^2\\, g^\\top H g, \\qquad
        \\Delta L_\\text{actual} = L(w - \\varepsilon g) - L(w)

    on the same batch (``loss_fn`` computes it from fixed data), in float64. The step
    is plain gradient descent with learning rate eps = ``lr``; the parameters are left as
    they were.

    Args:
        loss_fn: ``loss_fn() -> scalar Tensor`` computed from ``params``.
        params: the parameters w.
        lr: the step size eps of the predicted and actual change.
        module: the model: its BN running statistics are put back, its other parameters
            frozen and its dropout masks fixed (so that L is a function of w alone).

    Returns:
        ``{"loss", "gTg", "gTHg", "curvature" (g^T H g / g^T g), "critical_lr" (2 g^T g / g^T H g,
        inf if g^T H g <= 0), "lr", "predicted_change", "first_order_change" (-eps g^T g),
        "actual_change"}``, floats.
    """
    fn = "curvature_along_gradient"
    params = list(params)
    if not params:
        raise ValueError(f"{fn}: params is empty")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"{fn}: lr must be a positive number, got {lr!r}")
    with measuring(module, 0) if module is not None else contextlib.nullcontext():
        loss, g = _loss_and_gradient(loss_fn, params, fn)
        hg = hessian_vector_product(loss_fn, params, g)
        gtg, gthg = _dot(g, g), _dot(g, hg)
        stepped = [_data(p, "params", fn) - lr * gi for p, gi in zip(params, g)]
        after = _loss_at(loss_fn, params, stepped)
    return {"loss": loss, "gTg": gtg, "gTHg": gthg, "curvature": gthg / gtg if gtg > 0 else math.nan,
            "critical_lr": 2 * gtg / gthg if gthg > 0 else math.inf, "lr": float(lr),
            "predicted_change": -lr * gtg + 0.5 * lr ** 2 * gthg, "first_order_change": -lr * gtg,
            "actual_change": after - loss}


def largest_hessian_eigenvalue(loss_fn: Callable[[], Tensor], params: Sequence[Tensor], *, iterations: int = 20,
                               seed: int = 0, module: Any = None) -> dict[str, Any]:
    """The eigenvalue of H of largest magnitude, by power iteration v <- H v / ||H v||.

    Returns ``{"eigenvalue" (the Rayleigh quotient v^T H v, signed), "change" (relative change
    over the last step), "iterations"}``. Each step is one Hessian-vector product (two
    gradient evaluations). Power iteration finds the largest |lambda|; a negative
    ``eigenvalue`` means the sharpest direction curves down.
    """
    fn = "largest_hessian_eigenvalue"
    params = list(params)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"{fn}: iterations must be an int >= 1, got {iterations!r}")
    xp = get_array_module(params[0].data)
    rng = xp.random.default_rng(seed)
    v = [rng.standard_normal(p.shape) for p in params]
    norm = math.sqrt(_dot(v, v))
    v = [a / norm for a in v]
    value, previous = math.nan, math.nan
    with measuring(module, seed) if module is not None else contextlib.nullcontext():
        for _ in range(iterations):
            hv = hessian_vector_product(loss_fn, params, v)
            previous, value = value, _dot(v, hv)
            norm = math.sqrt(_dot(hv, hv))
            if norm == 0:
                break
            v = [a / norm for a in hv]
    change = abs(value - previous) / abs(value) if value and math.isfinite(previous) else math.nan
    return {"eigenvalue": value, "change": change, "iterations": iterations}
