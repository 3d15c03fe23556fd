"""Gradient flow: the mean absolute gradient of every layer's weights, the coursework's plot.

For every parameter that is not a bias (BatchNorm's gamma included, its beta left out),
in ``model.named_parameters()`` order, the statistic is

    flow(layer) = mean_i |dL/dW_i|

over all elements ``W_i`` of that weight tensor: one number per weight tensor, as in the
Edinburgh MLP coursework (9 points for VGG08, 39 for VGG38). ``GradientFlowRecorder``
records it during ``fit``, once per epoch from the last training minibatch (like the
coursework) and, if asked, every few steps.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from ..backend import as_numpy, get_array_module

#: The statistics a record holds for every layer, and what each one is.
STATISTICS = {
    "mean_abs": "mean |dL/dW| over the weight's elements (the coursework's statistic)",
    "max_abs": "max |dL/dW| over the weight's elements",
    "norm": "Euclidean (Frobenius) norm ||dL/dW||_2 of the whole weight gradient",
}

_BIAS_NAMES = ("bias", "beta")


def layer_name(param_name: str) -> str | None:
    """The layer name for a parameter name, or None for a bias.

    ``"block_0_0.conv_0.weight"`` -> ``"block_0_0.conv_0"``; ``"input_conv.bn_0.weight"``
    (BatchNorm's gamma) -> ``"input_conv.bn_0"``; ``"head.bias"`` -> None. A parameter with
    another final name (``"gate.alpha"``) keeps its whole name.
    """
    last = param_name.rsplit(".", 1)[-1]
    if last in _BIAS_NAMES:
        return None
    if param_name.endswith(".weight"):
        return param_name[: -len(".weight")]
    return param_name


def weight_parameters(model: Any) -> list[tuple[str, Any]]:
    """``[(layer name, parameter)]`` for every non-bias parameter of ``model``, in order."""
    if not hasattr(model, "named_parameters"):
        raise TypeError(f"gradient_flow: model must be a Module with named_parameters(), got {type(model).__name__}")
    weights = []
    for name, param in model.named_parameters():
        layer = layer_name(name)
        if layer is not None and getattr(param, "requires_grad", True):
            weights.append((layer, param))
    return weights


def _statistics(weights: list[tuple[str, Any]], fn: str) -> dict[str, dict[str, float]]:
    """mean |g|, max |g| and ||g|| of each weight's gradient, fetched from the device once."""
    if not weights:
        raise ValueError(f"{fn}: the model has no weight parameters (all are biases or frozen)")
    if all(p.grad is None for _, p in weights):
        raise ValueError(f"{fn}: no parameter has a gradient yet; call loss.backward() first")
    values = []
    for _, p in weights:
        g = p.grad
        if g is None:  # the loss does not depend on this weight: its gradient is zero
            values.append(None)
            continue
        xp = get_array_module(g)
        a = xp.abs(g)
        # float64 sums: a 1e-12 gradient squared is 1e-24, below float32's smallest normal
        values.append(xp.stack([a.mean(dtype=xp.float64), a.max().astype(xp.float64),
                                xp.sqrt((a.astype(xp.float64) ** 2).sum())]))
    present = [v for v in values if v is not None]
    xp = get_array_module(present[0])
    table = as_numpy(xp.stack(present))  # one device-to-host copy for every layer
    stats: dict[str, dict[str, float]] = {key: {} for key in STATISTICS}
    row = iter(table)
    for (layer, _), v in zip(weights, values):
        mean_abs, max_abs, norm = (0.0, 0.0, 0.0) if v is None else (float(x) for x in next(row))
        stats["mean_abs"][layer] = mean_abs
        stats["max_abs"][layer] = max_abs
        stats["norm"][layer] = norm
    return stats


def gradient_flow(model: Any) -> dict[str, float]:
    """Mean absolute gradient of every layer's weights: the coursework's gradient-flow statistic.

    .. math::

        \\text{flow}(l) = \\frac{1}{|W_l|} \\sum_i \\left| \\frac{\\partial L}{\\partial W_{l,i}} \\right|

    for every parameter of ``model`` that is not a bias, in ``named_parameters()`` order.
    BatchNorm's gamma (named ``weight``) counts as a weight; its beta (``bias``) does not.
    The layer name is the parameter's name without the trailing ``.weight``. A weight that
    received no gradient (``grad`` is None: the loss does not depend on it) counts as 0.

    Args:
        model: a Module after ``loss.backward()``.

    Returns:
        An ordered ``{layer name: mean |grad|}`` of Python floats.

    Example:
        >>> loss = F.cross_entropy(model(x), y); loss.backward()
        >>> gradient_flow(model)
        {'input_conv.conv_0': 0.041, 'input_conv.bn_0': 0.018, ..., 'logit_linear_layer': 0.0105}
    """
    return _statistics(weight_parameters(model), "gradient_flow")["mean_abs"]


def gradient_statistics(model: Any) -> dict[str, dict[str, float]]:
    """``{"mean_abs": {...}, "max_abs": {...}, "norm": {...}}``, each ``{layer: value}``.

    The same layers as :func:`gradient_flow`; ``mean_abs`` is the gradient-flow statistic,
    ``max_abs`` is max_i |dL/dW_i| and ``norm`` is ||dL/dW||_2 (sums in float64).
    """
    return _statistics(weight_parameters(model), "gradient_statistics")


class GradientFlowRecorder:
    """A ``fit`` callback that records the gradient flow during training.

    Per epoch, it records the gradient of the **last training minibatch** of the epoch,
    taken after ``backward`` and before the optimizer's step, as the coursework did
    (a single-minibatch snapshot, not an average over the epoch). With
    ``every="step"`` it also records every ``interval``-th step. It computes nothing at
    the other steps, so it costs a few elementwise passes over the gradients per record.

    Each record is a JSON-ready dict::

        {"epoch": 0, "step": 474, "mean_abs": {layer: float}, "max_abs": {...}, "norm": {...}}

    Args:
        every: ``"epoch"`` (one record per epoch) or ``"step"`` (also every ``interval`` steps).
        interval: with ``every="step"``, record steps 0, interval, 2*interval, ...

    Attributes:
        records: the per-epoch records, in order.
        step_records: the per-step records (empty unless ``every="step"``).

    Example:
        >>> recorder = GradientFlowRecorder()
        >>> fit(model, train_loader, epochs=5, callbacks=[recorder])
        >>> plots.gradient_flow(recorder.flow(), "flow.png")
    """

    def __init__(self, every: str = "epoch", interval: int = 1) -> None:
        if every not in ("epoch", "step"):
            raise ValueError(f"GradientFlowRecorder: every must be 'epoch' or 'step', got {every!r}")
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f"GradientFlowRecorder: interval must be a positive int, got {interval!r}")
        self.every = every
        self.interval = interval
        self.records: list[dict[str, Any]] = []
        self.step_records: list[dict[str, Any]] = []
        self._pending: dict[str, Any] | None = None
        self._steps_in_epoch = 0
        self._steps_seen = 0

    # --- the fit callback protocol ------------------------------------------------------
    def on_train_begin(self, state: Mapping[str, Any]) -> None:
        """Forget records past the epoch fit starts from (a resumed run recomputes them)."""
        start = state.get("epoch", 0) or 0
        self.records = [r for r in self.records if r["epoch"] < start]
        self.step_records = [r for r in self.step_records if r["epoch"] < start]
        self._pending = None
        self._steps_in_epoch = 0

    def on_step_end(self, state: Mapping[str, Any]) -> None:
        """Record this step if it is the epoch's last one, or a recorded step."""
        model = state["model"]
        last = _is_last_step(state)
        recorded_step = self.every == "step" and self._step_index(state) % self.interval == 0
        self._steps_in_epoch += 1
        self._steps_seen += 1
        if not (last or recorded_step):
            return
        record = self._record(model, state)
        if recorded_step:
            self.step_records.append(record)
        if last:
            self._pending = record

    def on_epoch_end(self, state: Mapping[str, Any]) -> None:
        """Store the epoch's record: from its last step, or from the gradients still held."""
        record = self._pending
        if record is None and self._steps_in_epoch:
            # fit did not say which step was the last: the gradients still hold it
            record = self._record(state["model"], state)
        if record is not None:
            record = dict(record, epoch=int(state.get("epoch", record["epoch"])))
            self.records.append(record)
        self._pending = None
        self._steps_in_epoch = 0

    # --- reading the records --------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        """The layer names, in order (empty before the first record)."""
        first = (self.records or self.step_records or [{}])[0]
        return list(first.get("mean_abs", {}))

    def flow(self, statistic: str = "mean_abs", per: str = "epoch") -> list[dict[str, float]]:
        """The records of one statistic as ``[{layer: value}, ...]``, the input of the flow plots.

        Args:
            statistic: ``"mean_abs"``, ``"max_abs"`` or ``"norm"``.
            per: ``"epoch"`` (``records``) or ``"step"`` (``step_records``).
        """
        if statistic not in STATISTICS:
            raise ValueError(f"GradientFlowRecorder.flow: statistic must be one of {list(STATISTICS)}, got {statistic!r}")
        if per not in ("epoch", "step"):
            raise ValueError(f"GradientFlowRecorder.flow: per must be 'epoch' or 'step', got {per!r}")
        records = self.records if per == "epoch" else self.step_records
        return [dict(r[statistic]) for r in records]

    def to_dict(self) -> dict[str, Any]:
        """Everything recorded, as plain JSON-ready Python (lists, dicts, floats, strings)."""
        return {"every": self.every, "interval": self.interval, "statistics": dict(STATISTICS),
                "records": self.records, "step_records": self.step_records}

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON to ``path``; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GradientFlowRecorder":
        """A recorder holding the records of :meth:`to_dict` (e.g. to resume a run)."""
        recorder = cls(every=data.get("every", "epoch"), interval=data.get("interval", 1))
        recorder.records = [dict(r) for r in data.get("records", [])]
        recorder.step_records = [dict(r) for r in data.get("step_records", [])]
        return recorder

    # --- helpers ------------------------------------------------------------------------
    def _step_index(self, state: Mapping[str, Any]) -> int:
        """The global step number from ``state``, or a count of the steps seen."""
        step = state.get("step")
        return int(step) if step is not None else self._steps_seen

    def _record(self, model: Any, state: Mapping[str, Any]) -> dict[str, Any]:
        stats = gradient_statistics(model)
        return {"epoch": int(state.get("epoch", 0) or 0), "step": int(state.get("step", 0) or 0), **stats}


def _is_last_step(state: Mapping[str, Any]) -> bool:
    """Whether fit says this step is the epoch's last (``batch`` index and ``num_batches``)."""
    for index_key, count_key in (("batch", "num_batches"), ("batch", "batches_per_epoch"), ("batch", "steps_per_epoch")):
        index, count = state.get(index_key), state.get(count_key)
        if index is not None and count:
            return int(index) == int(count) - 1
    return False
