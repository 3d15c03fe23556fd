"""Sweeps: many independent training runs, configurations x seeds, on one machine or a Ray cluster.

A sweep is a list of named configurations (often a grid of hyperparameters) crossed with
seeds. Every (configuration, seed) is one job: a call ``fn(run)`` that trains one model and
returns a dict of results. Each job writes its own results file, atomically, as soon as it
ends, so nothing is lost when the sweep is interrupted and finished runs are skipped when it
starts again. A run that raises is recorded with its error and traceback, and the others go
on. At the end, :func:`summarize` aggregates every configuration's seeds into mean, standard
deviation, minimum and maximum, the way the MLP coursework reports its Tables 1-6.

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

import argparse
import itertools
import json
import math
import multiprocessing
import os
import pickle
import platform
import re
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .experiment import _json_default, format_table, read_results, write_json_atomic

BACKENDS = ("local", "ray")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+,-]*$")


# ----------------------------------------------------------------------------------------
# Configurations and runs
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


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def config_name(config: Mapping[str, Any], keys: Sequence[str] | None = None, abbreviations: Mapping[str, str] | None = None) -> str:
    """A file-safe name such as ``"lr=0.001,wd=0.0005,bs=50"`` built from ``keys`` of ``config``.

    Args:
        config: the configuration.
        keys: which entries name it, in order (default: all).
        abbreviations: short names for keys, e.g. ``{"weight_decay": "wd"}``.
    """
    abbreviations = abbreviations or {}
    keys = list(config) if keys is None else list(keys)
    missing = [k for k in keys if k not in config]
    if missing:
        raise ValueError(f"config_name: keys {missing} are not in the configuration {dict(config)}")
    return ",".join(f"{abbreviations.get(k, k)}={_short(config[k])}" for k in keys)


@dataclass(frozen=True)
class Run:
    """One job of a sweep: a named configuration and a seed.

    Attributes:
        name: the configuration's name (letters, digits and ``. _ = + , -``).
        config: the configuration, JSON-ready values only.
        seed: the seed.
        out: the sweep's folder; the run's files are ``out/<name>/seed<seed>.json`` and
            ``out/<name>/seed<seed>/`` (see :attr:`path` and :attr:`work_dir`).
        settings: how to run it without changing what it computes (progress bars, a data
            folder): not part of the run's identity, so a restart may change them.
    """

    name: str
    config: Mapping[str, Any]
    seed: int
    out: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``"<name>/seed<seed>"``, unique within a sweep."""
        return f"{self.name}/seed{self.seed}"

    @property
    def path(self) -> Path:
        """The run's results file."""
        return Path(self.out) / self.name / f"seed{self.seed}.json"

    @property
    def work_dir(self) -> Path:
        """A folder of the run's own, for checkpoints (created on first use by the job)."""
        return Path(self.out) / self.name / f"seed{self.seed}"


def make_runs(configs: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]], seeds: Sequence[int],
              out: str | Path, settings: Mapping[str, Any] | None = None) -> list[Run]:
    """Cross configurations with seeds: every configuration's seeds in turn.

    Args:
        configs: ``{name: config}``, or a list of configs (named with :func:`config_name`).
        seeds: the seeds, e.g. ``[0, 1, 2, 3, 4]``.
        out: the sweep's folder.
        settings: given to every run as ``run.settings`` (see :class:`Run`).
    """
    if not isinstance(configs, Mapping):
        configs = {config_name(c): c for c in configs}
    if not configs:
        raise ValueError("make_runs: no configurations")
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"make_runs: seeds must be a non-empty list of ints, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"make_runs: seeds must be distinct, got {seeds}")
    runs = []
    for name, config in configs.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"make_runs: configuration name {name!r} must be letters, digits and . _ = + , - "
                             "(it names a folder)")
        if not isinstance(config, Mapping):
            raise TypeError(f"make_runs: configuration {name!r} must be a dict, got {type(config).__name__}")
        clean = _jsonable(dict(config), f"make_runs: configuration {name!r}")
        runs.extend(Run(name, clean, int(seed), str(out), dict(settings or {})) for seed in seeds)
    return runs


def _jsonable(value: Any, what: str) -> Any:
    """``value`` through a JSON round trip (NumPy scalars become numbers), or a TypeError naming ``what``."""
    try:
        return json.loads(json.dumps(value, default=_json_default, allow_nan=True))
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must hold JSON values only: {e}") from None


# ----------------------------------------------------------------------------------------
# One job
# ----------------------------------------------------------------------------------------

_PER_PROCESS: dict[Any, Any] = {}


def per_process(key: Any, make: Callable[[], Any]) -> Any:
    """``make()`` once per process and key, then the same object: a worker's data set, shared by its runs.

    Use it rather than ``functools.lru_cache`` in a job's script: Ray sends a script's job
    function by value, and a cache decorator in the script does not survive the trip (the
    worker's ``__main__`` is not the script), while this cache lives in minideep itself.

    Example::

        data = per_process(("cifar100", n_train), lambda: load_cifar(n_train))
    """
    if key not in _PER_PROCESS:
        _PER_PROCESS[key] = make()
    return _PER_PROCESS[key]


def _record(run: Run, status: str, started: float, **fields: Any) -> dict[str, Any]:
    return {
        "name": run.name, "config": dict(run.config), "seed": run.seed, "status": status, **fields,
        "wall_time_s": time.perf_counter() - started if started else None,
        "host": platform.node(), "pid": os.getpid(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _failure(run: Run, error: BaseException, started: float = 0.0, where: str = "job") -> dict[str, Any]:
    return _record(run, "failed", started, error=f"{type(error).__name__}: {error}", where=where,
                   traceback="".join(traceback.format_exception(type(error), error, error.__traceback__)))


def execute(fn: Callable[[Run], Mapping[str, Any]], run: Run) -> dict[str, Any]:
    """Run one job and write its results file; an exception becomes a ``"failed"`` record.

    This is what every backend calls, in this process, a pool process or a Ray worker. The
    record is written to ``run.path`` atomically (a reader sees the old file or the new one,
    never half of one) and returned.
    """
    started = time.perf_counter()
    try:
        result = fn(run)
        if not isinstance(result, Mapping):
            raise TypeError(f"the job returned a {type(result).__name__}, not a dict of results")
        record = _record(run, "ok", started, result=_jsonable(dict(result), "the job's result"))
    except Exception as error:  # noqa: BLE001 - a failed run is reported, and the others go on
        record = _failure(run, error, started)
    try:
        write_json_atomic(run.path, record)
    except OSError as error:  # a cluster node that cannot write there: the driver writes the returned record
        record["written_by_job"] = f"no ({type(error).__name__}: {error})"
    return record


# ----------------------------------------------------------------------------------------
# The sweep
# ----------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """What :func:`run_sweep` did.

    Attributes:
        runs: every run of the sweep, in order.
        records: ``{run.key: record}`` for every run that has a results file, in run order.
        ran: keys of the runs executed this time; skipped: keys finished earlier.
        failed: the records whose status is ``"failed"``.
        wall_time_s: this call's wall time.
    """

    runs: list[Run]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records.values() if r.get("status") != "ok"]


def _finished(run: Run, retry_failed: bool) -> dict[str, Any] | None:
    """The run's earlier record if it need not run again, else None."""
    if not run.path.exists():
        return None
    record = read_results(run.path)
    if record.get("config") != dict(run.config) or record.get("seed") != run.seed:
        raise ValueError(
            f"run_sweep: {run.path} holds a run of configuration {record.get('config')} seed {record.get('seed')}, "
            f"but this sweep names {dict(run.config)} seed {run.seed} {run.name!r}; use another output folder"
        )
    if record.get("status") == "ok" or not retry_failed:
        return record
    return None


def run_sweep(
    fn: Callable[[Run], Mapping[str, Any]],
    configs: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    out: str | Path,
    *,
    backend: str = "local",
    workers: int = 1,
    address: str | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    retry_failed: bool = True,
    settings: Mapping[str, Any] | None = None,
    threads_per_run: int | str | None = None,
    runtime_env: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
) -> SweepResult:
    """Run every (configuration, seed) that has not finished yet, each as an independent job.

    Args:
        fn: ``fn(run) -> dict``, a module-level function (it is pickled to pool processes and
            Ray workers). It reads ``run.config`` and ``run.seed``, may keep files in
            ``run.work_dir``, and returns JSON-ready results (e.g. ``{"val_accuracy": 0.6}``).
        configs: ``{name: config}`` or a list of configs (see :func:`make_runs`).
        seeds: the seeds every configuration runs with.
        out: the sweep's folder (one results file per run).
        backend: ``"local"`` or ``"ray"``.
        workers: local backend: 1 runs the jobs one after the other in this process; more
            runs them in a pool of that many processes.
        address: Ray backend: ``"HOST:PORT"`` of a running cluster (``ray start --head``),
            ``"auto"``, or None to start a Ray instance on this machine.
        cpus_per_run, gpus_per_run: Ray backend: the resources each task asks for (give
            ``gpus_per_run=1`` when the runs train on the GPU).
        retry_failed: run again the runs whose earlier record says ``"failed"``.
        settings: ``run.settings`` of every run: how to run, not what (progress bars, data
            folder); unlike the configuration, they may differ when a sweep restarts.
        threads_per_run: convolution threads of each pool process or Ray task (see
            :func:`limit_threads`): ``"auto"`` shares the cores out (the CPU count over
            ``workers``; a Ray task's ``cpus_per_run``), an int sets it, None (default) leaves
            every process its own default. Other thread counts change float32 rounding in
            the last digits, not the results' meaning.
        runtime_env: Ray backend: extra ``runtime_env`` entries. When this call starts Ray
            (``ray.init(address=address)``), the job's runtime_env ships the minideep package to
            every worker (``py_modules``) with this process's BLAS thread settings, and these
            entries are added; when Ray is already initialised, the caller's ``ray.init`` decides
            and these entries go to the tasks.
        log: where progress lines go (None: silent).

    Returns:
        A :class:`SweepResult`; its ``records`` feed :func:`summarize`.

    Raises:
        ValueError: unknown backend, bad workers/resources, or a results file in ``out``
            that belongs to another configuration.
    """
    say = log or (lambda line: None)
    if backend not in BACKENDS:
        raise ValueError(f"run_sweep: backend must be one of {BACKENDS}, got {backend!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"run_sweep: workers must be an int >= 1, got {workers!r}")
    if threads_per_run not in (None, "auto") and not (isinstance(threads_per_run, int) and threads_per_run >= 1):
        raise ValueError(f"run_sweep: threads_per_run must be None, 'auto' or an int >= 1, got {threads_per_run!r}")
    if cpus_per_run < 0 or gpus_per_run < 0:
        raise ValueError(f"run_sweep: cpus_per_run and gpus_per_run must be >= 0, got {cpus_per_run}, {gpus_per_run}")
    if not callable(fn):
        raise TypeError(f"run_sweep: fn must be callable, got {type(fn).__name__}")
    started = time.perf_counter()
    runs = make_runs(configs, seeds, out, settings)
    result = SweepResult(runs=runs)
    done: dict[str, dict[str, Any]] = {}
    todo: list[Run] = []
    for run in runs:
        record = _finished(run, retry_failed)
        if record is None:
            todo.append(run)
        else:
            done[run.key] = record
            result.skipped.append(run.key)
    if result.skipped:
        say(f"[sweep] {len(result.skipped)} of {len(runs)} runs finished earlier, skipped")
    if todo:
        where = f"ray ({address or 'local instance'})" if backend == "ray" else (
            f"{workers} local processes" if workers > 1 else "this process")
        say(f"[sweep] {len(todo)} runs to do on {where}")

    counter = itertools.count(1)

    def collect(run: Run, record: dict[str, Any]) -> None:
        if not run.path.exists():  # a Ray worker on another machine wrote its file there: keep a copy here
            write_json_atomic(run.path, record)
        done[run.key] = record
        result.ran.append(run.key)
        status = "ok" if record["status"] == "ok" else f"FAILED ({record.get('error')})"
        seconds = record.get("wall_time_s")
        timing = f" in {seconds:.1f} s" if seconds else ""
        say(f"[sweep] {next(counter)}/{len(todo)} {run.name} seed {run.seed}: {status}{timing}")

    if todo:
        if backend == "ray":
            threads = max(1, math.ceil(cpus_per_run)) if threads_per_run == "auto" else threads_per_run
            _run_ray(fn, todo, collect, address, cpus_per_run, gpus_per_run, runtime_env, threads)
        elif workers > 1:
            pool_size = min(workers, len(todo))
            threads = max(1, (os.cpu_count() or 1) // pool_size) if threads_per_run == "auto" else threads_per_run
            _run_pool(fn, todo, collect, pool_size, threads)
        else:
            for run in todo:
                collect(run, execute(fn, run))

    result.records = {run.key: done[run.key] for run in runs if run.key in done}
    result.wall_time_s = time.perf_counter() - started
    failed = result.failed
    say(f"[sweep] {len(result.ran)} ran, {len(result.skipped)} skipped, {len(failed)} failed "
        f"({result.wall_time_s:.1f} s); results in {out}")
    for record in failed:
        say(f"[sweep]   failed: {record['name']} seed {record['seed']}: {record.get('error')}")
    return result


def limit_threads(threads: int) -> None:
    """Give one job ``threads`` convolution threads (``minideep.backend.set_num_threads``), its share of the cores.

    Jobs side by side in processes would otherwise each start one thread per core, and
    threads that outnumber the cores wait on each other (measured on 2 cores: a run of
    batch 100 took 70 s instead of 19 s). BLAS threads follow ``OPENBLAS_NUM_THREADS``.
    """
    from . import backend  # noqa: PLC0415 - only in the job's process

    backend.set_num_threads(max(1, int(threads)))


def _execute_with_threads(fn: Callable[[Run], Mapping[str, Any]], run: Run, threads: int | None) -> dict[str, Any]:
    """:func:`execute` in a Ray worker, with ``threads`` convolution threads (None: the worker's default)."""
    if threads is not None:
        limit_threads(threads)
    return execute(fn, run)


def _run_pool(fn: Callable, todo: list[Run], collect: Callable, workers: int, threads: int | None) -> None:
    """The jobs in a pool of processes (each with ``threads`` convolution threads); a killed process fails its run only."""
    try:
        pickle.dumps(fn)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"run_sweep: the job function {fn!r} cannot be sent to worker processes ({e}); "
                        "define it at the top level of an importable module") from None
    # fork: the children start from this process's imports (a chapter script run as __main__ included).
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    init = {"initializer": limit_threads, "initargs": (threads,)} if threads is not None else {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, **init) as pool:
        futures = {pool.submit(execute, fn, run): run for run in todo}
        try:
            for future in as_completed(futures):
                run = futures[future]
                try:
                    record = future.result()
                except Exception as error:  # noqa: BLE001 - e.g. the process was killed
                    record = _failure(run, error, where="process pool")
                    write_json_atomic(run.path, record)
                collect(run, record)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _import_ray() -> Any:
    try:
        import ray  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise ImportError("run_sweep: backend 'ray' needs Ray: pip install \"minideep[sweep]\" "
                          "(or pip install \"ray[default]\")") from None
    return ray


def _ray_runtime_env(runtime_env: Mapping[str, Any] | None) -> dict[str, Any]:
    """The job-level runtime_env of a Ray instance this module starts: minideep and the BLAS thread settings travel."""
    import minideep  # noqa: PLC0415 - the package object: Ray zips its folder and ships it to every worker

    env: dict[str, Any] = {"py_modules": [minideep]}
    threads = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    if threads:
        env["env_vars"] = threads
    env.update(runtime_env or {})
    return env


def _pickle_job_by_value(ray: Any, fn: Callable) -> None:
    """A job defined in a script or a test module is sent by value, so workers need not import that file."""
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    if module is None or module.__name__ == "__main__" or module.__name__.split(".")[0] == "minideep":
        return
    try:
        ray.cloudpickle.register_pickle_by_value(module)
    except (ValueError, AttributeError):  # an installed module: workers import it themselves
        pass


def _run_ray(fn: Callable, todo: list[Run], collect: Callable, address: str | None, cpus_per_run: float,
             gpus_per_run: float, runtime_env: Mapping[str, Any] | None, threads: int | None) -> None:
    """The jobs as Ray tasks, one per run, with their resource requests; Ray does the scheduling."""
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, runtime_env=_ray_runtime_env(runtime_env))
    try:
        _pickle_job_by_value(ray, fn)
        options: dict[str, Any] = {"num_cpus": cpus_per_run, "num_gpus": gpus_per_run}
        if runtime_env and not started_here:
            options["runtime_env"] = dict(runtime_env)
        task = ray.remote(_execute_with_threads).options(**options)
        pending = {task.remote(fn, run, threads): run for run in todo}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                run = pending.pop(ready[0])
                try:
                    record = ray.get(ready[0])
                except Exception as error:  # noqa: BLE001 - the worker died, the node went away, ...
                    record = _failure(run, error, where="ray")
                    write_json_atomic(run.path, record)
                collect(run, record)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started_here:
            ray.shutdown()


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


# ----------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--backend``, ``--workers``, ``--address``, ``--cpus-per-run``, ``--gpus-per-run`` to a parser."""
    group = parser.add_argument_group("sweep (where the runs go)")
    group.add_argument("--backend", choices=BACKENDS, default="local",
                       help="local: this machine (one run at a time, or --workers processes); ray: Ray tasks")
    group.add_argument("--workers", type=int, default=None,
                       help="local backend: runs at the same time, each in its own process (default 1)")
    group.add_argument("--address", default=None,
                       help="ray backend: HOST:PORT of a running Ray cluster (default: start Ray on this machine)")
    group.add_argument("--cpus-per-run", type=float, default=1, help="ray backend: CPUs each run asks for")
    group.add_argument("--gpus-per-run", type=float, default=None,
                       help="ray backend: GPUs each run asks for (default: 1 with --device gpu, else 0)")
    return parser


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``run_sweep`` keyword arguments from a parsed command line (see :func:`add_arguments`)."""
    gpus = args.gpus_per_run
    if gpus is None:
        gpus = 1 if getattr(args, "device", "cpu") == "gpu" else 0
    if args.address and args.backend != "ray":
        raise SystemExit("--address is for --backend ray")
    return {"backend": args.backend, "workers": args.workers or 1, "address": args.address,
            "cpus_per_run": args.cpus_per_run, "gpus_per_run": gpus}
