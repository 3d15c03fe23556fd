"""The whole engine: ``Tensor``, ``Function`` and the reverse-mode backward pass.

A ``Tensor`` wraps an array (``.data``) and remembers the ``Function`` that made it
(``.grad_fn``). A ``Function`` computes its output from raw arrays in ``forward`` and,
given dL/d(output), returns dL/d(input) for each input in ``backward``. Calling
``loss.backward()`` visits every function of the graph once, from the loss back to the
leaves, and applies the chain rule:

    dL/dx = sum over the uses y of x of  (dL/dy) * (dy/dx)

The operators on ``Tensor`` (``+``, ``@``, ``.sum()``, ...) are attached in
``minideep/ops/tensor_methods.py``; the ops themselves live in ``minideep/ops/``.
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


@contextlib.contextmanager
def _grad_mode(enabled: bool) -> Iterator[None]:
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, enabled
    try:
        yield
    finally:
        _grad_enabled = previous


class no_grad(contextlib.ContextDecorator):
    """Turn graph building off inside ``with md.no_grad():`` (or on a decorated function).

    Evaluation and optimizer steps need no gradients; without a graph they use less
    memory and time.
    """

    def __init__(self) -> None:
        # A stack, not one saved state: a decorated recursive function enters the same instance again.
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        global _grad_enabled
        self._previous.append(_grad_enabled)
        _grad_enabled = False

    def __exit__(self, *exc: Any) -> None:
        global _grad_enabled
        _grad_enabled = self._previous.pop()


def enable_grad() -> contextlib.AbstractContextManager:
    """Turn graph building back on inside a ``no_grad`` block."""
    return _grad_mode(True)


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
        self.data = data if isinstance(data, xp.ndarray) else xp.asarray(data)
        if requires_grad and not _is_float(self.data.dtype):
            raise TypeError(
                f"tensor: only floating-point tensors can require gradients, got dtype {self.data.dtype}"
            )
        self.requires_grad = requires_grad
        self.grad: Any = None
        self.grad_fn: Function | None = None
        self.name: str | None = None  # optional label, shown by minideep.viz
        self._retains_grad = False
        self._hooks: list[Callable[[Any], Any]] = []

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

    def register_hook(self, hook: Callable[[Any], Any]) -> None:
        """Call ``hook(grad)`` when dL/d(this tensor) is computed; a returned array replaces it."""
        if not self.requires_grad:
            raise ValueError("register_hook: tensor does not require grad")
        self._hooks.append(hook)

    # --- the backward pass --------------------------------------------------------------
    # --8<-- [start:backward]
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Compute dL/dx for every tensor x with ``requires_grad`` that this tensor depends on.

        Args:
            grad: dL/d(this tensor); may be omitted for a one-element tensor (then it is 1).
            retain_graph: keep the graph so that ``backward`` can run through it again.
        """
        if not self.requires_grad:
            raise ValueError("backward: this tensor does not require grad (no input needed a gradient)")
        xp = get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward: output has shape {self.shape}; pass grad= (dL/doutput) for a non-scalar output"
                )
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad has shape {grad.shape} but the tensor has shape {self.shape}")

        order = _topological_order(self)
        grads: dict[int, Any] = {id(self): grad}  # pending dL/d(node), keyed only during this call
        owned: set[int] = set()  # gradients we allocated ourselves, safe to update in place
        for i, node in enumerate(order):
            order[i] = None  # let the node's arrays go as soon as it is done
            g = grads.pop(id(node), None)
            if g is None:
                continue  # no path from the output reached this node
            for hook in node._hooks:
                replaced = hook(g)
                g = g if replaced is None else replaced
            fn = node.grad_fn
            if fn is None or node._retains_grad:
                node.grad = g.copy() if node.grad is None else node.grad + g
            if fn is None:
                continue
            if fn.parents is None:
                raise RuntimeError(
                    f"backward: the graph through {type(fn).__name__} was freed by an earlier "
                    "backward(); call the first backward with retain_graph=True to go through it twice"
                )
            input_grads = fn.backward(g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for parent, pg in zip(fn.parents, input_grads):
                if pg is None or not parent.requires_grad:
                    continue
                if pg.shape != parent.shape:
                    raise RuntimeError(
                        f"{type(fn).__name__}.backward returned a gradient of shape {pg.shape} "
                        f"for an input of shape {parent.shape}"
                    )
                key = id(parent)
                if key not in grads:
                    grads[key] = pg
                elif key in owned:
                    grads[key] += pg
                else:  # the first gradient may alias another array: add into a fresh one
                    grads[key] = grads[key] + pg
                    owned.add(key)
            if not retain_graph:
                fn.release()
    # --8<-- [end:backward]

    # Operators (+, -, *, @, indexing, sum, ...) are attached by minideep/ops/tensor_methods.py.


# --8<-- [start:topological_order]
def _topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor that ``root`` depends on (and that needs a gradient), outputs before inputs.

    An iterative depth-first search: no recursion limit, however deep the network.
    A node is appended after all of its inputs (post-order); reversing that list puts
    each tensor before the tensors it was computed from.
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


def topological_order(root: Tensor) -> list[Tensor]:
    """The tensors that ``root.backward()`` visits, in the order it visits them (outputs first).

    The same list ``backward`` walks (see ``_topological_order``), for readers and tools that
    want to replay or print the backward pass step by step (chapter 01 does).

    Example:
        >>> a = md.tensor(2.0, requires_grad=True); y = a * a + a
        >>> [type(t.grad_fn).__name__ if t.grad_fn else "leaf" for t in topological_order(y)]
        ['Add', 'Mul', 'leaf']
    """
    return _topological_order(root)


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
    """A new leaf tensor.

    A floating-point array keeps its dtype; Python numbers, lists and integer arrays
    become float32 (``DEFAULT_DTYPE``) unless ``dtype`` says otherwise.
    """
    if isinstance(data, Tensor):
        data = data.data
    xp = get_array_module(data)
    if dtype is None:
        is_float_array = isinstance(data, xp.ndarray) and _is_float(data.dtype)
        dtype = data.dtype if is_float_array else DEFAULT_DTYPE
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

