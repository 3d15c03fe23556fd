"""``Module`` and ``Parameter``: how a network holds its weights, and the containers.

A network is a tree of modules. Each module keeps, in assignment order, the parameters
(trainable tensors), buffers (running statistics: raw arrays, not trained) and
sub-modules that were assigned to it as attributes::

    class TwoLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(4, 8)     # registered as child "hidden"
            self.out = nn.Linear(8, 2)        # registered as child "out"

        def forward(self, x):
            return self.out(F.relu(self.hidden(x)))

    list(dict(TwoLayer().named_parameters()))
    # ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']

Names are dotted paths, in a fixed order (a module's own parameters in assignment order,
then each child's, as in PyTorch), so optimizer state and checkpoints are keyed by name
and a run restores exactly.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import numpy as np

from ..autograd import RemovableHandle, Tensor
from ..backend import check_device, device_of, get_array_module, to_device


class Parameter(Tensor):
    """A leaf tensor that a ``Module`` registers as trainable (``requires_grad=True``).

    Example::

        w = nn.Parameter(np.zeros((3, 2), dtype=np.float32))
    """

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` could not match."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _is_array(value: Any) -> bool:
    return isinstance(value, get_array_module(value).ndarray)


class Module:
    """Base class of every layer, block and model.

    Subclasses call ``super().__init__()`` first, assign their parameters and sub-modules
    as attributes, and define ``forward``. Calling the module runs ``forward`` and then
    the forward hooks.

    Attributes:
        training: True in training mode (batch statistics in BN, dropout on); set it with
            ``train()`` and ``eval()``.
    """

    def __init__(self) -> None:
        # object.__setattr__: our own __setattr__ needs these dicts to exist already.
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # --- registration -------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning attribute {name!r}"
            )
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._register(params, name, value)
        elif isinstance(value, Module):
            self._register(modules, name, value)
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}: cannot assign {type(value).__name__} to parameter {name!r} "
                    "(expected a Parameter or None)"
                )
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}: cannot assign {type(value).__name__} to sub-module {name!r} "
                    "(expected a Module or None)"
                )
            modules[name] = None
        elif name in buffers:
            if value is not None and not _is_array(value):
                raise TypeError(
                    f"{type(self).__name__}: buffer {name!r} must be an ndarray or None, got {type(value).__name__}"
                )
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _register(self, registry: "OrderedDict[str, Any]", name: str, value: Any) -> None:
        """Put ``name`` in ``registry`` (keeping its place if it is there already) and nowhere else."""
        for other in (self._parameters, self._buffers, self._modules):
            if other is not registry:
                other.pop(name, None)
        self.__dict__.pop(name, None)
        registry[name] = value

    def __getattr__(self, name: str) -> Any:
        # Called only when normal lookup fails: parameters, buffers and children live in the dicts.
        for registry in ("_parameters", "_buffers", "_modules"):
            values = self.__dict__.get(registry)
            if values is not None and name in values:
                return values[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or None: a slot with no parameter, such as ``bias=False``)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got {type(param).__name__}")
        self._register(self._parameters, name, param)

    def register_buffer(self, name: str, array: Any) -> None:
        """Register a raw array (e.g. a running mean) that is saved in ``state_dict`` but not trained."""
        if array is not None and not _is_array(array):
            raise TypeError(f"register_buffer: {name!r} must be an ndarray or None, got {type(array).__name__}")
        self._register(self._buffers, name, array)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Register ``module`` as the child ``name`` (for names that are not identifiers, like "0")."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module or None, got {type(module).__name__}")
        if not name or "." in name:
            raise ValueError(f"add_module: module name must be non-empty and contain no '.', got {name!r}")
        self._register(self._modules, name, module)

    # --- forward and hooks --------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            replaced = hook(self, args, output)
            output = output if replaced is None else replaced
        return output

    def register_forward_hook(self, hook: Callable[["Module", tuple, Any], Any]) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every forward; a returned value replaces the output.

        Returns a handle whose ``remove()`` takes the hook off. Diagnostics use this to record
        every layer's output without changing the model's code.
        """
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # --- walking the tree ---------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """(dotted name, module) for this module ("" when no prefix) and every descendant, depth first."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:  # iterative, so a 1000-block network does not hit the recursion limit
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator["Module"]:
        """This module and every descendant, depth first."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """(name, module) of the direct sub-modules, in assignment order."""
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self) -> Iterator["Module"]:
        """The direct sub-modules, in assignment order."""
        for _, module in self.named_children():
            yield module

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) in network order: each module's own, then its children's.

        A parameter shared by two modules is listed once, under its first name.
        """
        seen: set[int] = set()
        for module_name, module in self.named_modules(prefix):
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self) -> Iterator[Parameter]:
        """Every parameter, in the order of ``named_parameters``."""
        for _, param in self.named_parameters():
            yield param

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """(dotted name, array) of every buffer (running statistics), in network order."""
        for module_name, module in self.named_modules(prefix):
            for name, buf in module._buffers.items():
                if buf is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buf

    def buffers(self) -> Iterator[Any]:
        """Every buffer array, in the order of ``named_buffers``."""
        for _, buf in self.named_buffers():
            yield buf

    def num_parameters(self) -> int:
        """The number of trainable numbers: the sum of the parameters' sizes."""
        return sum(int(p.size) for p in self.parameters())

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Call ``fn(module)`` on every descendant and then on this module (as PyTorch); returns self."""
        seen: set[int] = set()
        stack: list[tuple[Module, bool]] = [(self, False)]
        while stack:  # an iterative post-order walk: children (in order) before their parent
            module, children_done = stack.pop()
            if children_done:
                fn(module)
                continue
            if id(module) in seen:
                continue
            seen.add(id(module))
            stack.append((module, True))
            stack.extend((child, False) for child in reversed(list(module.children())))
        return self

    # --- modes and gradients ------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (``mode=True``) or evaluation mode, for this module and all below; returns self."""
        if not isinstance(mode, bool):
            raise TypeError(f"train: mode must be a bool, got {type(mode).__name__}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode: BN uses its running statistics, dropout is off. Same as ``train(False)``."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (sets ``.grad`` to None, as PyTorch does by default)."""
        for param in self.parameters():
            param.grad = None

    # --- state --------------------------------------------------------------------------
    def _state_items(self) -> Iterator[tuple[str, Any, Any]]:
        """(name, owner, key) for every parameter and buffer: each module's parameters, then buffers."""
        seen: set[int] = set()
        for module_name, module in self.named_modules():
            for registry in (module._parameters, module._buffers):
                for name, value in registry.items():
                    if value is None or id(value) in seen:
                        continue
                    seen.add(id(value))
                    yield (f"{module_name}.{name}" if module_name else name), registry, name

    def state_dict(self) -> "OrderedDict[str, Any]":
        """name -> a copy of every parameter's and buffer's array (on its device), in network order."""
        state: OrderedDict[str, Any] = OrderedDict()
        for name, registry, key in self._state_items():
            value = registry[key]
            array = value.data if isinstance(value, Tensor) else value
            state[name] = array.copy()
        return state

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy ``state_dict``'s arrays into this module's parameters and buffers, in place.

        Arrays are copied into the existing ones (so an optimizer holding the parameters keeps
        working), converted to each parameter's dtype and device. Shapes must match. With
        ``strict=True`` (the default) the names must match exactly, else a ValueError names the
        missing and unexpected keys; with ``strict=False`` they are returned instead.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"load_state_dict: expected a dict of arrays, got {type(state_dict).__name__}")
        targets = {name: (registry, key) for name, registry, key in self._state_items()}
        missing = [name for name in targets if name not in state_dict]
        unexpected = [name for name in state_dict if name not in targets]
        if strict and (missing or unexpected):
            raise ValueError(
                f"load_state_dict: {type(self).__name__} state does not match: "
                f"missing keys {missing}, unexpected keys {unexpected}"
            )
        for name, (registry, key) in targets.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            value = value.data if isinstance(value, Tensor) else value
            if not hasattr(value, "shape"):
                value = np.asarray(value)
            target = registry[key]
            target_array = target.data if isinstance(target, Tensor) else target
            if tuple(value.shape) != tuple(target_array.shape):
                raise ValueError(
                    f"load_state_dict: {name!r} has shape {tuple(value.shape)} in the state dict "
                    f"but {tuple(target_array.shape)} in the module"
                )
            target_array[...] = to_device(value, device_of(target_array)).astype(target_array.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    def to(self, device: str) -> "Module":
        """Move every parameter (and its gradient) and buffer to ``device`` ("cpu"/"gpu") in place; returns self.

        The Parameter objects stay the same, so an optimizer built before the move still holds them.
        """
        check_device(device)
        self._convert(lambda array: to_device(array, device), floats_only=False)
        return self

    def to_dtype(self, dtype: Any) -> "Module":
        """Convert every floating-point parameter, gradient and buffer to ``dtype`` in place; returns self."""
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"to_dtype: dtype must be a floating-point type, got {dtype}")
        self._convert(lambda array: array.astype(dtype, copy=False), floats_only=True)
        return self

    def double(self) -> "Module":
        """Float64 parameters and buffers (for gradient checks), as PyTorch's ``.double()``; returns self."""
        return self.to_dtype(np.float64)

    def float(self) -> "Module":
        """Float32 parameters and buffers, as PyTorch's ``.float()``; returns self."""
        return self.to_dtype(np.float32)

    def _convert(self, fn: Callable[[Any], Any], floats_only: bool) -> None:
        def wanted(array: Any) -> bool:
            return not floats_only or np.issubdtype(array.dtype, np.floating)

        for module in self.modules():
            for param in module._parameters.values():
                if param is None:
                    continue
                if wanted(param.data):
                    param.data = fn(param.data)
                if param.grad is not None and wanted(param.grad):
                    param.grad = fn(param.grad)
            for name, buf in module._buffers.items():
                if buf is not None and wanted(buf):
                    module._buffers[name] = fn(buf)

    # --- printing -----------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The arguments shown inside the parentheses of this module's line in ``repr``."""
        return ""

    def __repr__(self) -> str:
        return "\n".join(self._repr_lines())

    def _repr_lines(self) -> list[str]:
        count = self.num_parameters()
        note = f"  # {count:,} parameters" if count else ""
        children = list(self.named_children())
        if not children:
            return [f"{type(self).__name__}({self.extra_repr()}){note}"]
        lines = [f"{type(self).__name__}({note}"]
        if self.extra_repr():
            lines.append(f"  {self.extra_repr()}")
        for name, child in children:
            child_lines = child._repr_lines()
            lines.append(f"  ({name}): {child_lines[0]}")
            lines.extend("  " + line for line in child_lines[1:])
        lines.append(")")
        return lines


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: their children, in order, as a sequence."""

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class Sequential(_ModuleSequence):
    """Modules applied one after another: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Children are named "0", "1", ... (or by the keys of an ``OrderedDict`` passed alone).
    Supports ``len``, iteration, ``seq[i]`` and ``seq[i:j]`` (a new Sequential sharing the modules).

    Example::

        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        list(dict(net.named_parameters()))  # ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                if not isinstance(module, Module):
                    raise TypeError(f"Sequential: argument {i} is a {type(module).__name__}, not a Module")
                self.add_module(str(i), module)

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x

    def append(self, module: Module) -> "Sequential":
        """Add ``module`` at the end; returns self."""
        self.add_module(str(len(self)), module)
        return self

    def __getitem__(self, index: int | slice) -> Any:
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        return items[_check_index("Sequential", index, len(items))][1]


class ModuleList(_ModuleSequence):
    """A list of modules whose parameters are registered (a plain Python list would hide them).

    Children are named "0", "1", ...; supports ``len``, iteration, indexing, ``append`` and
    ``extend``. It has no ``forward``: the owner decides how to apply the modules.

    Example::

        self.layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(10))
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def append(self, module: Module) -> "ModuleList":
        """Add ``module`` at the end; returns self."""
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: expected a Module, got {type(module).__name__}")
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        """Add every module of ``modules`` at the end; returns self."""
        for module in modules:
            self.append(module)
        return self

    def __getitem__(self, index: int | slice) -> Any:
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[_check_index("ModuleList", index, len(modules))]

    def __setitem__(self, index: int, module: Module) -> None:
        index = _check_index("ModuleList", index, len(self))
        self.add_module(str(index), module)  # an existing name keeps its place


def _check_index(container: str, index: Any, length: int) -> int:
    if not isinstance(index, (int, np.integer)):
        raise TypeError(f"{container}: indices must be integers or slices, got {type(index).__name__}")
    if not -length <= index < length:
        raise IndexError(f"{container}: index {index} is out of range for length {length}")
    return int(index) % length

