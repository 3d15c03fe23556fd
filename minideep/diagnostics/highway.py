"""Inside a highway network: transform-gate biases, gate activity and block outputs.

A highway layer computes y = H(x) T(x) + x (1 - T(x)) with a transform gate
T(x) = sigmoid(W_T x + b_T) in (0, 1) per unit. Srivastava et al. (2015, Fig. 2) show,
for each layer (rows) and unit (columns): the gate biases b_T, the mean of T over a batch,
T for one example, and that example's block outputs y. Stripes in the outputs (a unit
that keeps its value down many layers) are units the gates carry through unchanged.

For a convolutional highway layer the units are the channels: T and y are averaged over
the pixels, and b_T has one value per channel already.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from .. import ops
from ..autograd import Tensor, no_grad
from ..backend import as_numpy
from ..nn.blocks import Highway, HighwayConv2d
from .layers import OutputCapture, preserved_buffers, resolve_layers


def is_highway(module: Any) -> bool:
    """True for a highway layer (``nn.Highway``, ``nn.HighwayConv2d``): y = H(x) T(x) + x (1 - T(x))."""
    return isinstance(module, (Highway, HighwayConv2d))


@contextlib.contextmanager
def recorded_gates(layers: Sequence[tuple[str, Any]]) -> Iterator[dict[str, Any]]:
    """Inside the ``with`` block, each forward of the highway layers stores T(x) = sigmoid(W_T x + b_T).

    A forward hook on each layer's ``gate`` (the W_T x + b_T layer) applies the same
    ``ops.sigmoid`` as the layer's forward to the gate's output, so the values are the
    layer's own; the layers themselves are untouched and the hooks go when the block ends.

    Args:
        layers: ``[(name, highway layer)]``.

    Yields:
        ``{name: T(x) of the last forward}`` (arrays on the layer's device), filled as the model runs.

    Example:
        >>> with recorded_gates([("layers.3", net.layers[3])]) as gates:
        ...     net(x)
        >>> gates["layers.3"].shape
        (64, 50)
    """
    gates: dict[str, Any] = {}
    handles = []
    try:
        for name, module in layers:
            def keep(gate: Any, inputs: tuple, output: Any, name: str = name) -> None:
                gates[name] = ops.sigmoid(output).data
            handles.append(module.gate.register_forward_hook(keep))
        yield gates
    finally:
        for handle in handles:
            handle.remove()


def _per_unit(array: np.ndarray) -> np.ndarray:
    """(N, C) stays; (N, C, H, W) is averaged over the pixels to (N, C)."""
    return array.reshape(array.shape[0], array.shape[1], -1).mean(axis=2) if array.ndim > 2 else array


@dataclass
class HighwayReport:
    """The highway analysis of one batch; per-layer lists run from the first layer to the last.

    Attributes:
        names: the highway layers.
        gate_bias_mean: mean of b_T over the units of each layer.
        gate_biases: b_T per layer and unit (layers x units).
        mean_gate: T(x) averaged over the batch (layers x units).
        mean_activity: T(x) averaged over the batch and the units, one value per layer.
        example: index in the batch of the example shown.
        example_gate: T(x) of that example (layers x units).
        block_outputs: y of that example (layers x units).
        closed_fraction: per layer, the fraction of gate values below 0.1 over the batch
            (units that mostly carry their input).
        by_class: ``{label: mean activity per layer}`` when targets were given, else {}.
    """

    names: list[str]
    gate_bias_mean: list[float]
    gate_biases: list[list[float]]
    mean_gate: list[list[float]]
    mean_activity: list[float]
    example: int
    example_gate: list[list[float]]
    block_outputs: list[list[float]]
    closed_fraction: list[float]
    by_class: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready Python."""
        return asdict(self)


def gate_analysis(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    example: int = 0,
    layers: Sequence[Any] | None = None,
) -> HighwayReport:
    """Transform-gate biases, gate activity and block outputs of every highway layer.

    .. math::

        T_l(x) = \\sigma(W_{T,l} h_{l-1} + b_{T,l}), \\qquad
        \\bar T_{l,u} = \\frac{1}{N} \\sum_n T_{l,u}(x_n)

    One forward pass (no graph) on the batch ``x``, in the model's current mode, with the
    gates recorded by forward hooks (:func:`recorded_gates`).

    Args:
        model: a network with highway layers (``nn.Highway`` / ``nn.HighwayConv2d``).
        x: the batch (Tensor or array).
        y: optional integer targets; then ``by_class`` holds each class's mean gate activity
            per layer (Srivastava et al. compare digits 0 and 7).
        example: which example of the batch ``example_gate`` and ``block_outputs`` show.
        layers: the highway layers (names or modules); default every highway layer in order.

    Returns:
        A :class:`HighwayReport`; its arrays feed ``plots.gate_activity`` and
        ``plots.gate_activity_by_class``.

    Example:
        >>> r = gate_analysis(net, x_test[:1000], y_test[:1000])
        >>> plots.gate_activity(r.mean_gate, r.example_gate, r.block_outputs, r.gate_bias_mean, "gates.png")
    """
    fn = "gate_analysis"
    if layers is None:
        chosen = [(name, m) for name, m in model.named_modules() if name and is_highway(m)]
        if not chosen:
            raise ValueError(f"{fn}: {type(model).__name__} has no highway layers")
    else:
        chosen = resolve_layers(model, layers, fn)
        not_highway = [name for name, m in chosen if not is_highway(m)]
        if not_highway:
            raise ValueError(f"{fn}: {not_highway} are not highway layers")
    x = x if isinstance(x, Tensor) else Tensor(x)
    if not 0 <= example < len(x):
        raise ValueError(f"{fn}: example {example} is outside the batch of {len(x)}")
    capture = OutputCapture(chosen, fn)
    with no_grad(), preserved_buffers(model), capture.attached(), recorded_gates(chosen) as recorded:
        model(x)
    gates = {name: as_numpy(recorded[name]).astype(np.float64) for name, _ in chosen if name in capture.outputs}
    names = [name for name in capture.order if name in gates]
    modules = dict(chosen)
    per_unit = {name: _per_unit(gates[name]) for name in names}
    outputs = {name: _per_unit(as_numpy(capture.outputs[name].data).astype(np.float64)) for name in names}
    biases = {name: as_numpy(modules[name].gate.bias.data).astype(np.float64).reshape(-1) for name in names}

    by_class: dict[str, list[float]] = {}
    if y is not None:
        labels = as_numpy(y.data if isinstance(y, Tensor) else y).astype(np.int64).reshape(-1)
        if len(labels) != len(x):
            raise ValueError(f"{fn}: x has {len(x)} examples but y has {len(labels)}")
        for label in np.unique(labels):
            rows = labels == label
            by_class[str(int(label))] = [float(gates[name][rows].mean()) for name in names]

    return HighwayReport(
        names=names,
        gate_bias_mean=[float(biases[name].mean()) for name in names],
        gate_biases=[biases[name].tolist() for name in names],
        mean_gate=[per_unit[name].mean(axis=0).tolist() for name in names],
        mean_activity=[float(gates[name].mean()) for name in names],
        example=example,
        example_gate=[per_unit[name][example].tolist() for name in names],
        block_outputs=[outputs[name][example].tolist() for name in names],
        closed_fraction=[float((gates[name] < 0.1).mean()) for name in names],
        by_class=by_class,
    )
