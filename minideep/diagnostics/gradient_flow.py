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
    the other steps: a record costs a few elementwise passes over the gradients.

    Each record is a JSON-ready dict::

        {"epoch": 0, "step": 474, "mean_abs": {layer: float}, "max_abs": {...}, "norm": {...}}

    where ``step`` counts optimizer steps over the whole run (``TrainState.global_step``).
    The per-epoch record is also stored in fit's history entry under ``"gradient_flow"``,
    so it is saved in checkpoints and ``results.json``, and a resumed run gets its earlier
    epochs back.

    Args:
        every: ``"epoch"`` (one record per epoch) or ``"step"`` (also every ``interval`` steps).
        interval: with ``every="step"``, record global steps 0, interval, 2*interval, ...
        into_history: also put each epoch's record into fit's history (default True).

    Attributes:
        records: the per-epoch records, in order.
        step_records: the per-step records (empty unless ``every="step"``).

    Example:
        >>> recorder = GradientFlowRecorder()
        >>> fit(model, optimizer, train_loader, 5, callbacks=[recorder])
        >>> plots.gradient_flow(recorder.flow(), "flow.png")
    """

    history_key = "gradient_flow"

    def __init__(self, every: str = "epoch", interval: int = 1, into_history: bool = True) -> None:
        if every not in ("epoch", "step"):
            raise ValueError(f"GradientFlowRecorder: every must be 'epoch' or 'step', got {every!r}")
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"GradientFlowRecorder: interval must be a positive int, got {interval!r}")
        self.every = every
        self.interval = interval
        self.into_history = into_history
        self.records: list[dict[str, Any]] = []
        self.step_records: list[dict[str, Any]] = []
        self._pending: dict[str, Any] | None = None
        self._steps_in_epoch = 0

    # --- the fit callback protocol ------------------------------------------------------
    def on_train_begin(self, state: Any) -> None:
        """Start clean; on a resumed run, take the finished epochs' records from the history."""
        history = _get(state, "history") or []
        start = len(history)  # epochs already finished (a resumed run)
        kept = [dict(r[self.history_key]) for r in history if isinstance(r, Mapping) and self.history_key in r]
        self.records = kept or [r for r in self.records if r["epoch"] < start]
        self.step_records = [r for r in self.step_records if r["epoch"] < start]
        self._pending = None
        self._steps_in_epoch = 0

    def on_epoch_begin(self, state: Any) -> None:
        self._pending = None
        self._steps_in_epoch = 0

    def on_step_end(self, state: Any) -> None:
        """Record this step if it is the epoch's last one, or one of the recorded steps."""
        step = int(_get(state, "step") or 0)
        count = _get(state, "steps_per_epoch")
        last = bool(count) and step == int(count) - 1
        recorded_step = self.every == "step" and self._global_step(state) % self.interval == 0
        self._steps_in_epoch += 1
        if last or recorded_step:
            record = self._record(state)
            if recorded_step:
                self.step_records.append(record)
            if last:
                self._pending = record

    def on_epoch_end(self, state: Any) -> None:
        """Store the epoch's record (from its last step, or from the gradients still held)."""
        record = self._pending
        if record is None and self._steps_in_epoch:
            # the loader had no length, so the last step was not known: .grad still holds it
            record = self._record(state, step=self._global_step(state) - 1)
        if record is not None:
            self.records.append(record)
            entry = _get(state, "record")
            if self.into_history and isinstance(entry, dict):
                entry[self.history_key] = record
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
        """A recorder holding the records of :meth:`to_dict` (e.g. read back from JSON)."""
        recorder = cls(every=data.get("every", "epoch"), interval=data.get("interval", 1))
        recorder.records = [dict(r) for r in data.get("records", [])]
        recorder.step_records = [dict(r) for r in data.get("step_records", [])]
        return recorder

    # --- helpers ------------------------------------------------------------------------
    def _global_step(self, state: Any) -> int:
        step = _get(state, "global_step")
        return int(step) if step is not None else int(_get(state, "step") or 0)

    def _record(self, state: Any, step: int | None = None) -> dict[str, Any]:
        stats = gradient_statistics(_get(state, "model"))
        step = self._global_step(state) if step is None else step
        return {"epoch": int(_get(state, "epoch") or 0), "step": int(step), **stats}


def _get(state: Any, key: str) -> Any:
    """``state.key`` for fit's TrainState, ``state[key]`` for a dict; None when absent."""
    if isinstance(state, Mapping):
        return state.get(key)
    return getattr(state, key, None)


def first_last_ratio(flow: dict[str, float]) -> float:
    """mean |grad| of the first layer over that of the last: how much the gradient shrank on the way back."""
    values = list(flow.values())
    return float(values[0] / values[-1]) if values and values[-1] else float("nan")
