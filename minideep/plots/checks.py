"""Input checks and small array helpers of the figures: plain data in, a clear error naming the figure."""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np


# --------------------------------------------------------------------------- input checks


def _reject_tensor(fn: str, name: str, value: Any) -> None:
    if hasattr(value, "requires_grad") or hasattr(value, "parameters"):
        raise TypeError(
            f"{fn}: {name} must be plain numbers or NumPy arrays, got {type(value).__name__}; "
            "use tensor.numpy() or the diagnostics' dict output"
        )


def _array(fn: str, name: str, values: Any, ndim: int | tuple[int, ...]) -> np.ndarray:
    """``values`` as a non-empty float array with the given number of axes."""
    _reject_tensor(fn, name, values)
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{fn}: {name} must be numbers, got {type(values).__name__}: {exc}") from None
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        raise ValueError(f"{fn}: {name} must have {' or '.join(map(str, ndims))} axes, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{fn}: {name} is empty (shape {arr.shape}); nothing to plot")
    return arr


def _nonempty(fn: str, name: str, value: Any) -> None:
    if value is None or len(value) == 0:
        raise ValueError(f"{fn}: {name} is empty; nothing to plot")


def _positive(values: np.ndarray) -> tuple[np.ndarray, int]:
    """A copy with zero, negative and non-finite values set to NaN (skipped by matplotlib), and their count."""
    values = np.array(values, dtype=float)
    bad = ~(np.isfinite(values) & (values > 0))
    values[bad] = np.nan
    return values, int(bad.sum())


def _check_unit_interval(fn: str, name: str, values: np.ndarray, what: str) -> None:
    """Refuse finite values outside [0, 1] (NaN is allowed: a missing epoch or seed)."""
    finite = values[np.isfinite(values)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError(f"{fn}: {name} {what}, got values in [{finite.min():g}, {finite.max():g}]")


def _to_percent(fn: str, name: str, values: np.ndarray) -> np.ndarray:
    """Fractions in [0, 1] (NaN allowed) as percentages; anything else is an error."""
    _check_unit_interval(fn, name, values, "must be fractions in [0, 1] (accuracy as in results.json)")
    return values * 100.0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _run_values(fn: str, name: str, run: Any, key: str | None) -> np.ndarray:
    """One run as a 1-D array: a list of numbers, or a list of per-epoch dicts read at ``key``."""
    _reject_tensor(fn, name, run)
    if isinstance(run, Mapping):
        raise TypeError(f"{fn}: {name} must be a list of per-epoch values or records, got a dict")
    run = list(run)
    _nonempty(fn, name, run)
    if isinstance(run[0], Mapping):
        if key is None:
            raise ValueError(f"{fn}: {name} holds per-epoch dicts but no metric key was given")
        if not any(key in record for record in run):
            raise ValueError(f"{fn}: {name} has no {key!r}; its records have keys {sorted(run[0])}")
        return np.array([float(record.get(key, np.nan)) for record in run])
    return _array(fn, name, run, 1)


def _runs_matrix(fn: str, name: str, runs: Any, key: str | None = None) -> np.ndarray:
    """One run or a list of runs (one per seed) as an ``(n_runs, n_epochs)`` array, NaN-padded.

    A run is a list of numbers (one per epoch) or of per-epoch dicts; runs may differ in
    length (an unfinished seed), the shorter ones are padded with NaN.
    """
    _reject_tensor(fn, name, runs)
    if isinstance(runs, Mapping):
        raise TypeError(f"{fn}: {name} must be a run or a list of runs, got a dict with keys {sorted(runs)[:5]}")
    if isinstance(runs, np.ndarray):
        runs = runs.tolist()
    runs = list(runs)
    _nonempty(fn, name, runs)
    if isinstance(runs[0], Mapping) or _is_number(runs[0]):
        runs = [runs]
    rows = [_run_values(fn, f"{name}[{i}]", run, key) for i, run in enumerate(runs)]
    matrix = np.full((len(rows), max(len(row) for row in rows)), np.nan)
    for i, row in enumerate(rows):
        matrix[i, : len(row)] = row
    return matrix


def _epochs(runs: Any, n: int) -> np.ndarray:
    """x values of a curve: the records' ``epoch`` field when the longest run has one, else 1..n."""
    if isinstance(runs, (list, tuple)) and runs:
        candidates = runs if not isinstance(runs[0], (list, tuple)) else max(runs, key=len)
        if len(candidates) == n and all(isinstance(r, Mapping) and "epoch" in r for r in candidates):
            return np.array([float(r["epoch"]) for r in candidates])
    return np.arange(1, n + 1, dtype=float)


def _draw_band(ax: Any, x: np.ndarray, matrix: np.ndarray, band: str | None, label: str | None, **style: Any):
    """Mean line over runs with a min-max or +-1 std band; one run is drawn as a plain line."""
    with _quiet_nan_warnings():
        mean = np.nanmean(matrix, axis=0)
        if band == "minmax":
            low, high = np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0)
        elif band == "std":
            std = np.nanstd(matrix, axis=0)
            low, high = mean - std, mean + std
    (line,) = ax.plot(x, mean, label=label, lw=1.6, **style)
    if band and matrix.shape[0] > 1:
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0)
    return line


@contextlib.contextmanager
def _quiet_nan_warnings():
    """nanmean of an all-NaN column (every seed stopped earlier) is NaN, which is what we want."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _check_band(fn: str, band: str | None) -> None:
    if band not in ("minmax", "std", None):
        raise ValueError(f"{fn}: band must be 'minmax', 'std' or None, got {band!r}")
