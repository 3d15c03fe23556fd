"""A strict CPU stand-in for CuPy, for the test suite only (see ``tests/fake_cupy/fakegpu.py``).

A ``cupy.ndarray`` here wraps a NumPy array, and enforces CuPy's rules so that a NumPy call
on device data fails on the CPU the way it would fail on a GPU:

- no implicit conversion to NumPy: ``numpy.asarray(x)`` raises CuPy's ``TypeError``; the way
  out is ``x.get()`` / ``cupy.asnumpy(x)``;
- a NumPy array mixed into an operation (``x + numpy_array``, ``numpy_array += x``,
  ``cupy.maximum(x, numpy_array)``) raises ``TypeError: Unsupported type <class 'numpy.ndarray'>``;
- reductions return 0-d device arrays, not NumPy scalars;
- integer-array indices wrap around (CuPy does not check them), in indexing, ``take`` and ``ufunc.at``;
- elementwise results are C-ordered;
- only names that CuPy has are here (a missing one is an ``AttributeError``).

Every operation that makes a new device array counts a kernel launch, every device-to-host
read counts a synchronisation (``fakegpu.counts``).
"""
from __future__ import annotations

import builtins
import sys
import types
from typing import Any

import numpy

import fakegpu

_is_fake = True
__version__ = "14.2.0+fakegpu"
_counts = fakegpu.counts


def _launch(name: str = "other") -> None:
    if fakegpu.fused_depth[0] == 0:
        _counts["launches"] += 1
        fakegpu.by_name[name] += 1


def _sync() -> None:
    _counts["syncs"] += 1


# ----------------------------------------------------------------------------------------
# Crossing between the wrapper and NumPy
# ----------------------------------------------------------------------------------------

def _unwrap(x: Any) -> Any:
    """The NumPy array inside a device array; a NumPy array here is CuPy's TypeError."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, numpy.ndarray):
        raise TypeError(f"Unsupported type {type(x)}")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(i) for i in x)
    return x


def _unwrap_key(key: Any) -> Any:
    """An indexing key: CuPy copies NumPy index arrays (and lists) to the device."""
    if isinstance(key, tuple):
        return tuple(_unwrap_key(k) for k in key)
    if isinstance(key, numpy.ndarray) or (isinstance(key, list) and not builtins.any(isinstance(k, ndarray) for k in key)):
        if isinstance(key, numpy.ndarray) or numpy.asarray(key).ndim > 0:
            _counts["uploads"] += 1
        return numpy.asarray(key)
    return _unwrap(key)


def _arrays_in(x: Any, found: list) -> list:
    if isinstance(x, numpy.ndarray):
        found.append(x)
    elif isinstance(x, (list, tuple)):
        for i in x:
            _arrays_in(i, found)
    elif isinstance(x, dict):
        for i in x.values():
            _arrays_in(i, found)
    return found


def _wrap(result: Any, inputs: Any = (), launches: bool = True, name: str = "other") -> Any:
    """Wrap NumPy results as device arrays; a result that is a view of an input launches nothing."""
    if isinstance(result, numpy.ndarray):
        if launches and not builtins.any(numpy.may_share_memory(result, a) for a in _arrays_in(inputs, [])):
            _launch(name)
        return ndarray._of(result)
    if isinstance(result, numpy.generic):  # CuPy's reductions give 0-d arrays, never scalars
        if launches:
            _launch(name)
        return ndarray._of(numpy.asarray(result))
    if isinstance(result, tuple):
        return tuple(_wrap(r, inputs, launches, name) for r in result)
    if isinstance(result, list):
        return [_wrap(r, inputs, launches, name) for r in result]
    return result


def _wrap_index(key: Any, shape: tuple[int, ...]) -> Any:
    """An indexing key with its integer arrays wrapped around each axis (CuPy's semantics).

    A plain Python integer out of range still raises IndexError, as in CuPy.
    """
    items = key if isinstance(key, tuple) else (key,)
    items = tuple(numpy.asarray(i) if isinstance(i, list) else i for i in items)
    consumed = builtins.sum(
        (i.ndim if isinstance(i, numpy.ndarray) and i.dtype == bool else 1)
        for i in items if i is not None and i is not Ellipsis
    )
    out, axis = [], 0
    for item in items:
        if item is None:
            out.append(item)
        elif item is Ellipsis:
            out.append(item)
            axis += len(shape) - consumed
        elif isinstance(item, numpy.ndarray) and item.dtype == bool:
            out.append(item)
            axis += item.ndim
        elif isinstance(item, numpy.ndarray) and item.dtype.kind in "iu" and axis < len(shape):
            out.append(item % shape[axis] if shape[axis] else item)
            axis += 1
        else:
            out.append(item)
            axis += 1
    return tuple(out) if isinstance(key, tuple) or len(out) != 1 else out[0]


# ----------------------------------------------------------------------------------------
# The array
# ----------------------------------------------------------------------------------------

class _Flags:
    def __init__(self, a: numpy.ndarray) -> None:
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.flags.owndata

    def __getitem__(self, name: str) -> bool:
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous, "OWNDATA": self.owndata}[name]


def _binary(name: str, reflected: bool = False) -> Any:
    ufunc = getattr(numpy, name)

    def op(self: ndarray, other: Any) -> Any:
        if getattr(type(other), "__array_ufunc__", 0) is None:  # NEP 13, as CuPy: let other's reflected op run
            return NotImplemented
        if isinstance(other, (list, numpy.ndarray)) and not isinstance(other, ndarray):
            raise TypeError(f"Unsupported type {type(other)}")
        o = _unwrap(other)
        args = (o, self._a) if reflected else (self._a, o)
        return _wrap(ufunc(*args, order="C"), name=name)
    return op


def _inplace(name: str) -> Any:
    ufunc = getattr(numpy, name)

    def op(self: ndarray, other: Any) -> Any:
        if isinstance(other, (list, numpy.ndarray)) and not isinstance(other, ndarray):
            raise TypeError(f"Unsupported type {type(other)}")
        ufunc(self._a, _unwrap(other), out=self._a)
        _launch(name)
        return self
    return op


def _unary(name: str) -> Any:
    ufunc = getattr(numpy, name)
    return lambda self: _wrap(ufunc(self._a, order="C"), name=name)


def _method(name: str) -> Any:
    def method(self: ndarray, *args: Any, **kwargs: Any) -> Any:
        a_args, a_kwargs = _unwrap(args), {k: _unwrap(v) for k, v in kwargs.items()}
        return _wrap(getattr(self._a, name)(*a_args, **a_kwargs), (self._a, a_args), name=name)
    method.__name__ = name
    return method


class ndarray:
    """A device array (a NumPy array that keeps CuPy's rules)."""

    __array_priority__ = 100

    def __init__(self, shape: Any, dtype: Any = float, memptr: Any = None, strides: Any = None, order: str = "C") -> None:
        self._a = numpy.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _of(cls, a: numpy.ndarray) -> "ndarray":
        x = object.__new__(cls)
        x._a = a
        return x

    # --- CuPy refuses to become a NumPy array without .get() ---
    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        fake = _ufuncs.get(ufunc.__name__)
        if fake is None:
            return NotImplemented
        return getattr(fake, method)(*inputs, **kwargs)

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        fake = globals().get(func.__name__) if func.__name__ in __all__ else None
        if fake is None:
            return NotImplemented
        return fake(*args, **kwargs)

    def get(self, stream: Any = None, order: str = "C", out: Any = None) -> numpy.ndarray:
        _sync()
        return self._a.copy(order=order)

    def set(self, arr: numpy.ndarray, stream: Any = None) -> None:
        _counts["uploads"] += 1
        self._a[...] = arr

    def item(self) -> Any:
        _sync()
        return self._a.item()

    def tolist(self) -> Any:
        _sync()
        return self._a.tolist()

    def __float__(self) -> float:
        _sync()
        return float(self._a)

    def __int__(self) -> int:
        _sync()
        return int(self._a)

    def __bool__(self) -> bool:
        _sync()
        return builtins.bool(self._a)

    def __index__(self) -> int:
        _sync()
        return self._a.__index__()

    def __complex__(self) -> complex:
        _sync()
        return complex(self._a)

    def __repr__(self) -> str:
        _sync()
        return repr(self._a)

    def __str__(self) -> str:
        _sync()
        return str(self._a)

    def __format__(self, spec: str) -> str:
        _sync()
        return format(self._a, spec) if self._a.ndim == 0 else format(str(self._a), spec)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    # --- attributes ---
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: _Flags(self._a))
    T = property(lambda self: ndarray._of(self._a.T))
    base = property(lambda self: None if self._a.base is None else ndarray._of(self._a.base))
    device = property(lambda self: cuda.Device(0))
    data = property(lambda self: cuda.MemoryPointer(self))  # CuPy's .data is device memory, not the values

    @shape.setter
    def shape(self, value: Any) -> None:
        self._a.shape = value

    # --- indexing: integer arrays wrap around, as in CuPy ---
    def __getitem__(self, key: Any) -> Any:
        key = _wrap_index(_unwrap_key(key), self._a.shape)
        return _wrap(self._a[key], (self._a,), name="getitem")

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, numpy.ndarray):
            raise TypeError(f"Unsupported type {type(value)}")
        self._a[_wrap_index(_unwrap_key(key), self._a.shape)] = _unwrap(value)
        _launch("setitem")

    def take(self, indices: Any, axis: Any = None, out: Any = None) -> Any:
        return take(self, indices, axis=axis, out=out)

    def astype(self, dtype: Any, order: str = "K", casting: Any = None, subok: Any = None, copy: bool = True) -> Any:
        if not copy and numpy.dtype(dtype) == self._a.dtype:
            return self
        _launch("astype")
        return ndarray._of(self._a.astype(dtype, order="C" if order == "K" else order))

    def copy(self, order: str = "C") -> Any:
        _launch("copy")
        return ndarray._of(self._a.copy(order=order))

    def fill(self, value: Any) -> None:
        _launch("fill")
        self._a.fill(_unwrap(value))

    def __copy__(self) -> Any:
        return self.copy()

    def __deepcopy__(self, memo: Any) -> Any:
        return self.copy()

    def __reduce__(self) -> Any:  # CuPy arrays pickle (through the host)
        return (ndarray._of, (self._a.copy(),))

    __add__, __radd__ = _binary("add"), _binary("add", True)
    __sub__, __rsub__ = _binary("subtract"), _binary("subtract", True)
    __mul__, __rmul__ = _binary("multiply"), _binary("multiply", True)
    __truediv__, __rtruediv__ = _binary("true_divide"), _binary("true_divide", True)
    __floordiv__, __rfloordiv__ = _binary("floor_divide"), _binary("floor_divide", True)
    __mod__, __rmod__ = _binary("remainder"), _binary("remainder", True)
    __pow__, __rpow__ = _binary("power"), _binary("power", True)
    __and__, __rand__ = _binary("bitwise_and"), _binary("bitwise_and", True)
    __or__, __ror__ = _binary("bitwise_or"), _binary("bitwise_or", True)
    __xor__, __rxor__ = _binary("bitwise_xor"), _binary("bitwise_xor", True)
    __lt__, __le__ = _binary("less"), _binary("less_equal")
    __gt__, __ge__ = _binary("greater"), _binary("greater_equal")
    __eq__, __ne__ = _binary("equal"), _binary("not_equal")
    __iadd__, __isub__, __imul__ = _inplace("add"), _inplace("subtract"), _inplace("multiply")
    __itruediv__, __ipow__ = _inplace("true_divide"), _inplace("power")
    __iand__, __ior__ = _inplace("bitwise_and"), _inplace("bitwise_or")
    __neg__, __pos__, __abs__, __invert__ = _unary("negative"), _unary("positive"), _unary("absolute"), _unary("invert")
    __hash__ = None  # type: ignore[assignment]

    def __matmul__(self, other: Any) -> Any:
        if getattr(type(other), "__array_ufunc__", 0) is None:
            return NotImplemented
        return matmul(self, other)

    def __rmatmul__(self, other: Any) -> Any:
        return matmul(other, self)


# The methods CuPy's ndarray has (beyond the ones written out above).
for _name in (
    "all", "any", "argmax", "argmin", "argpartition", "argsort", "clip", "compress", "conj", "conjugate",
    "cumprod", "cumsum", "diagonal", "dot", "flatten", "max", "mean", "min", "nonzero", "partition", "prod",
    "ptp", "put", "ravel", "repeat", "reshape", "round", "sort", "squeeze", "std", "sum",
    "swapaxes", "trace", "transpose", "var", "view", "tobytes",
):
    setattr(ndarray, _name, _method(_name))


# ----------------------------------------------------------------------------------------
# Functions and ufuncs
# ----------------------------------------------------------------------------------------

class ufunc:
    """A CuPy ufunc: NumPy's, with CuPy's argument rules, C-ordered results and wrapping ``at``."""

    def __init__(self, np_ufunc: numpy.ufunc) -> None:
        self._u = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout = np_ufunc.nin, np_ufunc.nout

    def __call__(self, *args: Any, out: Any = None, **kwargs: Any) -> Any:
        a_args = _unwrap(args)
        kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        if out is not None:
            outs = out if isinstance(out, tuple) else (out,)
            if not builtins.all(isinstance(o, ndarray) for o in outs):
                raise TypeError(f"Unsupported type {type(outs[0])}")
            self._u(*a_args, out=tuple(o._a for o in outs), **kwargs)
            _launch(self.__name__)
            return out
        kwargs.setdefault("order", "C")
        return _wrap(self._u(*a_args, **kwargs), name=self.__name__)

    def at(self, a: Any, indices: Any, b: Any = None) -> None:
        if not isinstance(a, ndarray):
            raise TypeError(f"Unsupported type {type(a)}")
        key = _wrap_index(_unwrap(indices), a._a.shape)
        self._u.at(a._a, key, *(() if b is None else (_unwrap(b),)))
        _launch("ufunc.at")

    def reduce(self, a: Any, *args: Any, **kwargs: Any) -> Any:
        return _wrap(self._u.reduce(_unwrap(a), *_unwrap(args), **kwargs))

    def accumulate(self, a: Any, *args: Any, **kwargs: Any) -> Any:
        return _wrap(self._u.accumulate(_unwrap(a), *_unwrap(args), **kwargs))

    def outer(self, a: Any, b: Any, **kwargs: Any) -> Any:
        return _wrap(self._u.outer(_unwrap(a), _unwrap(b), **kwargs))


_UFUNCS = (
    "abs", "absolute", "add", "arccos", "arcsin", "arctan", "arctan2", "bitwise_and", "bitwise_or",
    "bitwise_xor", "ceil", "cos", "cosh", "divide", "equal", "exp", "exp2", "expm1", "fabs", "floor",
    "floor_divide", "fmax", "fmin", "fmod", "greater", "greater_equal", "invert", "isfinite", "isinf",
    "isnan", "less", "less_equal", "log", "log10", "log1p", "log2", "logaddexp", "logical_and",
    "logical_not", "logical_or", "logical_xor", "maximum", "minimum", "multiply", "negative",
    "not_equal", "positive", "power", "reciprocal", "remainder", "mod", "rint", "sign", "sin", "sinh", "sqrt",
    "square", "subtract", "tan", "tanh", "true_divide", "trunc",
)
_ufuncs: dict[str, ufunc] = {}
for _name in _UFUNCS:
    _ufuncs[_name] = globals()[_name] = ufunc(getattr(numpy, _name))
_ufuncs.update({u._u.__name__: u for u in list(_ufuncs.values())})  # numpy's own names (absolute, ...)


def _function(name: str, launches: bool = True) -> Any:
    np_func = getattr(numpy, name)

    def function(*args: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out")
        if out is not None:  # writes into a device array: a kernel, although the result is a "view" of out
            if not isinstance(out, ndarray):
                raise TypeError(f"Unsupported type {type(out)}")
            np_func(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
            _launch(name)
            return out
        a_args, a_kwargs = _unwrap(args), {k: _unwrap(v) for k, v in kwargs.items()}
        return _wrap(np_func(*a_args, **a_kwargs), (a_args, a_kwargs), launches, name)
    function.__name__ = name
    function.__doc__ = f"cupy.{name} (the stand-in: numpy.{name} under CuPy's rules)"
    return function


# Array functions that CuPy 14 has with NumPy's signature.
_FUNCTIONS = (
    "all", "allclose", "amax", "amin", "any", "arange", "argmax", "argmin", "argsort", "argwhere",
    "around", "array_equal", "array_split", "atleast_1d", "atleast_2d", "atleast_3d", "average",
    "bincount", "broadcast_arrays", "broadcast_to", "clip", "column_stack", "concatenate", "count_nonzero",
    "cumprod", "cumsum", "diag", "diagonal", "diff", "dot", "dstack", "einsum", "expand_dims", "eye",
    "flatnonzero", "flip", "full", "full_like", "hstack", "identity", "inner", "isclose", "linspace",
    "matmul", "max", "mean", "median", "meshgrid", "min", "moveaxis", "nanmax", "nanmean", "nanmin",
    "nansum", "nonzero", "ones", "ones_like", "outer", "pad", "percentile", "prod", "ptp", "ravel",
    "repeat", "reshape", "roll", "rollaxis", "round", "searchsorted", "sort", "split", "squeeze", "stack",
    "std", "sum", "swapaxes", "take_along_axis", "tensordot", "tile", "trace", "transpose", "tril", "triu",
    "unique", "var", "vstack", "where", "zeros", "zeros_like",
)
for _name in _FUNCTIONS:
    globals()[_name] = _function(_name)
empty = _function("empty", launches=False)
empty_like = _function("empty_like", launches=False)


def copyto(dst: Any, src: Any, casting: str = "same_kind", where: Any = True) -> None:
    if not isinstance(dst, ndarray):
        raise TypeError(f"Unsupported type {type(dst)}")
    numpy.copyto(dst._a, _unwrap(src), casting=casting, where=_unwrap(where))
    _launch("copyto")


def take(a: Any, indices: Any, axis: Any = None, out: Any = None) -> Any:
    """Out-of-range indices wrap around (CuPy's only mode)."""
    a_, i_ = _unwrap(a), _unwrap(indices)
    if out is not None:
        numpy.take(a_, i_, axis=axis, mode="wrap", out=out._a)
        _launch("take")
        return out
    return _wrap(numpy.take(a_, i_, axis=axis, mode="wrap"), name="take")


def asarray(a: Any, dtype: Any = None, order: Any = None, *, blocking: bool = False) -> ndarray:
    """To the device: a NumPy array is copied up (an upload), a device array passes through."""
    if isinstance(a, ndarray):
        return a if dtype is None or numpy.dtype(dtype) == a.dtype else a.astype(dtype)
    if isinstance(a, (list, tuple)) and builtins.any(isinstance(i, ndarray) for i in a):
        return stack([asarray(i, dtype) for i in a])
    _counts["uploads"] += 1
    return ndarray._of(numpy.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", subok: bool = False, ndmin: int = 0, *, blocking: bool = False) -> ndarray:
    if isinstance(obj, ndarray):
        out = obj.astype(obj.dtype if dtype is None else dtype, order=order) if copy or dtype is not None else obj
    else:
        out = asarray(obj, dtype)
    while out.ndim < ndmin:
        out = out[None]
    return out


def ascontiguousarray(a: Any, dtype: Any = None) -> ndarray:
    if not isinstance(a, ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    if a._a.flags.c_contiguous and (dtype is None or numpy.dtype(dtype) == a.dtype):
        return a
    _launch("ascontiguousarray")
    return ndarray._of(numpy.ascontiguousarray(a._a, dtype=dtype))


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None, *, blocking: bool = True) -> numpy.ndarray:
    if isinstance(a, ndarray):
        return a.get(order=order)
    return numpy.asarray(a, order=order)


def get_array_module(*args: Any) -> types.ModuleType:
    return sys.modules[__name__] if builtins.any(isinstance(a, ndarray) for a in args) else numpy


def fuse(*args: Any, **kwargs: Any) -> Any:
    """``cupy.fuse``: one kernel for a function of elementwise operations (run here as Python, counted once)."""

    def decorate(f: Any) -> Any:
        def fused(*a: Any) -> Any:  # CuPy's Fusion.__call__ takes positional arguments only
            accepted = (ndarray, numpy.generic, int, float, complex, bool, type(None))
            if not builtins.all(isinstance(x, accepted) for x in a):  # a NumPy array among device ones: refused
                raise TypeError(f"Invalid argument type for {f.__name__!r}: ({', '.join(repr(type(x)) for x in a)})")
            fakegpu.fused_depth[0] += 1
            try:
                return f(*a)
            finally:
                fakegpu.fused_depth[0] -= 1
                _launch("fused:" + getattr(f, "__name__", "fused"))
        fused.__name__ = getattr(f, "__name__", "fused")
        return fused

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


def isscalar(x: Any) -> bool:
    return numpy.isscalar(x)


def ndim(a: Any) -> int:
    return a.ndim if isinstance(a, ndarray) else numpy.ndim(a)


def shape(a: Any) -> tuple[int, ...]:
    return a.shape if isinstance(a, ndarray) else numpy.shape(a)


def size(a: Any) -> int:
    return a.size if isinstance(a, ndarray) else numpy.size(a)


# Dtypes, constants and type helpers: CuPy re-exports NumPy's.
for _name in (
    "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "intp", "uintp",
    "float16", "float32", "float64", "complex64", "complex128", "dtype", "generic", "number", "integer",
    "signedinteger", "unsignedinteger", "floating", "complexfloating", "inexact", "byte", "short",
    "intc", "int_", "longlong", "ubyte", "half", "single", "double", "csingle", "cdouble",
    "issubdtype", "result_type", "can_cast", "promote_types", "finfo", "iinfo", "common_type",
    "inf", "nan", "pi", "e", "newaxis", "euler_gamma",
):
    globals()[_name] = getattr(numpy, _name)


# ----------------------------------------------------------------------------------------
# Submodules: cupy.random, cupy.cuda, cupy.lib.stride_tricks
# ----------------------------------------------------------------------------------------

class _Generator:
    """``cupy.random.Generator`` (the methods CuPy's has that minideep and the tests use)."""

    def __init__(self, np_gen: numpy.random.Generator) -> None:
        self._g = np_gen

    def _draw(self, name: str, *args: Any, **kwargs: Any) -> ndarray:
        _launch("random")
        return ndarray._of(numpy.asarray(getattr(self._g, name)(*_unwrap(args), **kwargs)))

    def random(self, size: Any = None, dtype: Any = numpy.float64, out: Any = None) -> ndarray:
        return self._draw("random", size, dtype=dtype)

    def standard_normal(self, size: Any = None, dtype: Any = numpy.float64, out: Any = None) -> ndarray:
        return self._draw("standard_normal", size, dtype=dtype)

    def integers(self, low: Any, high: Any = None, size: Any = None, dtype: Any = numpy.int64, endpoint: bool = False) -> ndarray:
        return self._draw("integers", low, high, size, dtype=dtype, endpoint=endpoint)


class _RandomState:
    """``cupy.random.RandomState`` (legacy), with CuPy's ``dtype`` argument on the normal draws."""

    def __init__(self, seed: Any = None) -> None:
        self._r = numpy.random.RandomState(seed)

    def standard_normal(self, size: Any = None, dtype: Any = float) -> ndarray:
        _launch("random")
        return ndarray._of(numpy.asarray(self._r.standard_normal(size)).astype(dtype))

    def normal(self, loc: float = 0.0, scale: float = 1.0, size: Any = None, dtype: Any = float) -> ndarray:
        _launch("random")
        return ndarray._of(numpy.asarray(self._r.normal(loc, scale, size)).astype(dtype))

    def rand(self, *size: int, dtype: Any = float) -> ndarray:
        _launch("random")
        return ndarray._of(numpy.asarray(self._r.rand(*size)).astype(dtype))

    def randn(self, *size: int, dtype: Any = float) -> ndarray:
        return self.standard_normal(size, dtype)

    def uniform(self, low: float = 0.0, high: float = 1.0, size: Any = None, dtype: Any = float) -> ndarray:
        _launch("random")
        return ndarray._of(numpy.asarray(self._r.uniform(low, high, size)).astype(dtype))


random = types.ModuleType("cupy.random")
random.default_rng = lambda seed=None: _Generator(numpy.random.default_rng(seed))  # type: ignore[attr-defined]
random.Generator = _Generator  # type: ignore[attr-defined]
random.RandomState = _RandomState  # type: ignore[attr-defined]
_global_state = _RandomState()
random.seed = lambda seed=None: _global_state._r.seed(seed)  # type: ignore[attr-defined]
random.standard_normal = _global_state.standard_normal  # type: ignore[attr-defined]
random.rand, random.randn = _global_state.rand, _global_state.randn  # type: ignore[attr-defined]


class _Device:
    def __init__(self, device: int = 0) -> None:
        self.id = device

    def synchronize(self) -> None:
        _sync()

    def __enter__(self) -> "_Device":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class _MemoryPointer:
    """``cupy.cuda.MemoryPointer``: an address on the device (nothing to compute with)."""

    def __init__(self, array: ndarray) -> None:
        self.ptr = array._a.__array_interface__["data"][0]
        self.device_id = 0


cuda = types.ModuleType("cupy.cuda")
cuda.Device = _Device  # type: ignore[attr-defined]
cuda.MemoryPointer = _MemoryPointer  # type: ignore[attr-defined]
cuda.runtime = types.ModuleType("cupy.cuda.runtime")  # type: ignore[attr-defined]
cuda.runtime.getDeviceCount = lambda: 1  # type: ignore[attr-defined]
cuda.runtime.runtimeGetVersion = lambda: 12080  # type: ignore[attr-defined]
cuda.runtime.deviceSynchronize = _sync  # type: ignore[attr-defined]

lib = types.ModuleType("cupy.lib")
lib.stride_tricks = types.ModuleType("cupy.lib.stride_tricks")  # type: ignore[attr-defined]


def _as_strided(x: Any, shape: Any = None, strides: Any = None) -> ndarray:
    if not isinstance(x, ndarray):
        raise TypeError(f"Unsupported type {type(x)}")
    return ndarray._of(numpy.lib.stride_tricks.as_strided(x._a, shape, strides))


lib.stride_tricks.as_strided = _as_strided  # type: ignore[attr-defined]

for _module in (random, cuda, cuda.runtime, lib, lib.stride_tricks):  # type: ignore[attr-defined]
    sys.modules[_module.__name__] = _module

__all__ = sorted(
    set(_UFUNCS) | set(_FUNCTIONS)
    | {"empty", "empty_like", "copyto", "take", "asarray", "array", "ascontiguousarray", "isscalar", "ndim", "shape", "size"}
)
