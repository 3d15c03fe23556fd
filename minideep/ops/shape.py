"""Shape ops: reshape, transpose, indexing, concatenation, stacking and padding.

These move values around without changing them, so each backward moves the gradient
back to where the value came from.
"""
from __future__ import annotations

from itertools import accumulate
from typing import Any, Sequence

import numpy as np

from ..autograd import Function, Tensor, normalize_axis, unwrap
from ..backend import as_numpy, get_array_module


class ReshapeBackward(Function):
    """y = x viewed with a new shape.   dL/dx = dL/dy reshaped back."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {self.shape}") from None

    def backward(self, grad):
        return grad.reshape(self.in_shape)


class TransposeBackward(Function):
    """y = x with its axes permuted.   dL/dx = dL/dy with the inverse permutation."""

    def __init__(self, axes: tuple[int, ...] | None) -> None:
        self.axes = axes

    def forward(self, x):
        axes = tuple(reversed(range(x.ndim))) if self.axes is None else self.axes
        # Range-check before wrapping negatives: a % ndim alone would turn axis 3 of a 2-D tensor into 1.
        if sorted(normalize_axis(axes, x.ndim, "transpose")) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of a {x.ndim}-dimensional tensor's axes")
        self.axes = tuple(a % x.ndim for a in axes)
        return x.transpose(self.axes)

    def backward(self, grad):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return grad.transpose(inverse)


class IndexBackward(Function):
    """y = x[key].   dL/dx = zeros with dL/dy added at the indexed positions (repeats add up)."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def forward(self, x):
        self.in_shape = x.shape
        try:
            _check_index_arrays(self.key, x.shape)
            return x[self.key]
        except IndexError as e:
            raise ValueError(f"getitem: index {self.key!r} does not fit a tensor of shape {x.shape}: {e}") from None

    def backward(self, grad):
        xp = get_array_module(grad)
        gx = xp.zeros(self.in_shape, dtype=grad.dtype)
        parts = self.key if isinstance(self.key, tuple) else (self.key,)
        if any(hasattr(k, "ndim") or isinstance(k, list) for k in parts):
            xp.add.at(gx, self.key, grad)  # an integer-array key may name an element twice: add, not assign
        else:
            gx[self.key] = grad  # ints and slices name each element at most once
        return gx


def _check_index_arrays(key: Any, shape: tuple[int, ...]) -> None:
    """Raise IndexError for an integer-array index outside [-n, n): NumPy does, CuPy wraps it around silently."""
    parts = key if isinstance(key, tuple) else (key,)
    parts = tuple(k if hasattr(k, "dtype") or not isinstance(k, list) else as_numpy(k) for k in parts)
    is_mask = [getattr(k, "dtype", None) == bool for k in parts]
    used = sum(k.ndim if mask else 1 for k, mask in zip(parts, is_mask) if k is not None and k is not Ellipsis)
    axis = 0
    for k, mask in zip(parts, is_mask):
        if k is Ellipsis:
            axis += len(shape) - used
        elif mask:
            axis += k.ndim
        elif k is not None:
            if getattr(k, "dtype", None) is not None and k.dtype.kind in "iu" and k.size and axis < len(shape):
                lo, hi = as_numpy(get_array_module(k).stack([k.min(), k.max()])).tolist()  # one transfer
                if lo < -shape[axis] or hi >= shape[axis]:
                    bad = lo if lo < -shape[axis] else hi
                    raise IndexError(f"index {bad} is out of bounds for axis {axis} with size {shape[axis]}")
            axis += 1


class CatBackward(Function):
    """y = [x_1, x_2, ...] joined along ``axis``.   dL/dx_k = the slice of dL/dy that x_k filled."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, *xs):
        ndim = xs[0].ndim
        (self.axis,) = normalize_axis(self.axis, ndim, "cat")
        for i, x in enumerate(xs):
            other = [n for a, n in enumerate(x.shape) if a != self.axis]
            first = [n for a, n in enumerate(xs[0].shape) if a != self.axis]
            if x.ndim != ndim or other != first:
                raise ValueError(
                    f"cat: tensor {i} has shape {x.shape} but tensor 0 has shape {xs[0].shape}; "
                    f"they must agree on every axis except axis {self.axis}"
                )
        self.sizes = [x.shape[self.axis] for x in xs]
        return get_array_module(*xs).concatenate(xs, axis=self.axis)

    def backward(self, grad):
        xp = get_array_module(grad)
        cuts = list(accumulate(self.sizes[:-1]))  # the split points, on the host: no round trip to a GPU
        return tuple(xp.split(grad, cuts, axis=self.axis))


class StackBackward(Function):
    """y = x_1, x_2, ... stacked along a new ``axis``.   dL/dx_k = dL/dy indexed at k on that axis."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, *xs):
        for i, x in enumerate(xs):
            if x.shape != xs[0].shape:
                raise ValueError(f"stack: tensor {i} has shape {x.shape} but tensor 0 has shape {xs[0].shape}")
        (self.axis,) = normalize_axis(self.axis, xs[0].ndim + 1, "stack")
        return get_array_module(*xs).stack(xs, axis=self.axis)

    def backward(self, grad):
        xp = get_array_module(grad)
        return tuple(xp.take(grad, k, axis=self.axis) for k in range(grad.shape[self.axis]))


class PadBackward(Function):
    """y = x with constant padding (NumPy's ``pad_width``).   dL/dx = dL/dy with the padding cut off."""

    def __init__(self, pad_width: Sequence[tuple[int, int]], value: float) -> None:
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        if len(self.pad_width) != x.ndim:
            raise ValueError(f"pad: pad_width has {len(self.pad_width)} pairs but the tensor has {x.ndim} dimensions (shape {x.shape})")
        return get_array_module(x).pad(x, self.pad_width, mode="constant", constant_values=self.value)

    def backward(self, grad):
        return grad[tuple(slice(lo, grad.shape[a] - hi) for a, (lo, hi) in enumerate(self.pad_width))]


def reshape(x: Tensor, *shape: int) -> Tensor:
    """``x`` with a new shape (one entry may be -1)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return ReshapeBackward(tuple(shape))(x)


def transpose(x: Tensor, *axes: int) -> Tensor:
    """Permute the axes (reverse them when none are given)."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return TransposeBackward(tuple(axes) if axes else None)(x)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge the axes ``start_dim..end_dim`` into one; by default all of them, as ``torch.flatten``.

    ``x.flatten(1)`` keeps the batch axis: (N, C, H, W) -> (N, C*H*W).
    """
    if x.ndim == 0:
        return ReshapeBackward((1,))(x)
    (start,) = normalize_axis(start_dim, x.ndim, "flatten")
    (end,) = normalize_axis(end_dim, x.ndim, "flatten")
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for a tensor of shape {x.shape}")
    merged = int(np.prod(x.shape[start : end + 1]))  # not -1: an empty tensor would make it ambiguous
    return ReshapeBackward(x.shape[:start] + (merged,) + x.shape[end + 1 :])(x)


def getitem(x: Tensor, key: Any) -> Tensor:
    """``x[key]`` for ints, slices, steps, None, Ellipsis and integer or boolean arrays."""
    if isinstance(key, tuple):
        key = tuple(unwrap(k) for k in key)
    else:
        key = unwrap(key)
    return IndexBackward(key)(x)


def cat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing ``axis``."""
    if len(tensors) == 0:
        raise ValueError("cat: expected a non-empty list of tensors")
    return CatBackward(axis)(*tensors)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Stack same-shaped tensors along a new ``axis``."""
    if len(tensors) == 0:
        raise ValueError("stack: expected a non-empty list of tensors")
    return StackBackward(axis)(*tensors)


def pad(x: Tensor, pad_width: Any, value: float = 0.0) -> Tensor:
    """Constant padding with NumPy's ``pad_width``: an int, a (before, after) pair, or one pair per axis."""
    if isinstance(pad_width, int):
        pad_width = [(pad_width, pad_width)] * x.ndim
    elif len(pad_width) == 2 and all(isinstance(p, int) for p in pad_width):
        pad_width = [tuple(pad_width)] * x.ndim
    pad_width = [tuple(int(v) for v in p) for p in pad_width]
    if any(v < 0 for p in pad_width for v in p):  # NumPy's own message names neither pad nor the widths
        raise ValueError(f"pad: pad_width must hold non-negative ints, got {pad_width}")
    return PadBackward(pad_width, value)(x)
