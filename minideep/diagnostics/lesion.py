"""Lesioning: turn one layer into the identity and see how much the network needed it.

Srivastava et al. (2015) shut the transform gate of one highway layer at a time (T = 0, so
y = x) and measured the test error: layers the network does not use cost nothing, layers
it relies on cost a lot. ``lesioned(model, name)`` does this to any layer for the length
of a ``with`` block and puts the layer back afterwards; ``lesion_study`` does it to every
layer in turn.

How a layer becomes the identity:

* a highway layer (``nn.Highway``, ``nn.HighwayConv2d``): the gate is shut, T = 0, so
  y = x: a forward hook replaces the layer's output by its input;
* a residual block (``nn.ResidualBlock``, y = act(F(x) + S(x))): the residual branch F is
  removed, so y = act(S(x)), which is x for an identity shortcut when x >= 0 (the output
  of a ReLU block), as in Veit et al. (2016);
* any other layer whose output has its input's shape: its forward returns its input.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..autograd import Tensor, no_grad
from ..backend import as_numpy
from .highway import is_highway
from .layers import OutputCapture, resolve_layers


def lesion_kind(module: Any) -> str:
    """``"gate"``, ``"residual"`` or ``"identity"``: how ``lesioned`` bypasses ``module``."""
    if is_highway(module):
        return "gate"
    if callable(getattr(module, "residual", None)) and callable(getattr(module, "shortcut", None)):
        return "residual"
    return "identity"


def _shut_gate(module: Any, inputs: tuple, output: Any) -> Any:
    """A forward hook: the highway layer's gate shut (T = 0), so y = x."""
    return inputs[0]


def _identity_forward(name: str, module: Any, original: Any):
    """A forward that returns its input, after checking once that the layer keeps the shape."""
    checked = False

    def forward(x: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal checked
        if not checked:
            flags = [(m, m.training) for m in module.modules()]
            module.eval()  # a probe in eval mode: BN running statistics stay as they are
            try:
                with no_grad():
                    shape = original(x, *args, **kwargs).shape
            finally:
                for m, flag in flags:
                    object.__setattr__(m, "training", flag)
            if tuple(shape) != tuple(x.shape):
                raise ValueError(
                    f"lesioned: layer {name!r} maps {tuple(x.shape)} to {tuple(shape)}; only a layer that keeps "
                    "the shape can be replaced by the identity"
                )
            checked = True
        return x

    return forward


def _resolve(model: Any, layer: Any) -> tuple[str, Any]:
    return resolve_layers(model, [layer], "lesioned")[0]


@contextlib.contextmanager
def lesioned(model: Any, *layers: Any) -> Iterator[Any]:
    """Inside the ``with`` block, each named layer of ``model`` is the identity; restored afterwards.

    Args:
        model: the network.
        *layers: one or more layers, as names from ``model.named_modules()`` or as modules.

    Yields:
        ``model`` itself, with the layers lesioned (see the module docstring for how).

    Example:
        >>> with lesioned(net, "layers.3"):
        ...     accuracy_without_layer_3 = evaluate(net, test_set)
        >>> # net is whole again here
    """
    if not layers:
        raise ValueError("lesioned: name at least one layer")
    chosen = [_resolve(model, layer) for layer in layers]
    undo: list[Any] = []
    try:
        for name, module in chosen:
            kind = lesion_kind(module)
            if kind == "gate":  # T = 0: y = x, the hook hands the layer's input on as its output
                undo.append(module.register_forward_hook(_shut_gate).remove)
                continue
            if "forward" in module.__dict__:
                raise ValueError(f"lesioned: layer {name!r} is already lesioned (or its forward was replaced)")
            if kind == "residual":
                forward = (lambda m: lambda x: m.activation(m.shortcut(x)))(module)
            else:
                forward = _identity_forward(name, module, module.forward)
            object.__setattr__(module, "forward", forward)  # shadows the class's forward
            undo.append(lambda m=module: object.__delattr__(m, "forward"))
        yield model
    finally:
        for restore in reversed(undo):
            restore()


@dataclass
class LesionReport:
    """Accuracy with each layer lesioned in turn.

    Attributes:
        names: the lesioned layers, in order.
        kinds: how each was bypassed (``"gate"``, ``"residual"``, ``"identity"``).
        accuracies: accuracy (a fraction) with that layer lesioned.
        baseline: accuracy of the intact network.
        n_examples: how many examples were evaluated.
    """

    names: list[str]
    kinds: list[str]
    accuracies: list[float]
    baseline: float
    n_examples: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready Python."""
        return asdict(self)

    def table(self) -> str:
        """A text table: layer, kind, accuracy, and the drop from the baseline."""
        rows = [f"{'layer':<28} {'lesion':<9} {'accuracy':>9} {'drop':>8}", f"{'(none)':<28} {'':<9} {self.baseline:9.2%}"]
        for name, kind, acc in zip(self.names, self.kinds, self.accuracies):
            rows.append(f"{name[:28]:<28} {kind:<9} {acc:9.2%} {self.baseline - acc:8.2%}")
        return "\n".join(rows)


def _batches(data: Any, batch_size: int) -> Iterable[tuple[Any, Any]]:
    """(x, y) batches from an ``(x, y)`` pair (cut into ``batch_size`` pieces) or a loader."""
    if isinstance(data, tuple) and len(data) == 2:
        x, y = data
        n = len(x)
        if len(y) != n:
            raise ValueError(f"lesion_study: x has {n} examples but y has {len(y)}")
        return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size)]
    return data


def accuracy(model: Any, data: Any, batch_size: int = 500) -> tuple[float, int]:
    """(fraction of examples whose largest logit is the target, number of examples), no graph built."""
    correct = total = 0
    with no_grad():
        for x, y in _batches(data, batch_size):
            logits = model(x if isinstance(x, Tensor) else Tensor(x))
            target = as_numpy(y.data if isinstance(y, Tensor) else y).astype(np.int64).reshape(-1)
            predicted = as_numpy(logits.data).argmax(axis=1)
            correct += int((predicted == target).sum())
            total += len(target)
    if total == 0:
        raise ValueError("lesion_study: the data holds no examples")
    return correct / total, total


def _first_batch(data: Any, batch_size: int) -> Any:
    for x, _ in _batches(data, batch_size):
        return x
    raise ValueError("lesion_study: the data holds no examples")


def default_lesion_layers(model: Any, x: Any) -> list[str]:
    """Every highway layer and residual block; if there are none, every child
    (containers opened) that keeps its input's shape, found with one probe forward on ``x``."""
    special = [name for name, m in model.named_modules() if name and lesion_kind(m) != "identity"]
    if special:
        return special
    chosen = resolve_layers(model, None, "lesion_study")
    capture = OutputCapture(chosen, "lesion_study")
    with no_grad(), capture.attached():
        model(x if isinstance(x, Tensor) else Tensor(x))
    return [name for name in capture.order
            if name in capture.inputs and tuple(capture.inputs[name].shape) == tuple(capture.outputs[name].shape)]


def lesion_study(
    model: Any,
    data: Any,
    layers: Sequence[Any] | None = None,
    *,
    batch_size: int = 500,
) -> LesionReport:
    """Accuracy of ``model`` with each layer turned into the identity, one at a time.

    The model is evaluated in eval mode (BN with its running statistics) and put back in
    the mode it had, with every layer restored.

    Args:
        model: a trained classifier (logits on axis 1).
        data: an ``(x, y)`` pair of arrays or Tensors, or an iterable of ``(x, y)`` batches
            (a DataLoader; it is read once per layer, plus once for the baseline).
        layers: names or modules to lesion; default: every highway layer and residual block,
            or, in a network with neither, every layer that keeps its input's shape.
        batch_size: batch size for an ``(x, y)`` pair.

    Returns:
        A :class:`LesionReport` (``.to_dict()`` for JSON, ``.table()`` to print; its
        ``names`` and ``accuracies`` feed ``plots.lesion_curve``).

    Example:
        >>> report = lesion_study(highway_net, (x_test, y_test))
        >>> plots.lesion_curve(range(1, len(report.names) + 1), report.accuracies, report.baseline, "lesion.png")
    """
    if not hasattr(model, "named_modules"):
        raise TypeError(f"lesion_study: model must be a Module, got {type(model).__name__}")
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        names = (default_lesion_layers(model, _first_batch(data, batch_size)) if layers is None
                 else [_resolve(model, layer)[0] for layer in layers])
        if not names:
            raise ValueError("lesion_study: found no layer to lesion; pass layers=[...]")
        baseline, n = accuracy(model, data, batch_size)
        modules = dict(model.named_modules())
        kinds, accuracies = [], []
        for name in names:
            kinds.append(lesion_kind(modules[name]))
            with lesioned(model, name):
                accuracies.append(accuracy(model, data, batch_size)[0])
    finally:
        for m, flag in flags:
            object.__setattr__(m, "training", flag)
    return LesionReport(names=names, kinds=kinds, accuracies=accuracies, baseline=baseline, n_examples=n)
