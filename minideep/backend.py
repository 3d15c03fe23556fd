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


def default_device() -> str:
    """The device named by ``MINIDEEP_DEVICE`` (``cpu`` when unset)."""
    return check_device(os.environ.get("MINIDEEP_DEVICE", "cpu"))


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


_num_threads = min(os.cpu_count() or 1, 8)


def get_num_threads() -> int:
    """How many threads minideep's CPU kernels (the fast convolution) use: min(cores, 8) by default."""
    return _num_threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in minideep's CPU kernels from the next call on."""
    global _num_threads
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    _num_threads = n


def set_blas_threads(n: int) -> bool:
    """Limit the OpenBLAS bundled with NumPy to ``n`` threads; True if it was found.

    OpenBLAS's threads spin-wait for each other between products; when other processes
    share the cores (a laptop, a busy class server, CI) that makes its multithreaded
    products many times slower (measured here: a VGG08 step 0.36 s on one thread, 6-30 s
    on two at load 7). minideep's convolution runs single-threaded products in its own
    Python threads instead, so ``import minideep`` sets one BLAS thread unless
    ``OPENBLAS_NUM_THREADS`` or ``MINIDEEP_BLAS_THREADS`` says otherwise.
    """
    import ctypes  # noqa: PLC0415
    import glob  # noqa: PLC0415

    libs_dir = os.path.join(os.path.dirname(numpy.__file__), "..", "numpy.libs")
    for path in glob.glob(os.path.join(libs_dir, "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads"):
            setter = getattr(lib, symbol, None)
            if setter is not None:
                setter(int(n))
                return True
    return False


if "OPENBLAS_NUM_THREADS" not in os.environ:
    set_blas_threads(int(os.environ.get("MINIDEEP_BLAS_THREADS", "1")))
