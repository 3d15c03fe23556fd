"""Counters and the switch for the CPU stand-in for CuPy (``tests/fake_cupy/cupy``).

The stand-in is a package named ``cupy`` in this folder. ``install()`` puts the folder at the
front of ``sys.path`` (and of ``PYTHONPATH``, for subprocesses such as the chapter scripts)
before minideep imports CuPy, so ``minideep.backend`` finds it exactly as it finds the real
CuPy: nothing in the library knows about it.

The stand-in counts what a GPU would pay for:

- ``launches``: array operations that produce a new device array (a kernel on a GPU; views
  such as ``reshape`` or basic slicing, and ``empty``, launch nothing);
- ``syncs``: device-to-host reads (``.get()``, ``.item()``, ``float()``, ``int()``, ``bool()``,
  ``tolist()``, printing), each of which makes the host wait for the GPU;
- ``uploads``: host-to-device copies (``cupy.asarray`` of a NumPy array).
"""
from __future__ import annotations

import collections
import contextlib
import os
import sys
from typing import Iterator

FOLDER = os.path.dirname(os.path.abspath(__file__))

counts = {"launches": 0, "syncs": 0, "uploads": 0}
#: The launches by operation name (``matmul``, ``add``, ``setitem``, ``fused:adam_step``, ...).
by_name: collections.Counter = collections.Counter()
# How many nested cupy.fuse calls are running: inside one, the operations are a single kernel.
fused_depth = [0]


def install() -> None:
    """Make ``import cupy`` find the stand-in, here and in every subprocess started later."""
    if "cupy" in sys.modules and not getattr(sys.modules["cupy"], "_is_fake", False):
        raise RuntimeError("fakegpu.install(): the real CuPy is already imported")
    if FOLDER not in sys.path:
        sys.path.insert(0, FOLDER)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if FOLDER not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([FOLDER] + [p for p in paths if p])


def reset() -> None:
    for key in counts:
        counts[key] = 0
    by_name.clear()


@contextlib.contextmanager
def counting() -> Iterator[dict[str, int]]:
    """``with counting() as c:`` -> ``c`` holds the launches, syncs and uploads inside the block."""
    before = dict(counts)
    result: dict[str, int] = {}
    try:
        yield result
    finally:
        result.update({k: counts[k] - before[k] for k in counts})
