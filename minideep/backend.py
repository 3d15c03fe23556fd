"""Which array module holds the data: NumPy on the CPU, CuPy on an NVIDIA GPU.

This is the only file in minideep that imports CuPy. Every op asks
``get_array_module(x)`` for the module that owns its input (like
``cupy.get_array_module``), so the same code runs on either device and arrays
never leave their device by accident.
"""
from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import numpy
import threadpoolctl

#: The float dtype new tensors get when the data does not say (as in PyTorch).
DEFAULT_DTYPE = numpy.float32

_cupy: ModuleType | None = None
_cupy_checked = False


def _load_cupy() -> ModuleType | None:
    """Import CuPy once, and only if a GPU is usable; otherwise return None."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy  # noqa: PLC0415 - optional dependency, imported on first need

            if cupy.cuda.runtime.getDeviceCount() > 0:
                _cupy = cupy
        except Exception:  # no CuPy, no driver or no device: the CPU is all there is
            _cupy = None
    return _cupy


def gpu_available() -> bool:
    """True when CuPy is installed and sees at least one CUDA device."""
    return _load_cupy() is not None


def get_array_module(*arrays: Any) -> ModuleType:
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if not _cupy_checked and any(type(a).__module__.startswith("cupy") for a in arrays):
        _load_cupy()
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return numpy


def device_of(array: Any) -> str:
    """``"gpu"`` for a CuPy array, ``"cpu"`` for anything else."""
    return "gpu" if get_array_module(array) is not numpy else "cpu"


def check_device(device: str) -> str:
    """Validate a device name, and make sure a GPU is there when one is asked for."""
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
    if device == "gpu" and not gpu_available():
        raise ValueError(
            "device 'gpu' was asked for but CuPy with a CUDA device is not available; "
            "install it with `pip install -e \".[gpu]\"` or use device='cpu'"
        )
    return device


def to_device(array: Any, device: str) -> Any:
    """Return ``array`` on ``device`` (``"cpu"`` or ``"gpu"``), copying only if it must move."""
    check_device(device)
    if device == "gpu":
        return _load_cupy().asarray(array)
    return as_numpy(array)


def as_numpy(array: Any) -> numpy.ndarray:
    """A NumPy array with the same values (copied from the GPU when needed)."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return array.get()
    return numpy.asarray(array)


# One random generator per device, so dropout and the data pipeline are reproducible under a seed.
_generators: dict[str, Any] = {}


def manual_seed(seed: int) -> None:
    """Seed minideep's random generators (NumPy's and, when present, CuPy's)."""
    _generators["cpu"] = numpy.random.default_rng(seed)
    if gpu_available():
        _generators["gpu"] = _cupy.random.default_rng(seed)


def get_generator(xp: ModuleType = numpy) -> Any:
    """The seeded random generator of the array module ``xp`` (created unseeded on first use)."""
    device = "gpu" if xp is not numpy else "cpu"
    if device not in _generators:
        _generators[device] = xp.random.default_rng()
    return _generators[device]


# ----------------------------------------------------------------------------------------
# Threads: set explicitly, never at import
# ----------------------------------------------------------------------------------------

#: Convolution workers when nobody has called :func:`set_num_threads`: one per core, at most 8
#: (more gain nothing on the small products a convolution block makes).
DEFAULT_NUM_THREADS = min(os.cpu_count() or 1, 8)
_num_threads: int | None = None


def set_num_threads(n: int) -> None:
    """Run minideep's CPU work on ``n`` threads, as PyTorch's ``torch.set_num_threads`` does.

    Two thread pools are set together:

    * minideep's convolution workers: ``n`` Python threads, each taking a contiguous share
      of the output rows (NumPy releases the GIL inside ``matmul``);
    * the BLAS library behind NumPy (OpenBLAS, MKL, ...), through ``threadpoolctl``: one
      thread, because each worker's products run on their own thread already. BLAS threads
      on top of the workers would outnumber the cores, and OpenBLAS's threads spin-wait for
      each other, which is many times slower when other processes share the cores (measured:
      a VGG08 step 0.36 s on one BLAS thread, 6-30 s on two at load 7).

    Importing minideep sets neither: until this is called, the BLAS library keeps whatever
    the process (or ``OPENBLAS_NUM_THREADS``) gave it, and the convolution uses
    :data:`DEFAULT_NUM_THREADS` workers. The chapter runner and the sweep workers call this.

    Args:
        n: threads, at least 1 (e.g. the number of cores this process may use).
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)) or n < 1:
        raise ValueError(f"set_num_threads: n must be an int >= 1, got {n!r}")
    threadpoolctl.threadpool_limits(limits=1, user_api="blas")  # stays in force: the object is not used as a context
    _num_threads = int(n)


def get_num_threads() -> int:
    """minideep's convolution workers: the last :func:`set_num_threads`, else :data:`DEFAULT_NUM_THREADS`."""
    return DEFAULT_NUM_THREADS if _num_threads is None else _num_threads
