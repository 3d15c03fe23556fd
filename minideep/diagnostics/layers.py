"""Which layers a diagnostic looks at, and catching their outputs with forward hooks.

A deep network is read as a sequence of layers (or blocks) h_l = f_l(h_{l-1}). By default
the layers are the model's children in order, with containers (``Sequential``,
``ModuleList``) opened up into their own children, so ``nn.Sequential(Linear, ReLU, ...)``
and a model holding ``self.blocks = nn.ModuleList(...)`` both give one entry per layer.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

from ..autograd import Tensor

#: Module classes that only hold other modules; their children are the layers.
CONTAINERS = ("Sequential", "ModuleList")


def _is_container(module: Any) -> bool:
    return type(module).__name__ in CONTAINERS


def resolve_layers(model: Any, layers: Sequence[Any] | None, fn: str) -> list[tuple[str, Any]]:
    """``[(name, module)]`` for ``layers`` (modules or dotted names), or the default sequence.

    Args:
        model: the network (a Module).
        layers: None for the default (children, containers opened), or a list of modules
            of ``model`` or of names from ``model.named_modules()``.
        fn: the calling function's name, for error messages.
    """
    if not hasattr(model, "named_modules"):
        raise TypeError(f"{fn}: model must be a Module, got {type(model).__name__}")
    names = {id(m): n for n, m in model.named_modules()}
    if layers is None:
        out: list[tuple[str, Any]] = []
        stack = list(reversed(list(model.named_children())))
        while stack:
            name, module = stack.pop()
            if _is_container(module):
                stack.extend(reversed([(f"{name}.{n}", m) for n, m in module.named_children()]))
            else:
                out.append((name, module))
        if not out:
            raise ValueError(f"{fn}: {type(model).__name__} has no child modules; pass layers=[...]")
        return out
    by_name = dict(model.named_modules())
    out = []
    for item in layers:
        if isinstance(item, str):
            if item not in by_name:
                known = [n for n in by_name if n][:8]
                raise ValueError(f"{fn}: model has no module named {item!r} (some names: {known})")
            out.append((item, by_name[item]))
        elif id(item) in names:
            out.append((names[id(item)] or type(item).__name__, item))
        else:
            raise ValueError(f"{fn}: layer {type(item).__name__} is not a module of this model")
    if not out:
        raise ValueError(f"{fn}: layers is empty")
    return out


class OutputCapture:
    """Forward hooks that keep each layer's output (and its input) from one forward pass.

    Attributes:
        outputs: ``{name: Tensor}`` the output of each layer that ran.
        inputs: ``{name: Tensor}`` the first input of each layer that ran.
        order: layer names in the order their forward finished.
    """

    def __init__(self, layers: list[tuple[str, Any]], fn: str, retain_grad: bool = False) -> None:
        self.layers = layers
        self.fn = fn
        self.retain_grad = retain_grad
        self.outputs: dict[str, Tensor] = {}
        self.inputs: dict[str, Tensor] = {}
        self.order: list[str] = []

    def _hook(self, name: str):
        def hook(module: Any, inputs: tuple, output: Any) -> None:
            if name in self.outputs:
                raise ValueError(
                    f"{self.fn}: layer {name!r} ran twice in one forward pass (a shared module?); "
                    "its output is not one point of the chain, pass layers=[...] without it"
                )
            if not isinstance(output, Tensor):
                raise TypeError(f"{self.fn}: layer {name!r} returned {type(output).__name__}, not a Tensor")
            if self.retain_grad and output.requires_grad:
                output.retain_grad()
            self.outputs[name] = output
            if inputs and isinstance(inputs[0], Tensor):
                self.inputs[name] = inputs[0]
            self.order.append(name)
        return hook

    @contextlib.contextmanager
    def attached(self) -> Iterator["OutputCapture"]:
        """Hooks on while inside the ``with`` block, removed afterwards whatever happens."""
        handles = [module.register_forward_hook(self._hook(name)) for name, module in self.layers]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()


def activation_kind(module: Any, output: Tensor) -> str | None:
    """``"relu"``, ``"leaky_relu"``, ``"sigmoid"``, ``"tanh"`` or None: what made ``output``.

    Read from the module's class (``nn.ReLU``) or, for a block whose forward ends in a
    functional activation (``F.leaky_relu``), from the op that produced the output.
    """
    names = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}
    kind = names.get(type(module).__name__)
    if kind is None and output.grad_fn is not None:  # backward nodes are named as PyTorch's: ReluBackward, ...
        ops = {"ReluBackward": "relu", "LeakyReluBackward": "leaky_relu", "SigmoidBackward": "sigmoid", "TanhBackward": "tanh"}
        name = type(output.grad_fn).__name__
        kind = ops.get(name.removeprefix("Threaded"))  # the fast CPU kernels' ThreadedReluBackward, ...
    return kind


@contextlib.contextmanager
def frozen_parameters(model: Any) -> Iterator[None]:
    """Parameters do not require grad inside the block (no weight gradients computed or touched)."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad = False
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad = flag


@contextlib.contextmanager
def preserved_buffers(model: Any) -> Iterator[None]:
    """Running statistics (BN's running mean and variance) are put back after the block.

    A diagnostic's forward pass in training mode would otherwise move them, so looking at
    a model would change it.
    """
    saved = [(buf, buf.copy()) for _, buf in model.named_buffers()]
    try:
        yield
    finally:
        for buf, copy in saved:
            buf[...] = copy  # in place: the module keeps the same array
