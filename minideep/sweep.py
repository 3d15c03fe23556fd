"""Sweeps: many independent training runs, configurations x seeds, on one machine or a Ray cluster.

A sweep is a list of named configurations (often a grid of hyperparameters) crossed with
seeds. Every (configuration, seed) is one job: a call ``fn(run)`` that trains one model and
returns a dict of results. Each job writes its own results file, atomically, as soon as it
ends, so nothing is lost when the sweep is interrupted and finished runs are skipped when it
starts again. A run that raises is recorded with its error and traceback, and the others go
on. At the end, :func:`summarize` aggregates every configuration's seeds into mean, standard
deviation, minimum and maximum, the way the MLP coursework reports its Tables 1-6.

This module holds the grids and the summary; the jobs themselves run in
:mod:`minideep.jobs` (its public names are importable from here too).

Where the jobs run (``backend``):

- ``"local"``: one after the other in this process (``workers=1``, the default), or in a
  pool of ``workers`` processes (:class:`concurrent.futures.ProcessPoolExecutor`).
- ``"ray"``: as Ray tasks (``ray.remote``), on a local Ray instance or on a cluster
  (``address="HOST:PORT"``), each asking Ray for ``cpus_per_run`` CPUs and, for GPU runs,
  ``gpus_per_run`` GPUs. Ray's scheduler places them; this module only submits the tasks and
  collects the results (``ray.wait``). Install Ray with ``pip install "minideep[sweep]"``.

Files under ``out``: ``<name>/seed<seed>.json`` per run (the configuration, the seed, the
status ``"ok"`` or ``"failed"``, the job's result or its error, the wall time and the host),
and ``<name>/seed<seed>/`` for whatever else the job keeps (checkpoints).

Example::

    def train_one(run: Run) -> dict:                       # a module-level function
        ...                                                  # train with run.config, run.seed
        return {"val_accuracy": 0.61, "test_accuracy": 0.60}

    configs = {config_name(c): c for c in grid(lr=[1e-2, 1e-3], weight_decay=[0, 5e-4])}
    result = run_sweep(train_one, configs, seeds=[0, 1, 2], out="runs/sweep")
    print(format_summary(summarize(result.records, ["val_accuracy", "test_accuracy"])))
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .jobs import (  # noqa: F401 - the sweep's public face: jobs are where the runs go
    BACKENDS, Run, SweepResult, add_arguments, config_name, execute, make_runs, options_from_args, per_process,
    run_sweep,
)
from .jobs import _short
from .results import format_table, read_results

__all__ = [
    "BACKENDS", "Run", "SweepResult", "add_arguments", "config_name", "execute", "format_summary", "grid",
    "load_records", "make_runs", "mean_std", "min_max", "options_from_args", "per_process", "run_sweep", "summarize",
]


# ----------------------------------------------------------------------------------------
# Configurations
# ----------------------------------------------------------------------------------------


def grid(**axes: Sequence[Any]) -> list[dict[str, Any]]:
    """Every combination of the given values, the last axis varying fastest.

    Example:
        >>> grid(lr=[1e-2, 1e-3], batch_size=[50, 100])
        [{'lr': 0.01, 'batch_size': 50}, {'lr': 0.01, 'batch_size': 100}, {'lr': 0.001, 'batch_size': 50}, {'lr': 0.001, 'batch_size': 100}]
    """
    for key, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise TypeError(f"grid: axis {key!r} must be a list of values, got {values!r}")
    keys = list(axes)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(list(axes[k]) for k in keys))]


# ----------------------------------------------------------------------------------------
# Reading a sweep and the summary table
# ----------------------------------------------------------------------------------------


def load_records(out: str | Path) -> dict[str, dict[str, Any]]:
    """Every results file under ``out`` as ``{"<name>/seed<seed>": record}`` (sorted by name, then seed)."""
    out = Path(out)
    records = {}
    for path in sorted(out.glob("*/seed*.json"), key=lambda p: (p.parent.name, int(p.stem[4:]) if p.stem[4:].isdigit() else 0)):
        record = read_results(path)
        records[f"{record['name']}/seed{record['seed']}"] = record
    return records


def _metric(result: Mapping[str, Any], metric: str) -> float | None:
    value = result.get(metric)
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return float(value)
    return None


def summarize(records: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]], metrics: Sequence[str],
              ddof: int = 1) -> list[dict[str, Any]]:
    """Per configuration, over its seeds: mean, standard deviation, minimum and maximum of each metric.

    $$\\bar{x} = \\frac{1}{n}\\sum_{s=1}^{n} x_s, \\qquad
      \\sigma = \\sqrt{\\frac{1}{n - \\mathrm{ddof}}\\sum_{s=1}^{n} (x_s - \\bar{x})^2}$$

    over the n seeds that finished; failed runs are counted, not averaged.

    Args:
        records: the sweep's records (``SweepResult.records`` or :func:`load_records`).
        metrics: keys of the jobs' results, e.g. ``["val_accuracy", "test_accuracy"]``.
        ddof: 1 (default) for the sample standard deviation; 0 for the population one.
            With a single seed the sample std is undefined and reported as NaN.

    Returns:
        One row per configuration, in the order first seen: ``{"name", "config", "n",
        "failed", "seeds", metric: {"mean", "std", "min", "max", "values"}}``.
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    values = list(records.values()) if isinstance(records, Mapping) else list(records)
    rows: dict[str, dict[str, Any]] = {}
    for record in values:
        row = rows.setdefault(record["name"], {"name": record["name"], "config": record["config"], "n": 0,
                                               "failed": 0, "seeds": [], "_values": {m: [] for m in metrics}})
        if record.get("status") != "ok":
            row["failed"] += 1
            continue
        row["n"] += 1
        row["seeds"].append(record["seed"])
        for m in metrics:
            value = _metric(record["result"], m)
            if value is not None:
                row["_values"][m].append(value)
    out = []
    for row in rows.values():
        for m, vals in row.pop("_values").items():
            x = np.asarray(vals, dtype=np.float64)
            enough = x.size > ddof
            row[m] = {
                "mean": float(x.mean()) if x.size else math.nan,
                "std": float(x.std(ddof=ddof)) if enough else (0.0 if x.size == 1 and ddof == 0 else math.nan),
                "min": float(x.min()) if x.size else math.nan,
                "max": float(x.max()) if x.size else math.nan,
                "values": vals,
            }
        out.append(row)
    return out


def mean_std(cell: Mapping[str, float], percent: bool = True, digits: int = 1) -> str:
    """``"60.0 ± 1.0"`` from a summary cell (``"-"`` when there are no values)."""
    scale = 100.0 if percent else 1.0
    if not cell or not math.isfinite(cell.get("mean", math.nan)):
        return "-"
    text = f"{scale * cell['mean']:.{digits}f}"
    std = cell.get("std", math.nan)
    return f"{text} ± {scale * std:.{digits}f}" if math.isfinite(std) else text


def min_max(cell: Mapping[str, float], percent: bool = True, digits: int = 1) -> str:
    """``"[58.9, 61.2]"`` from a summary cell."""
    scale = 100.0 if percent else 1.0
    if not cell or not math.isfinite(cell.get("min", math.nan)):
        return "-"
    return f"[{scale * cell['min']:.{digits}f}, {scale * cell['max']:.{digits}f}]"


def format_summary(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None, *,
                   config_keys: Sequence[str] = (), percent: bool = True, digits: int = 1,
                   extra: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The summary as a plain-text table: one row per configuration, "mean ± std" and "[min, max]" per metric.

    Args:
        rows: from :func:`summarize`.
        metrics: which metrics (default: every one in the rows).
        config_keys: configuration entries shown as their own columns (default: the name).
        percent: the metrics are fractions, shown in percent.
        digits: decimals.
        extra: more columns per configuration name, e.g. the paper's numbers.
    """
    if not rows:
        return "(no runs)"
    reserved = {"name", "config", "n", "failed", "seeds"}
    metrics = list(metrics or [k for k in rows[0] if k not in reserved])
    table = []
    for row in rows:
        line: dict[str, Any] = {k: _short(row["config"].get(k)) for k in config_keys} if config_keys else {"configuration": row["name"]}
        for m in metrics:
            line[f"{m} (mean ± std)"] = mean_std(row.get(m, {}), percent, digits)
            line[f"{m} [min, max]"] = min_max(row.get(m, {}), percent, digits)
        line["seeds"] = f"{row['n']}" + (f" (+{row['failed']} failed)" if row["failed"] else "")
        line.update((extra or {}).get(row["name"], {}))
        table.append(line)
    columns = list(dict.fromkeys(k for line in table for k in line))
    return format_table(table, columns)


