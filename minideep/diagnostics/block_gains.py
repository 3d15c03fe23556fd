"""The chain rule, block by block: a table of every block's Jacobian gains in one network.

``block_report(model, x, y)`` runs the network once with forward hooks on its blocks (the
input and output of each one are caught), backpropagates the loss, and then measures each
block's own Jacobian J_b = dh_b/dh_{b-1} at the point the network was at, with
:func:`~minideep.diagnostics.jacobian.jacobian_gains`:

    grad_norm    ||dL/dh_b||, the gradient that reached the block's output
    on_gradient  ||J_b^T dL/dh_b|| / ||dL/dh_b||, the block's gain on that gradient
    rms, top     ||J_b||_F / sqrt(m) and sigma_max(J_b), the gains of a random and of the worst direction

Where a block's output also leaves the chain (a skip-to-head tap sends z_l both to the
next layer and to the head), the gradient at the output is split into the part that came
back through the next block (``chain_grad_norm``, = ||J_{b+1}^T dL/dh_{b+1}||) and the rest
(``skip_grad_norm``, the skip path): the gains are always the block's own Jacobian, never a
ratio that mixes in the skip. In a plain chain the rest is zero, to rounding.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from ..autograd import Tensor, enable_grad, tensor
from ..backend import get_array_module
from ..ops.loss import cross_entropy
from .jacobian import Linearization, _data, _norm, gains_of, measuring
from .layers import OutputCapture, resolve_layers

#: Module classes whose children are the blocks (a skip-to-head body's layers are blocks too).
OPENED = ("Sequential", "ModuleList", "SkipToHead")

#: The columns of :func:`report_table` by default, with their headings.
COLUMNS = {"name": "block", "kind": "kind", "grad_norm": "‖dL/dh‖", "on_gradient": "on gradient",
           "rms": "rms", "top": "top", "skip_grad_norm": "‖skip‖", "predicted": "predicted"}


def default_blocks(model: Any) -> list[tuple[str, Any]]:
    """``[(name, module)]``: the model's children in order, with containers and ``SkipToHead`` opened."""
    if not hasattr(model, "named_children"):
        raise TypeError(f"block_report: model must be a Module, got {type(model).__name__}")
    out: list[tuple[str, Any]] = []
    stack = list(reversed(list(model.named_children())))
    while stack:
        name, module = stack.pop()
        if type(module).__name__ in OPENED:
            stack.extend(reversed([(f"{name}.{n}", m) for n, m in module.named_children()]))
        else:
            out.append((name, module))
    if not out:
        raise ValueError(f"block_report: {type(model).__name__} has no child modules; pass blocks=[...]")
    return out


def block_report(
    model: Any,
    x: Any,
    y: Any,
    loss_fn: Callable[[Tensor, Any], Tensor] = cross_entropy,
    blocks: Sequence[Any] | None = None,
    *,
    probes: int = 32,
    iterations: int = 30,
    seed: int = 0,
    theory: Callable[[str, Any, dict[str, Any]], float | None] | None = None,
    branch: Callable[[str, Any], Callable[[Tensor], Tensor] | None] | None = None,
) -> list[dict[str, Any]]:
    """One row per block: ||dL/dh||, the block's gain on it, its rms and top gains, the skip's share.

    .. math::

        \\text{on\\_gradient}_b = \\frac{\\lVert J_b^\\top g_b \\rVert}{\\lVert g_b \\rVert}, \\quad
        \\text{rms}_b = \\frac{\\lVert J_b \\rVert_F}{\\sqrt{m_b}}, \\quad
        \\text{top}_b = \\sigma_{\\max}(J_b), \\qquad g_b = \\frac{\\partial L}{\\partial h_b}

    One forward and backward pass of the whole network (in float64, the model's mode kept:
    BN in training mode uses the batch statistics), then for every block its own Jacobian
    at its recorded input (see :func:`~minideep.diagnostics.jacobian.jacobian_gains`: rms from
    ``probes`` VJPs, top from ``iterations`` power-iteration steps with central-difference
    JVPs). Nothing in the model changes: parameters frozen (their ``.grad`` untouched), BN
    running statistics put back, dropout masks held fixed for the measurement.

    Args:
        model: the network; its blocks run in sequence (each takes one Tensor).
        x: the input batch (Tensor or array).
        y: the targets, as ``loss_fn`` takes them.
        loss_fn: ``loss_fn(model(x), y) -> scalar Tensor`` (default ``F.cross_entropy``).
        blocks: modules or names (``named_modules()``) of the blocks, in forward order; default
            the model's children with ``Sequential``, ``ModuleList`` and ``SkipToHead`` opened
            (VGG: its blocks; a highway MLP: its layers; a skip-to-head net: every body layer).
        probes, iterations, seed: as for ``jacobian_gains``; 0 skips rms (or top).
        theory: ``theory(name, module, row) -> float | None``, the theory's prediction for the
            block (for example of ``rms``), put in the row's ``"predicted"``.
        branch: ``branch(name, module) -> fn | None``: a part of the block to measure as well,
            at the block's input (for example ``lambda n, m: getattr(m, "residual", None)``,
            a residual block's F(x) without the shortcut); its rms and top go into the row's
            ``"branch_rms"`` and ``"branch_top"`` (None where ``branch`` gives None).

    Returns:
        A list of JSON-ready rows, in forward order, each ``{"index", "name", "kind",
        "input_shape", "output_shape", "grad_norm", "on_gradient", "rms", "rms_stderr", "top",
        "top_change", "chain_grad_norm", "skip_grad_norm", "predicted"}`` (``chain_grad_norm``
        and ``skip_grad_norm`` are None where the next block does not take this block's
        output; rms/top None when skipped). :func:`report_table` makes a Markdown table.

    Example:
        >>> rows = block_report(vgg38(), x, y, probes=8, iterations=10)
        >>> print(report_table(rows))
    """
    fn = "block_report"
    chosen = default_blocks(model) if blocks is None else resolve_layers(model, blocks, fn)
    capture = OutputCapture(chosen, fn, retain_grad=True)
    modules = dict(chosen)
    rows: list[dict[str, Any]] = []
    with measuring(model, seed):
        h0 = tensor(_data(x, "x", fn), requires_grad=True)
        with enable_grad(), capture.attached():
            loss = loss_fn(model(h0), y)
            if not isinstance(loss, Tensor) or loss.size != 1:
                raise ValueError(f"{fn}: loss_fn must return a scalar Tensor, got {type(loss).__name__} "
                                 f"of shape {getattr(loss, 'shape', None)}")
            loss.backward()
        missing = [name for name, _ in chosen if name not in capture.outputs]
        if missing and blocks is not None:
            raise ValueError(f"{fn}: blocks {missing} did not run in model(x)")
        names = list(capture.order)
        for index, name in enumerate(names):
            module, out = modules[name], capture.outputs[name]
            if name not in capture.inputs:
                raise TypeError(f"{fn}: block {name!r} was not called with a Tensor")
            xp = get_array_module(out.data)
            g = out.grad if out.grad is not None else xp.zeros(out.shape, dtype=np.float64)
            lin = Linearization(module, capture.inputs[name].data, fn)
            gains = _gains(lin, g, probes, iterations, seed)
            through = lin.vjp(g)  # J_b^T g_b: what this block sends back to its input
            if index > 0:  # the gradient at h_{b-1} = what came back through block b (if it reads h_{b-1}) + the rest
                below = capture.outputs[names[index - 1]]
                if capture.inputs[name] is below and below.grad is not None:
                    rows[-1]["chain_grad_norm"] = _norm(through)
                    rows[-1]["skip_grad_norm"] = _norm(below.grad - through)
                below.grad = None  # done with it: free the array
            rows.append({"index": index, "name": name, "kind": type(module).__name__,
                         "input_shape": list(lin.x.shape), "output_shape": list(out.shape), **gains,
                         "chain_grad_norm": None, "skip_grad_norm": None, "predicted": None})
            part = branch(name, module) if branch is not None else None
            if branch is not None:
                rows[-1]["branch_rms"] = rows[-1]["branch_top"] = None
            if part is not None:
                part_gains = _gains(Linearization(part, lin.x, fn), None, probes, iterations, seed)
                rows[-1]["branch_rms"], rows[-1]["branch_top"] = part_gains["rms"], part_gains["top"]
    if theory is not None:
        for row in rows:
            value = theory(row["name"], modules[row["name"]], row)
            row["predicted"] = None if value is None else float(value)
    return rows


def _gains(lin: Linearization, g: Any, probes: int, iterations: int, seed: int) -> dict[str, Any]:
    """``gains_of`` with probes = 0 or iterations = 0 meaning: skip rms or top."""
    for name, value in (("probes", probes), ("iterations", iterations)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"block_report: {name} must be an int >= 0, got {value!r}")
    gains = gains_of(lin, g, probes=max(probes, 1), iterations=max(iterations, 1), seed=seed)
    if probes == 0:
        gains.update(rms=None, rms_stderr=None, rms_exact=None, probes=0)
    if iterations == 0:
        gains.update(top=None, top_change=None, iterations=0)
    return {k: gains[k] for k in ("grad_norm", "on_gradient", "rms", "rms_stderr", "top", "top_change")}


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return "×".join(str(v) for v in value)
    return str(value).replace("|", "\\|")


def report_table(rows: Sequence[dict[str, Any]], columns: dict[str, str] | Sequence[str] | None = None,
                 digits: int = 3) -> str:
    """A Markdown table of ``block_report`` rows (or any list of dicts), one line per row.

    Args:
        rows: the rows.
        columns: ``{key: heading}`` or a list of keys; default ``COLUMNS``, leaving out the
            skip and predicted columns when no row has a value there.
        digits: significant digits of the floats.

    Example:
        >>> print(report_table(rows, {"name": "block", "top": "σ_max"}))
        | block | σ_max |
        | --- | --- |
        | input_conv | 2.41 |
    """
    if columns is None:
        columns = {k: v for k, v in COLUMNS.items()
                   if k not in ("skip_grad_norm", "predicted") or any(r.get(k) is not None for r in rows)}
    elif not isinstance(columns, dict):
        columns = {k: COLUMNS.get(k, k) for k in columns}
    lines = ["| " + " | ".join(columns.values()) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k), digits) for k in columns) + " |")
    return "\n".join(lines)


def residual_branch(name: str, module: Any) -> Callable[[Tensor], Tensor] | None:
    """For ``block_report(branch=...)``: F of an ``nn.ResidualBlock`` y = act(F(x) + x), None for other blocks."""
    from ..nn import ResidualBlock  # noqa: PLC0415  (nn does not import diagnostics; this keeps it that way)

    return module.residual if isinstance(module, ResidualBlock) else None


def residual_theory(name: str, module: Any, row: dict[str, Any]) -> float | None:
    """For ``block_report(theory=...)``: a residual block's rms gain if identity and branch were uncorrelated.

    .. math::

        \\frac{E\\,\\lVert (I + J_F)^\\top u \\rVert^2}{\\lVert u \\rVert^2}
        = 1 + \\frac{2\\,\\mathrm{tr}\\,J_F}{m} + \\frac{\\lVert J_F \\rVert_F^2}{m}
        \\approx 1 + \\mathrm{rms}_F^2

    (the trace term dropped and the activation after the sum left out); None for blocks
    without a measured branch (``row["branch_rms"]``).
    """
    if row.get("branch_rms") is None:
        return None
    return math.sqrt(1.0 + row["branch_rms"] ** 2)
