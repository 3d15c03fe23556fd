"""Forward statistics per layer: activation mean and spread, dead ReLUs, saturated sigmoids.

The backward pass multiplies by each activation's derivative, so the forward values
predict the gradient: a ReLU output of 0 passes no gradient (ReLU'(x) = 0 for x < 0),
and a sigmoid output near 0 or 1 passes almost none (sigma'(x) = sigma(x)(1 - sigma(x))
<= 0.0099 there). Definitions, for a layer output h of shape (N, ...) over a batch of N:

* ``mean``, ``std``: over every element of h.
* ReLU: ``zero_fraction``, the fraction of elements exactly 0; ``dead_fraction``, the
  fraction of units (every non-batch position: a feature, or a channel at a pixel) that
  are 0 for all N examples of the batch.
* leaky ReLU: ``negative_fraction``, the fraction of elements below 0 (their gradient is
  scaled by the slope, 0.01 by default).
* sigmoid: ``saturated_fraction``, the fraction of elements with h < 0.01 or h > 0.99
  (there sigma'(x) = h (1 - h) < 0.0099, under a twenty-fifth of its peak 0.25).
* tanh: ``saturated_fraction``, the fraction with |h| > 0.98, the same thresholds
  since tanh(x) = 2 sigma(2x) - 1.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..autograd import Tensor, enable_grad
from ..backend import as_numpy, get_array_module
from .layers import OutputCapture, activation_kind, preserved_buffers, resolve_layers

#: Sigmoid outputs below LOW or above HIGH count as saturated.
SIGMOID_LOW, SIGMOID_HIGH = 0.01, 0.99
#: tanh outputs with |h| above this count as saturated (2 * 0.99 - 1).
TANH_LIMIT = 2 * SIGMOID_HIGH - 1


def activation_statistics(h: Any, kind: str | None = None) -> dict[str, Any]:
    """Statistics of one layer output ``h`` (a Tensor or array of shape (N, ...)).

    Args:
        h: the layer's output over a batch, batch on axis 0.
        kind: the activation that produced it: ``"relu"``, ``"leaky_relu"``, ``"sigmoid"``,
            ``"tanh"`` or None (only mean and std then).

    Returns:
        ``{"activation": kind, "shape": [...], "mean": float, "std": float, ...}`` with the
        fractions that apply to ``kind`` (see the module docstring), all Python floats.

    Example:
        >>> activation_statistics(np.array([[0.0, 1.0], [0.0, 3.0]]), "relu")
        {'activation': 'relu', 'shape': [2, 2], 'mean': 1.0, 'std': 1.22..., 'zero_fraction': 0.5, 'dead_fraction': 0.5}
    """
    data = h.data if isinstance(h, Tensor) else h
    if kind not in (None, "relu", "leaky_relu", "sigmoid", "tanh"):
        raise ValueError(f"activation_statistics: kind must be relu, leaky_relu, sigmoid, tanh or None, got {kind!r}")
    if data.ndim < 1 or data.shape[0] == 0:
        raise ValueError(f"activation_statistics: expected a batch of shape (N, ...) with N > 0, got {data.shape}")
    xp = get_array_module(data)
    values = [data.mean(dtype=xp.float64), data.astype(xp.float64).std()]
    if kind == "relu":
        zero = data == 0
        values += [zero.mean(), zero.all(axis=0).mean()]
    elif kind == "leaky_relu":
        values += [(data < 0).mean()]
    elif kind == "sigmoid":
        values += [((data < SIGMOID_LOW) | (data > SIGMOID_HIGH)).mean()]
    elif kind == "tanh":
        values += [(abs(data) > TANH_LIMIT).mean()]
    numbers = [float(v) for v in as_numpy(xp.stack([xp.asarray(v, dtype=xp.float64) for v in values]))]
    stats: dict[str, Any] = {"activation": kind, "shape": [int(n) for n in data.shape],
                             "mean": numbers[0], "std": numbers[1]}
    keys = {"relu": ["zero_fraction", "dead_fraction"], "leaky_relu": ["negative_fraction"],
            "sigmoid": ["saturated_fraction"], "tanh": ["saturated_fraction"]}.get(kind, [])
    stats.update(zip(keys, numbers[2:]))
    return stats


def forward_statistics(model: Any, x: Any, layers: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """Run ``model(x)`` once and describe every layer's output.

    Args:
        model: the network; its mode (train/eval) is kept and BN's running statistics are
            put back afterwards.
        x: a batch (Tensor or array), batch on axis 0.
        layers: modules or names to look at; default: the model's children in order, with
            ``Sequential``/``ModuleList`` containers opened up.

    Returns:
        One dict per layer that ran, in forward order: ``{"name": ..., **activation_statistics}``.
        The activation is read from the module's class (``nn.ReLU``) or, for a block ending in
        a functional activation, from the op that produced the output.

    Example:
        >>> for s in forward_statistics(mlp, x): print(s["name"], s["mean"], s.get("dead_fraction"))
    """
    chosen = resolve_layers(model, layers, "forward_statistics")
    modules = dict(chosen)
    capture = OutputCapture(chosen, "forward_statistics")
    x = x if isinstance(x, Tensor) else Tensor(x)
    with enable_grad(), preserved_buffers(model), capture.attached():  # the graph names the op behind each output
        model(x)
    return [{"name": name, **activation_statistics(capture.outputs[name], activation_kind(modules[name], capture.outputs[name]))}
            for name in capture.order]
