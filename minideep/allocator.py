"""Keep freed memory in the process for the next training step (glibc's malloc, Linux).

A training step allocates its saved activations during the forward pass and frees them in
the backward pass. By default glibc hands large freed blocks back to the kernel (``munmap``,
or trimming the top of the heap), so the next step's forward pass faults every page in again
and the kernel zeroes each 4 KiB page: tens of thousands of page faults per VGG38 step, for
PyTorch as well (``benchmarks/allocator.py`` measures both; the benchmarks page shows it).
Two ``mallopt`` settings keep the memory with the process instead: ``M_MMAP_THRESHOLD``
(blocks smaller than it come from the heap, which malloc reuses) and ``M_TRIM_THRESHOLD``
(free memory at the top of the heap is kept up to this size). The
step needs the same memory as before; between steps it stays mapped, so the resident size no
longer falls back, and no page faults in again.

The chapter scripts call :func:`keep_freed_memory` when they run as scripts (like the OpenBLAS
pins in :mod:`minideep.blas_env`, a process-wide setting is the script's to make, not an
import's); ``benchmarks/run.py`` times both frameworks under the default allocator.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform
from typing import Any

#: mallopt parameter numbers, from glibc's malloc.h.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Largest block served from the heap, and free heap memory kept: 1 GiB each (an int for mallopt).
KEEP_BYTES = 1 << 30

_applied: dict[str, Any] | None = None


def keep_freed_memory(limit: int = KEEP_BYTES) -> bool:
    """Set glibc's mmap and trim thresholds to ``limit`` bytes; False (and nothing done) without glibc."""
    global _applied
    if platform.libc_ver()[0] != "glibc":
        return False  # macOS, Windows, musl: their allocators have other knobs
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not (libc.mallopt(M_MMAP_THRESHOLD, limit) and libc.mallopt(M_TRIM_THRESHOLD, limit)):
        return False
    _applied = {"mmap_threshold": limit, "trim_threshold": limit}
    return True


def applied() -> dict[str, Any] | None:
    """The thresholds :func:`keep_freed_memory` set in this process (and its forked workers), or None."""
    return dict(_applied) if _applied else None
