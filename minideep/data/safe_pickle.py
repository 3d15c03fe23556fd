"""Unpickling the CIFAR files without trusting them.

``pickle.load`` runs whatever a file tells it to import: a tampered "data batch" could call
``os.system``. The CIFAR python files were written by Python 2's ``cPickle`` and contain
only dicts, lists, strings, ints and NumPy arrays; an array is rebuilt by three NumPy names
(``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``). This
unpickler allows exactly those and refuses every other import with ``UnsafePickleError``.
It is a second line of defence: files are checksum-verified before they get here.
"""
from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

from .errors import DataFormatError, UnsafePickleError

# The function NumPy pickles arrays with; taking it from an array keeps this working across
# NumPy versions that moved it (numpy.core -> numpy._core).
_reconstruct = np.ndarray(0).__reduce__()[0]

# --8<-- [start:allowed]
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that may build NumPy arrays and builtin containers, and nothing else."""

    def __init__(self, file: Any, label: str = "pickle") -> None:
        super().__init__(file, encoding="latin1")  # Python 2 str -> str, as CIFAR's readme says
        self.label = label

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:  # anything else (os.system, subprocess, eval, ...) is refused
            raise UnsafePickleError(
                f"refusing to unpickle {self.label}: it asks to import {module}.{name}, and only "
                f"{', '.join(f'{m}.{n}' for m, n in _ALLOWED)} are allowed. "
                "The file is not an official data file; delete it."
            ) from None

    # --8<-- [end:allowed]

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing to unpickle {self.label}: it uses persistent ids")


def safe_loads(data: bytes, label: str = "pickle") -> Any:
    """Unpickle ``data`` with ``RestrictedUnpickler``; object arrays are refused too.

    Raises:
        UnsafePickleError: the pickle imports anything but the NumPy array builders.
        DataFormatError: the bytes are not a complete pickle.
    """
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), label).load()
    except UnsafePickleError:
        raise
    except Exception as err:  # truncated or garbled: pickle raises many kinds of errors
        raise DataFormatError(f"{label} is not a readable pickle ({type(err).__name__}: {err})") from None
    _refuse_object_arrays(obj, label)
    return obj


def _refuse_object_arrays(obj: Any, label: str) -> None:
    """An object-dtype array could hide arbitrary objects; CIFAR has none.

    The walk visits each container once (a set of the ``id`` of those seen): a pickle can
    reference one list from many places or from itself (``a = [a, a]`` forty times over is
    2**40 paths in 286 bytes, ``a.append(a)`` is a cycle), so walking paths would never end.
    Visiting objects instead of paths makes the check linear in the size of the pickle.
    """
    stack = [obj]
    seen: set[int] = set()  # ids stay valid: every object is alive inside ``obj`` meanwhile
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray) and item.dtype.hasobject:
            raise UnsafePickleError(f"refusing {label}: it contains an object array")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
