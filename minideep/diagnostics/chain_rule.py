"""Gradient norms per layer and their ratios: bookkeeping, not evidence for the chain rule.

Read a network as layers h_l = f_l(h_{l-1}), l = 1..L, with h_0 the input x and h_L the
output that the loss L sees. Backpropagation hands each layer dL/dh_l and gets back

    dL/dh_{l-1} = J_l^T dL/dh_l,        J_l = dh_l/dh_{l-1} (the layer's Jacobian).

Measure the size of the gradient at every layer output, n_l = ||dL/dh_l||_2, and call
g_l = n_{l-1} / n_l the layer's gain: how much layer l shrinks (g_l < 1) or grows
(g_l > 1) the gradient on its way back. Then, telescoping,

    n_l = n_L * g_L * g_{L-1} * ... * g_{l+1}

so the gradient that reaches layer l is the output gradient times the product of the
gains above it. Twenty gains of 0.25 (a sigmoid's best) make 0.25^20 ~ 1e-12: the
vanishing gradient. ``chain_rule_gains`` measures every n_l with forward hooks and
``retain_grad()``, forms the ratios and their running product, and checks the identity.

**Bookkeeping, not evidence.** The identity telescopes: n_L * prod_{k>l} n_{k-1}/n_k = n_l
for *any* positive numbers, so it holds to rounding whatever the network does and proves
nothing about the chain rule. The check only confirms that every point was caught and
that no gradient vanished to exactly 0 or overflowed. The ratio g_l is also not any
layer's Jacobian where a layer's output has a second path to the loss (skip-to-head
taps): the skip's gradient is mixed in. For the Jacobians themselves (the gain on the
delivered gradient, the rms gain and the largest singular value of each block) use
:func:`~minideep.diagnostics.jacobian.jacobian_gains` and
:func:`~minideep.diagnostics.block_gains.block_report`; for the chain rule checked
against an independent computation, :func:`~minideep.diagnostics.jacobian_product.jacobian_product_check`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..autograd import Tensor, enable_grad, tensor
from ..backend import as_numpy, get_array_module
from ..ops.loss import cross_entropy
from .activations import activation_statistics
from .layers import OutputCapture, activation_kind, frozen_parameters, preserved_buffers, resolve_layers

#: Largest relative difference between n_l and n_L * prod g that still counts as equal (a bookkeeping check).
TOLERANCE = 1e-6


@dataclass
class ChainRuleReport:
    """What ``chain_rule_gains`` measured; every field is a plain number, string or list.

    With h_0 the input and h_1..h_L the layer outputs (all lists of length L + 1 are
    indexed by l = 0..L, ``gains`` by l = 1..L):

    Attributes:
        names: ``"input"`` and the layer names, h_0..h_L.
        grad_norms: n_l = ||dL/dh_l||_2 over the whole batch, measured.
        gains: g_l = n_{l-1} / n_l for l = 1..L (length L).
        products: P_l = g_L * ... * g_{l+1}, the running product from the output down
            (P_L = 1).
        predicted_norms: n_L * P_l, the chain rule's prediction of n_l.
        relative_errors: |n_L P_l - n_l| / n_l for each l (NaN where n_l is 0 or not finite).
        max_relative_error: the largest of them.
        identity_holds: every n_l is positive and finite and matches n_L P_l to ``tolerance``
            (bookkeeping: the identity telescopes, so this only fails on a 0 or non-finite norm).
        tolerance: the relative tolerance used.
        loss: the loss value.
        forward: forward statistics of h_1..h_L (see ``activation_statistics``), with names.
        note: why the identity could not be checked everywhere, or "".
    """

    names: list[str]
    grad_norms: list[float]
    gains: list[float]
    products: list[float]
    predicted_norms: list[float]
    relative_errors: list[float]
    max_relative_error: float
    identity_holds: bool
    tolerance: float
    loss: float
    forward: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    @property
    def geometric_mean_gain(self) -> float:
        """(prod g_l)^(1/L) = (n_0 / n_L)^(1/L): the typical factor per layer."""
        gains = np.asarray(self.gains, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.exp(np.mean(np.log(gains))))

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready Python (NaN/inf stay floats, as Python's json writes them)."""
        return {**asdict(self), "geometric_mean_gain": self.geometric_mean_gain}

    def table(self) -> str:
        """A fixed-width text table, one row per h_l: norm, gain, product, prediction, forward stats."""
        rows = [f"{'l':>3} {'layer':<24} {'||dL/dh_l||':>12} {'gain g_l':>10} {'prod g':>10} "
                f"{'n_L*prod':>12} {'act mean':>9} {'act std':>9}  notes"]
        stats = {s["name"]: s for s in self.forward}
        for l, name in enumerate(self.names):
            gain = f"{self.gains[l - 1]:10.3g}" if l > 0 else f"{'':>10}"
            s = stats.get(name, {})
            extra = ", ".join(f"{k.replace('_fraction', '')} {v:.0%}" for k, v in s.items() if k.endswith("_fraction"))
            mean = f"{s['mean']:9.3g}" if s else f"{'':>9}"
            std = f"{s['std']:9.3g}" if s else f"{'':>9}"
            rows.append(f"{l:>3} {name[:24]:<24} {self.grad_norms[l]:12.4g} {gain} {self.products[l]:10.3g} "
                        f"{self.predicted_norms[l]:12.4g} {mean} {std}  {extra}")
        verdict = "holds" if self.identity_holds else "does NOT hold"
        rows.append(f"bookkeeping n_l = n_L * prod_(k>l) g_k {verdict} (it telescopes: not a test of the chain rule) "
                    f"(largest relative difference {self.max_relative_error:.1e}, tolerance {self.tolerance:.0e})"
                    + (f"; {self.note}" if self.note else ""))
        return "\n".join(rows)


def _norm(grad: Any) -> float:
    """||grad||_2 summed in float64 (a 1e-20 gradient squared underflows float32)."""
    xp = get_array_module(grad)
    return float(as_numpy(xp.sqrt((grad.astype(xp.float64) ** 2).sum())))


# --8<-- [start:check_chain_rule]
def check_chain_rule(grad_norms: Sequence[float], tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Ratios, running products and the telescoping check from measured norms n_0..n_L (bookkeeping).

    n_L * prod g = n_l holds for any positive numbers; the check fails only where a norm is
    0 or not finite (a gradient that vanished or overflowed), and the note says where.

    Returns ``{"gains", "products", "predicted_norms", "relative_errors",
    "max_relative_error", "identity_holds", "note"}`` (see ``ChainRuleReport``).
    """
    n = np.asarray(grad_norms, dtype=np.float64)
    if n.ndim != 1 or n.size < 2:
        raise ValueError(f"check_chain_rule: need the norms at two or more points, got shape {n.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        gains = n[:-1] / n[1:]  # g_l = n_{l-1} / n_l, l = 1..L
        products = np.ones_like(n)
        for l in range(len(n) - 2, -1, -1):  # P_l = g_{l+1} * P_{l+1}, from the output down
            products[l] = gains[l] * products[l + 1]
        predicted = n[-1] * products
        rel = np.abs(predicted - n) / n
    checkable = np.isfinite(n) & (n > 0)
    rel[~checkable] = np.nan
    note = ""
    if not checkable.all():
        bad = int((~checkable).sum())
        note = f"{bad} of the {n.size} gradient norms are 0 or not finite (the gradient vanished or overflowed there)"
    max_rel = float(np.nanmax(rel)) if checkable.any() else math.nan
    holds = bool(checkable.all() and max_rel <= tolerance)
    return {"gains": gains.tolist(), "products": products.tolist(), "predicted_norms": predicted.tolist(),
            "relative_errors": rel.tolist(), "max_relative_error": max_rel, "identity_holds": holds, "note": note}
# --8<-- [end:check_chain_rule]


def chain_rule_gains(
    model: Any,
    x: Any,
    y: Any,
    loss_fn: Callable[[Tensor, Any], Tensor] = cross_entropy,
    layers: Sequence[Any] | None = None,
    *,
    tolerance: float = TOLERANCE,
) -> ChainRuleReport:
    """The gradient norm at every layer output, their ratios g_l = n_{l-1}/n_l, and a bookkeeping check.

    The ratios are not Jacobian gains where a layer's output also reaches the loss another
    way, and the identity n_l = n_L prod g telescopes (it holds for any numbers); for the
    Jacobians use :func:`~minideep.diagnostics.block_gains.block_report`.

    .. math::

        n_l = \\left\\|\\frac{\\partial L}{\\partial h_l}\\right\\|_2, \\qquad
        g_l = \\frac{n_{l-1}}{n_l}, \\qquad
        n_l = n_L \\prod_{k=l+1}^{L} g_k

    One forward and one backward pass on the batch ``(x, y)``. Each layer's output h_l is
    caught with a forward hook and keeps its gradient (``retain_grad()``); the input h_0 = x
    is given ``requires_grad``. The parameters are frozen for the pass, so their ``.grad``
    is left untouched, and BN's running statistics are put back afterwards; the model's
    mode (train/eval) is kept. Norms are over the whole
    batch (the loss is the batch mean, as in training).

    Args:
        model: a network that is a sequence of layers or blocks (``nn.Sequential``, or a model
            whose children run in order).
        x: the input batch (Tensor or array).
        y: the targets, as ``loss_fn`` takes them.
        loss_fn: ``loss_fn(model(x), y) -> scalar Tensor``; default ``F.cross_entropy``.
        layers: the modules (or names) whose outputs are h_1..h_L, in forward order; default
            the model's children, with ``Sequential``/``ModuleList`` containers opened up.
        tolerance: the relative tolerance of the identity check.

    Returns:
        A :class:`ChainRuleReport` (``.to_dict()`` for JSON, ``.table()`` to print), which
        also holds the forward statistics of every h_l.

    Example:
        >>> net = nn.Sequential(*[m for _ in range(20) for m in (nn.Linear(32, 32), nn.Sigmoid())], nn.Linear(32, 10))
        >>> report = chain_rule_gains(net, x, y)
        >>> report.identity_holds, report.geometric_mean_gain
        (True, 0.6...)
        >>> print(report.table())
    """
    fn = "chain_rule_gains"
    chosen = resolve_layers(model, layers, fn)
    explicit = layers is not None
    capture = OutputCapture(chosen, fn, retain_grad=True)
    data = x.data if isinstance(x, Tensor) else x
    xp = get_array_module(data)
    if not (hasattr(data, "dtype") and np.issubdtype(np.dtype(data.dtype), np.floating)):
        data = xp.asarray(data, dtype=np.float32)
    h0 = tensor(data, requires_grad=True)
    with enable_grad(), frozen_parameters(model), preserved_buffers(model), capture.attached():
        out = model(h0)
        loss = loss_fn(out, y)
        if not isinstance(loss, Tensor) or loss.size != 1:
            raise ValueError(f"{fn}: loss_fn must return a scalar Tensor, got {type(loss).__name__} "
                             f"of shape {getattr(loss, 'shape', None)}")
        loss.backward()

    missing = [name for name, _ in chosen if name not in capture.outputs]
    if missing and explicit:
        raise ValueError(f"{fn}: layers {missing} did not run in model(x)")
    names = ["input"] + list(capture.order)
    tensors = [h0] + [capture.outputs[name] for name in capture.order]
    no_grad = [name for name, t in zip(names, tensors) if t.grad is None]
    if no_grad:
        raise ValueError(f"{fn}: no gradient reached {no_grad}; the loss does not depend on them "
                         "(is the network a sequence of these layers?)")
    norms = [_norm(t.grad) for t in tensors]
    modules = dict(chosen)
    forward = [{"name": name, **activation_statistics(capture.outputs[name],
                                                      activation_kind(modules[name], capture.outputs[name]))}
               for name in capture.order]
    check = check_chain_rule(norms, tolerance)
    return ChainRuleReport(names=names, grad_norms=norms, tolerance=tolerance, loss=float(loss.item()),
                           forward=forward, **check)
