"""Rows shared among Python threads, each running single-threaded BLAS products on its share.

OpenBLAS's own threads spin-wait for each other, which is very slow (10x and worse) when
other processes share the cores; ``minideep.backend`` gives it one thread, and the fast
convolution uses ``backend.get_num_threads()`` Python threads instead (NumPy releases the
GIL inside ``matmul``). The count is read at every call, so ``set_num_threads`` takes effect
at once; the pool is rebuilt when the count changes or in a forked child (whose copy of the
parent's pool has no threads).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ... import backend

_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] | None = None  # (process id, threads) the pool was made for


def _get_pool(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_key
    key = (os.getpid(), threads)
    if _pool is None or _pool_key != key:
        if _pool is not None and _pool_key[0] == key[0]:
            _pool.shutdown(wait=False)  # same process, other count: let its idle threads go
        _pool, _pool_key = ThreadPoolExecutor(threads, thread_name_prefix="minideep-conv"), key
    return _pool


def in_parallel(task: Callable[[int, int], Any], total: int) -> list[Any]:
    """[task(start, stop)] over contiguous shares of range(total), one per thread; [] when total is 0."""
    threads = backend.get_num_threads()
    bounds = [total * k // threads for k in range(threads + 1)]
    shares = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    if len(shares) < 2:
        return [task(a, b) for a, b in shares]
    pool = _get_pool(threads)
    return [f.result() for f in [pool.submit(task, a, b) for a, b in shares]]
