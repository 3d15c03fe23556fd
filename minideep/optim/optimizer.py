"""The optimizer base class: parameters keyed by name, per-parameter state, state_dict.

Every optimizer keeps its parameters in a fixed order under a name (``"conv1.weight"``
from ``model.named_parameters()``, or ``"0"``, ``"1"``, ... by position), and its state
(momentum buffers, moment estimates, step counts) under the same names. Nothing is keyed
by ``id()`` or kept in a set, so a saved state dict restores a run exactly in a new
process, where the parameter objects are different objects with the same names.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Mapping

from ..autograd import Tensor, no_grad
from ..backend import as_numpy, get_array_module


def named_params(params: Iterable[Any], owner: str) -> "OrderedDict[str, Tensor]":
    """The parameters as an ordered ``name -> Tensor`` mapping.

    Accepts ``model.named_parameters()`` (pairs ``(name, param)``) or a plain iterable of
    tensors (named ``"0"``, ``"1"``, ... by position).
    """
    if isinstance(params, Tensor):
        raise TypeError(f"{owner}: params must be an iterable of parameters or (name, parameter) pairs, got one Tensor")
    if isinstance(params, (set, frozenset)):
        raise TypeError(f"{owner}: params must have a fixed order (a list or model.named_parameters()), got a set")
    if isinstance(params, Mapping):
        params = params.items()
    items = list(params)
    if not items:
        raise ValueError(f"{owner}: got an empty parameter list")
    named: OrderedDict[str, Tensor] = OrderedDict()
    for position, item in enumerate(items):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            name, param = item
        else:
            name, param = str(position), item
        if not isinstance(param, Tensor):
            raise TypeError(f"{owner}: parameter {name!r} is a {type(param).__name__}, expected a Tensor/Parameter")
        if name in named:
            raise ValueError(f"{owner}: two parameters are named {name!r}")
        if any(param is other for other in named.values()):  # identity test, not an id() key
            raise ValueError(f"{owner}: parameter {name!r} appears twice in the parameter list")
        named[name] = param
    return named


def check_nonnegative(owner: str, **values: float) -> None:
    """ValueError naming the first hyperparameter that is negative (or not a number)."""
    for key, value in values.items():
        if not value >= 0:  # also rejects NaN
            raise ValueError(f"{owner}: {key} must be >= 0, got {value}")


class Optimizer:
    """Base class: holds named parameters, the learning rate ``lr`` and per-parameter state.

    Subclasses set their hyperparameters (the names listed in ``hyperparameters``) and
    implement ``update(name, param, grad, state)``, which changes the array ``param`` in
    place given its gradient ``grad`` (both raw NumPy/CuPy arrays) and the parameter's
    state dict.

    Attributes:
        params: ordered ``name -> Parameter``.
        lr: the learning rate; schedules set it between epochs.
        state: ``name -> {"step": int, <buffer name>: array, ...}``.
    """

    #: hyperparameter names saved in ``state_dict`` (and restored by ``load_state_dict``).
    hyperparameters: tuple[str, ...] = ("lr",)

    def __init__(self, params: Iterable[Any], lr: float) -> None:
        self.params = named_params(params, type(self).__name__)
        check_nonnegative(type(self).__name__, lr=lr)
        self.lr = float(lr)
        self.state: dict[str, dict[str, Any]] = {}

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``grad = None``), as ``set_to_none=True`` in PyTorch."""
        for param in self.params.values():
            param.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place; parameters with ``grad None`` are skipped."""
        with no_grad():
            for name, param in self.params.items():
                if param.grad is None:
                    continue
                if param.grad.shape != param.data.shape:
                    raise ValueError(
                        f"{type(self).__name__}.step: gradient of {name!r} has shape {param.grad.shape}, "
                        f"parameter has shape {param.data.shape}"
                    )
                state = self.state.setdefault(name, {"step": 0})
                state["step"] += 1
                self.update(name, param.data, param.grad, state)
                param.bump_version()  # a graph built before this step can no longer be differentiated

    def update(self, name: str, param: Any, grad: Any, state: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.update")

    # --- saving and restoring -----------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's hyperparameters and per-parameter state, keyed by parameter name.

        Arrays are NumPy copies (moved off the GPU), so the dict can go into an ``.npz``.
        """
        return {
            "type": type(self).__name__,
            "hyperparameters": {key: getattr(self, key) for key in self.hyperparameters},
            "param_names": list(self.params),
            "state": {
                name: {key: (value if isinstance(value, int) else as_numpy(value).copy()) for key, value in s.items()}
                for name, s in self.state.items()
            },
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what ``state_dict()`` returned; the next ``step()`` continues the saved run exactly.

        Buffers are copied onto each parameter's device. Raises ValueError when the state
        belongs to another optimizer type or names a parameter this optimizer does not have,
        or when a buffer's shape differs from its parameter's.
        """
        owner = f"{type(self).__name__}.load_state_dict"
        saved_type = state_dict.get("type")
        if saved_type != type(self).__name__:
            raise ValueError(f"{owner}: the state was saved by {saved_type!r}, not {type(self).__name__!r}")
        unknown = [name for name in state_dict["state"] if name not in self.params]
        if unknown:
            raise ValueError(f"{owner}: state for unknown parameter(s) {unknown}; this optimizer has {list(self.params)}")
        new_state: dict[str, dict[str, Any]] = {}
        for name, saved in state_dict["state"].items():
            param = self.params[name]
            xp = get_array_module(param.data)
            restored: dict[str, Any] = {}
            for key, value in saved.items():
                if key == "step":
                    restored[key] = int(value)
                    continue
                array = xp.array(value, dtype=param.data.dtype)  # a copy, on the parameter's device
                if array.shape != param.data.shape:
                    raise ValueError(
                        f"{owner}: {key} of {name!r} has shape {array.shape}, parameter has shape {param.data.shape}"
                    )
                restored[key] = array
            new_state[name] = restored
        for key, value in state_dict["hyperparameters"].items():
            if key not in self.hyperparameters:
                raise ValueError(f"{owner}: unknown hyperparameter {key!r}")
            setattr(self, key, _like(getattr(self, key), value))
        self.state = new_state

    def __repr__(self) -> str:
        hyper = ", ".join(f"{key}={getattr(self, key)!r}" for key in self.hyperparameters)
        return f"{type(self).__name__}({len(self.params)} parameters, {hyper})"


def _like(current: Any, value: Any) -> Any:
    """``value`` with the Python type of ``current`` (a checkpoint may give lists or 0-d arrays)."""
    if isinstance(current, bool):
        return bool(value)
    if isinstance(current, tuple):
        return tuple(float(v) for v in value)
    if isinstance(current, (int, float)):
        return float(value)
    return value
