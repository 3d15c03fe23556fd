"""Timing minideep and PyTorch side by side: interleaved, after a warm-up, medians.

Both frameworks run in the same process, one timed block each in turn (the order swaps every
round, so neither always runs first). Before each block the harness sleeps briefly: after a
job, OpenBLAS's worker threads (NumPy) and OpenMP's (PyTorch) keep spinning on the cores for
up to ~0.1 s, and on a 2-core machine the other framework's spinning threads would otherwise
steal half the machine from the block being timed.
"""
from __future__ import annotations

import ctypes
import glob
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from minideep.experiment import cpu_model, cpu_vector_units


@dataclass
class Result:
    """One benchmark item: per-call median seconds for each framework and their ratio."""

    name: str
    group: str
    minideep_s: float | None
    torch_s: float | None
    target: float | None = None  # the upper bound on minideep / torch, if any
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.minideep_s is None or self.torch_s is None or self.torch_s == 0:
            return None
        return self.minideep_s / self.torch_s

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        d["target_met"] = None if self.target is None or self.ratio is None else self.ratio <= self.target
        return d


def other_runnable() -> int:
    """Processes and threads of *other* programs running on the CPUs right now.

    The kernel's ``procs_running`` (``/proc/stat``) counts every runnable thread, this one
    included; the harness samples it while its own work is paused, so it sees the load that
    competes with a timed block. The load average cannot say this: it also counts the
    benchmark itself, and it lags by a minute. Returns -1 where ``/proc/stat`` is missing.
    """
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("procs_running"):
                    return max(0, int(line.split()[1]) - 1)  # minus the thread reading the file
    except OSError:
        pass
    return -1


@dataclass
class Quiet:
    """Whether a case was timed on a machine quiet enough for its threads, and the evidence.

    A case with ``threads`` threads per framework on ``cores`` cores leaves ``cores - threads``
    cores free; it is valid when, sampled between its timed blocks, other programs kept on
    average no more runnable threads than that (a quarter of a core of slack for the samplers
    and the kernel's own housekeeping).
    """

    threads: int
    cores: int
    samples: list[int]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    @property
    def free_cores(self) -> int:
        return max(0, self.cores - self.threads)

    @property
    def other_mean(self) -> float | None:
        known = [s for s in self.samples if s >= 0]
        return statistics.fmean(known) if known else None

    @property
    def valid(self) -> bool:
        return self.other_mean is not None and self.other_mean <= self.free_cores + 0.25

    def as_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "cores": self.cores, "free_cores": self.free_cores,
                "other_runnable_mean": self.other_mean, "other_runnable_max": max(self.samples, default=None),
                "load_before": self.load_before, "load_after": self.load_after, "valid": self.valid}

    def describe(self) -> str:
        mean = "unknown" if self.other_mean is None else f"{self.other_mean:.1f}"
        state = "quiet" if self.valid else "UNDER LOAD"
        return (f"{state}: other runnable {mean} (free cores {self.free_cores}), "
                f"load {self.load_before[0]:.1f} -> {self.load_after[0]:.1f}")


def _block(fn: Callable[[], Any], sync: Callable[[], None], calls: int) -> float:
    """Mean seconds per call over ``calls`` back-to-back calls."""
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - start) / calls


def compare(
    fns: dict[str, Callable[[], Any]],
    *,
    rounds: int = 7,
    warmup: int = 2,
    min_block_s: float = 0.05,
    pause_s: float = 0.2,
    syncs: dict[str, Callable[[], None]] | None = None,
    samples: list[int] | None = None,
) -> dict[str, float]:
    """Median per-call seconds of each function in ``fns``, timed in interleaved blocks.

    A block repeats the call until it lasts about ``min_block_s`` (so that millisecond ops
    are not timed one call at a time); ``rounds`` blocks per function give the median.
    At the end of each pause before a block, :func:`other_runnable` is appended to ``samples``
    (when given): the competing load each block started under.
    """
    syncs = syncs or {}
    nosync = lambda: None  # noqa: E731
    calls: dict[str, int] = {}
    for name, fn in fns.items():  # warm-up, and a first estimate of a call's duration
        sync = syncs.get(name, nosync)
        for _ in range(warmup):
            once = _block(fn, sync, 1)
        calls[name] = max(1, min(50, int(min_block_s / max(once, 1e-6))))
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            time.sleep(pause_s)
            if samples is not None:
                samples.append(other_runnable())
            times[name].append(_block(fns[name], syncs.get(name, nosync), calls[name]))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    medians.update({f"{name}_min": min(ts) for name, ts in times.items()})
    return medians


def openblas_corename() -> str | None:
    """The CPU kernel NumPy's bundled OpenBLAS chose (e.g. 'Haswell', 'SkylakeX', 'Zen')."""
    import numpy  # noqa: PLC0415

    libs = glob.glob(os.path.join(os.path.dirname(numpy.__file__), "..", "numpy.libs", "*openblas*"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return None


def machine_info(device: str) -> dict[str, Any]:
    """What the numbers were taken on: CPU, cores, library versions, BLAS kernel, GPU."""
    import numpy  # noqa: PLC0415

    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "cpu": cpu_model(),
        "cpu_vector_units": cpu_vector_units(),
        "cores": os.cpu_count(),
        "device": device,
        "openblas_kernel": openblas_corename(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
        "load_average_at_start": os.getloadavg(),
    }
    try:
        import torch  # noqa: PLC0415

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_cpu_capability"] = getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)()  # the vector code PyTorch's kernels run
        if device == "gpu" and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        info["torch"] = None
    try:
        import cupy  # noqa: PLC0415

        info["cupy"] = cupy.__version__
    except ImportError:
        pass
    return info
