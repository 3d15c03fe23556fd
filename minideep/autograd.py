"""The whole engine: ``Tensor``, ``Function`` and the reverse-mode backward pass.

A ``Tensor`` wraps an array (``.data``) and remembers the ``Function`` that made it
(``.grad_fn``). A ``Function`` computes its output from raw arrays in ``forward`` and,
given dL/d(output), returns dL/d(input) for each input in ``backward``. Calling
``loss.backward()`` visits every function of the graph once, from the loss back to the
leaves, and applies the chain rule:

    dL/dx = sum over the uses y of x of  (dL/dy) * (dy/dx)

The operators on ``Tensor`` (``+``, ``@``, ``.sum()``, ...) are attached in
``minideep/ops/tensor_methods.py``; the ops themselves live in ``minideep/ops/``.
``Function`` subclasses are named for the backward node they become, as in PyTorch
(``grad_fn=MulBackward``), so that a graph never reads like a list of layers.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .backend import DEFAULT_DTYPE, as_numpy, device_of, get_array_module, to_device

# ----------------------------------------------------------------------------------------
# Graph building on and off
# ----------------------------------------------------------------------------------------

_grad_enabled = True


def is_grad_enabled() -> bool:
    """True while operations record the graph that ``backward`` needs."""
    return _grad_enabled


class _GradMode(contextlib.ContextDecorator):
    """Graph building on or off inside a ``with`` block or a decorated function."""

    enabled: bool

    def __init__(self) -> None:
        # A stack, not one saved state: a decorated recursive function enters the same instance again.
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        global _grad_enabled
        self._previous.append(_grad_enabled)
        _grad_enabled = self.enabled

    def __exit__(self, *exc: Any) -> None:
        global _grad_enabled
        _grad_enabled = self._previous.pop()


class no_grad(_GradMode):
    """Turn graph building off inside ``with md.no_grad():`` (or on a decorated function).

    Evaluation and optimizer steps need no gradients; without a graph they use less
    memory and time.
    """

    enabled = False


class enable_grad(_GradMode):
    """Turn graph building back on inside a ``no_grad`` block (``with`` or as a decorator)."""

    enabled = True


# ----------------------------------------------------------------------------------------
# Broadcasting, undone in one place
# ----------------------------------------------------------------------------------------


# --8<-- [start:sum_to]
def sum_to(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` down to ``shape``: the backward of NumPy broadcasting.

    If ``x`` of shape ``shape`` was broadcast to ``grad.shape`` in the forward pass, every
    element of ``x`` was used once per copy, so dL/dx is the sum of the gradient over the
    copies: over the leading axes that broadcasting added, and over every axis where
    ``x`` had length 1.
    """
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)  # leading axes that broadcasting prepended
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape)
# --8<-- [end:sum_to]


# ----------------------------------------------------------------------------------------
# Tensor
# ----------------------------------------------------------------------------------------


class ModifiedInPlaceError(RuntimeError):
    """A tensor that ``backward`` needs was changed in place after the forward pass used it.

    Typically ``optimizer.step()`` between a forward pass and its ``backward()``: the
    gradients would belong to the updated weights, not to the ones that made the loss.
    Every input of every function on the way back is checked (PyTorch checks only the
    tensors a function saved, so it is a little stricter than PyTorch).
    """


class RemovableHandle:
    """Returned by ``register_hook`` (and ``Module.register_forward_hook``); ``remove()`` takes the hook off."""

    _next_id = 0

    def __init__(self, hooks: "dict[int, Callable]") -> None:
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)


def _is_float(dtype: Any) -> bool:
    return np.issubdtype(np.dtype(dtype), np.floating)


class Tensor:
    """An array with a gradient, and the op that produced it.

    Attributes:
        data: the values, a NumPy (CPU) or CuPy (GPU) ndarray.
        grad: dL/d(this tensor) after ``backward()``, an ndarray of the same shape, or None.
            Gradients accumulate across ``backward`` calls until cleared, as in PyTorch.
        requires_grad: whether gradients flow to (and through) this tensor.
        grad_fn: the ``Function`` that made this tensor, or None for a leaf.
    """

    # Makes ``ndarray + Tensor`` call ``Tensor.__radd__`` instead of NumPy's broadcasting.
    __array_ufunc__ = None

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        xp = get_array_module(data)
        # An array (or NumPy scalar) keeps its dtype; Python numbers and lists become float32, as
        # ``torch.Tensor([1, 2])`` does.
        if not isinstance(data, xp.ndarray):
            data = xp.asarray(data) if hasattr(data, "dtype") else xp.asarray(data, dtype=DEFAULT_DTYPE)
        self.data = data
        if requires_grad and not _is_float(self.data.dtype):
            raise TypeError(
                f"tensor: only floating-point tensors can require gradients, got dtype {self.data.dtype}"
            )
        self.requires_grad = requires_grad
        self.grad: Any = None
        self.grad_fn: Function | None = None
        self.name: str | None = None  # optional label, shown by minideep.graph_picture
        self._retains_grad = False
        self._hooks: dict[int, Callable[[Any], Any]] = {}
        self._version = 0  # bumped by in-place updates (optimizer steps); see ModifiedInPlaceError

    # --- properties -------------------------------------------------------------------
    shape = property(lambda self: self.data.shape, doc="The array's shape.")
    dtype = property(lambda self: self.data.dtype, doc="The array's dtype.")
    ndim = property(lambda self: self.data.ndim, doc="Number of axes.")
    size = property(lambda self: self.data.size, doc="Number of elements.")
    device = property(lambda self: device_of(self.data), doc='"cpu" or "gpu".')
    is_leaf = property(lambda self: self.grad_fn is None, doc="Made by the user, not by an op.")

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        # The data's truth value (an error when ambiguous); without this Python would use len(),
        # and `a in [b]` would be True for any two tensors of the same length.
        return bool(self.data)

    def __iter__(self) -> Iterator["Tensor"]:
        # Explicit, because indexing past the end raises ValueError, which ends no for loop.
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        body = np.array2string(as_numpy(self.data), precision=4, separator=", ", prefix="tensor(")
        extra = f", grad_fn={type(self.grad_fn).__name__}" if self.grad_fn else ""
        extra += ", requires_grad=True" if self.requires_grad and self.is_leaf else ""
        return f"tensor({body}{extra})"

    __hash__ = object.__hash__  # comparisons return tensors, so keep identity hashing

    # --- conversions --------------------------------------------------------------------
    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: tensor has {self.data.size} elements (shape {self.shape}), expected 1")
        return self.data.reshape(()).item()

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (copied from the GPU if needed)."""
        return as_numpy(self.data)

    def detach(self) -> "Tensor":
        """A new leaf sharing the same data, cut off from the graph."""
        return Tensor(self.data)

    def to(self, device: str) -> "Tensor":
        """This tensor on ``device`` ("cpu" or "gpu"): itself if already there, else a new leaf."""
        if device == self.device:
            return self
        return Tensor(to_device(self.data, device), requires_grad=self.requires_grad)

    def retain_grad(self) -> None:
        """Keep ``.grad`` of this non-leaf tensor after ``backward`` (leaves always keep it)."""
        self._retains_grad = True

    def register_hook(self, hook: Callable[[Any], Any]) -> RemovableHandle:
        """Call ``hook(grad)`` when dL/d(this tensor) is computed; a returned array replaces it.

        Returns a handle whose ``remove()`` takes the hook off again, as in PyTorch.
        """
        if not self.requires_grad:
            raise ValueError("register_hook: tensor does not require grad")
        handle = RemovableHandle(self._hooks)
        self._hooks[handle.id] = hook
        return handle

    def bump_version(self) -> None:
        """Record that ``.data`` was changed in place (optimizers call this after every step)."""
        self._version += 1

    # --- the backward pass --------------------------------------------------------------
    # --8<-- [start:backward]
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Compute dL/dx for every tensor x with ``requires_grad`` that this tensor depends on.

        Args:
            grad: dL/d(this tensor); may be omitted for a one-element tensor (then it is 1).
            retain_graph: keep the graph so that ``backward`` can run through it again.

        Raises ``ModifiedInPlaceError`` when an input of the graph changed in place since the
        forward pass (``optimizer.step()`` in between).
        """
        grads = _Pending({id(self): _output_grad(self, grad)})  # dL/d(node) for nodes not yet visited
        for node in _visit_and_let_go(topological_order(self)):
            g = grads.pop(node)
            if g is None:
                continue  # no path from the output reached this node
            g = _run_hooks(node, g)
            if node.grad_fn is None or node._retains_grad:
                _store_grad(node, g)
            fn = node.grad_fn
            if fn is None:
                continue  # a leaf: nothing further back
            _check_graph_usable(fn)
            # The chain rule: fn.backward turns dL/d(output) into dL/d(input) for each input.
            for parent, parent_grad in zip(fn.parents, _as_tuple(fn.backward(g))):
                if parent_grad is not None and parent.requires_grad:
                    grads.add(parent, _checked(parent_grad, parent, fn))
            if not retain_graph:
                fn.release()
    # --8<-- [end:backward]

    # Operators (+, -, *, @, indexing, sum, ...) are attached by minideep/ops/tensor_methods.py.


# --- the bookkeeping of backward, one small job each -----------------------------------------

def _output_grad(output: Tensor, grad: Any) -> Any:
    """dL/d(output) as an array: 1 for a one-element output when not given, else checked."""
    if not output.requires_grad:
        raise ValueError("backward: this tensor does not require grad (no input needed a gradient)")
    xp = get_array_module(output.data)
    if grad is None:
        if output.data.size != 1:
            raise ValueError(
                f"backward: output has shape {output.shape}; pass grad= (dL/doutput) for a non-scalar output"
            )
        return xp.ones_like(output.data)
    grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=output.dtype)
    if grad.shape != output.shape:
        raise ValueError(f"backward: grad has shape {grad.shape} but the tensor has shape {output.shape}")
    return grad


class _Pending:
    """The gradients still to be passed back, summed over the uses of each tensor.

    Keyed by ``id`` only during one ``backward`` call, while the graph keeps every node alive.
    The first gradient that reaches a tensor may alias another array (an op may pass its
    ``grad`` through unchanged), so the second is added into a fresh array, which later ones
    may then update in place with ``+=``.
    """

    def __init__(self, grads: dict[int, Any]) -> None:
        self.grads, self.owned = grads, set()

    def pop(self, node: Tensor) -> Any:
        return self.grads.pop(id(node), None)

    def add(self, node: Tensor, grad: Any) -> None:
        key = id(node)
        if key not in self.grads:
            self.grads[key] = grad
        elif key in self.owned:
            self.grads[key] += grad
        else:
            self.grads[key] = self.grads[key] + grad
            self.owned.add(key)


def _visit_and_let_go(order: list[Tensor]) -> Iterator[Tensor]:
    """The nodes in order, dropping the list's reference to each once visited, so its arrays can go."""
    order.reverse()
    while order:
        yield order.pop()


def _run_hooks(node: Tensor, grad: Any) -> Any:
    """Apply the node's hooks in order; a hook that returns an array replaces the gradient."""
    for hook in list(node._hooks.values()):
        replaced = hook(grad)
        grad = grad if replaced is None else replaced
    return grad


def _store_grad(node: Tensor, grad: Any) -> None:
    """Accumulate into ``node.grad``, in the node's own dtype (a float32 leaf keeps a float32 grad)."""
    total = grad if node.grad is None else node.grad + grad
    node.grad = total.astype(node.dtype, copy=total is grad)  # a copy: never alias a graph array


def _check_graph_usable(fn: "Function") -> None:
    """RuntimeError if the graph was freed; ModifiedInPlaceError if an input changed since forward."""
    name = type(fn).__name__
    if fn.parents is None:
        raise RuntimeError(
            f"backward: the graph through {name} was freed by an earlier "
            "backward(); call the first backward with retain_graph=True to go through it twice"
        )
    for i, (parent, version) in enumerate(zip(fn.parents, fn.input_versions)):
        if parent._version != version:
            raise ModifiedInPlaceError(
                f"backward: input {i} of {name} (shape {parent.shape}) was modified in place after the forward "
                f"pass used it (version {version} -> {parent._version}), for example by optimizer.step() "
                "between forward and backward; run the forward pass again after the step"
            )


def _as_tuple(grads: Any) -> tuple:
    return grads if isinstance(grads, tuple) else (grads,)


def _checked(grad: Any, parent: Tensor, fn: "Function") -> Any:
    """``grad`` if it has the input's shape; a RuntimeError naming the op otherwise."""
    if grad.shape != parent.shape:
        raise RuntimeError(
            f"{type(fn).__name__}.backward returned a gradient of shape {grad.shape} for an input of shape {parent.shape}"
        )
    return grad


# --8<-- [start:topological_order]
def topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor that ``root`` depends on (and that needs a gradient), outputs before inputs.

    The order ``root.backward()`` visits them in; chapter 01 replays it step by step.
    An iterative depth-first search: no recursion limit, however deep the network.
    A node is appended after all of its inputs (post-order); reversing that list puts
    each tensor before the tensors it was computed from.

    Example:
        >>> a = md.tensor(2.0, requires_grad=True); y = a * a + a
        >>> [type(t.grad_fn).__name__ if t.grad_fn else "leaf" for t in topological_order(y)]
        ['AddBackward', 'MulBackward', 'leaf']
    """
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        # Mark a node when it is expanded, not when it is pushed: a tensor pushed early (say the
        # input of a residual shortcut) must still be finished below every other path that reaches it.
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        parents = node.grad_fn.parents if node.grad_fn is not None and node.grad_fn.parents else ()
        for parent in parents:
            if parent.requires_grad and id(parent) not in visited:
                stack.append((parent, False))
    order.reverse()
    return order
# --8<-- [end:topological_order]


# ----------------------------------------------------------------------------------------
# Function
# ----------------------------------------------------------------------------------------


class Function:
    """One differentiable operation: ``forward`` on arrays, ``backward`` on gradients.

    Subclass it and apply an instance to tensors::

        class Square(md.Function):
            def forward(self, x):
                self.x = x               # saved for backward, by name
                return x * x
            def backward(self, grad):
                return 2 * self.x * grad  # dL/dx = dL/dy * 2x

        y = Square()(x)

    ``forward`` receives the inputs' arrays (NumPy or CuPy, never Tensors) and returns one
    array; ``backward`` receives dL/d(output) and returns one gradient per input (a tuple
    when there are several; None for an input that needs none). Each instance is used once.
    """

    parents: tuple[Tensor, ...] | None = None

# --8<-- [start:function_call]
    def __call__(self, *inputs: Any) -> Tensor:
        tensors = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in inputs)
        output = self.forward(*(t.data for t in tensors))
        needs_grad = _grad_enabled and any(t.requires_grad for t in tensors)
        result = Tensor(output)
        if needs_grad:
            result.requires_grad = True
            result.grad_fn = self
            self.parents = tensors  # only the inputs: a function never keeps its output alive
            self.needs_input_grad = tuple(t.requires_grad for t in tensors)
            self.input_versions = tuple(t._version for t in tensors)  # checked again in backward
        return result
# --8<-- [end:function_call]

    def forward(self, *arrays: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def release(self) -> None:
        """Drop the inputs and saved arrays once backward is done with them."""
        self.__dict__.clear()
        self.parents = None


# ----------------------------------------------------------------------------------------
# Making tensors
# ----------------------------------------------------------------------------------------


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor, with the dtype that ``torch.tensor`` would give.

    An array keeps its dtype; Python floats (and lists of them) become float32
    (``DEFAULT_DTYPE``); Python ints stay integers (int64) and bools stay bool, unless
    ``dtype`` says otherwise. The data is copied.
    """
    if isinstance(data, Tensor):
        data = data.data
    xp = get_array_module(data)
    if dtype is None and not hasattr(data, "dtype"):
        inferred = xp.asarray(data).dtype
        dtype = DEFAULT_DTYPE if _is_float(inferred) else inferred
    return Tensor(xp.array(data, dtype=dtype), requires_grad=requires_grad)


def as_tensor_like(value: Any, like: Tensor) -> Tensor:
    """``value`` as a tensor on ``like``'s device and, for plain numbers, with its dtype."""
    if isinstance(value, Tensor):
        return value
    xp = get_array_module(like.data)
    is_number = isinstance(value, (int, float, bool)) or getattr(value, "ndim", None) == 0
    # Only a float tensor lends its dtype: casting 1.5 to an integer tensor's dtype would make it 1.
    if is_number and (_is_float(like.dtype) or not _is_float(xp.asarray(value).dtype)):
        return Tensor(xp.asarray(value, dtype=like.dtype))
    return Tensor(xp.asarray(value))


def unwrap(value: Any) -> Any:
    """The array inside a tensor, or the value itself."""
    return value.data if isinstance(value, Tensor) else value


def normalize_axis(axis: int | Sequence[int] | None, ndim: int, op: str) -> tuple[int, ...]:
    """Axes as a tuple of non-negative ints; a clear error for an axis out of range."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis) if isinstance(axis, (tuple, list)) else None
    if axes is None or not all(isinstance(a, (int, np.integer)) for a in axes):  # else a bare "not iterable"
        raise TypeError(f"{op}: axis must be an int, a sequence of ints or None, got {axis!r}")
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
    return tuple(a % ndim for a in axes)

