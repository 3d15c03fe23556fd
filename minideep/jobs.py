"""Independent jobs: in this process, in a pool of processes, or as Ray tasks on a cluster.

A job is one call ``fn(run)`` for one (configuration, seed) :class:`Run`; it trains one
model and returns a dict of results. Each job writes its own results file, atomically, as
soon as it ends, so nothing is lost when the jobs are interrupted and finished runs are
skipped when they start again. A run that raises is recorded with its error and traceback,
and the others go on. The chapter runner (:mod:`minideep.experiment`) sends a chapter's
(variant, seed) runs here for ``--workers N`` and ``--backend ray``; :mod:`minideep.sweep`
adds configuration grids and the mean +- std summary on top.

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
"""
from __future__ import annotations

import argparse
import itertools
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
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .backend import get_num_threads, set_num_threads
from .lifeline import die_with_parent
from .results import jsonable, read_results, write_json_atomic

BACKENDS = ("local", "ray")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+,-]*$")


# ----------------------------------------------------------------------------------------
# Configurations and runs
# ----------------------------------------------------------------------------------------


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
        clean = jsonable(dict(config), f"make_runs: configuration {name!r}")
        runs.extend(Run(name, clean, int(seed), str(out), dict(settings or {})) for seed in seeds)
    return runs


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
        record = _record(run, "ok", started, result=jsonable(dict(result), "the job's result"))
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
    by_value: Sequence[Any] = (),
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
            :func:`minideep.set_num_threads`, called in every pool process and Ray task):
            ``"auto"`` shares the cores out (the CPU count over ``workers``; a Ray task's
            ``cpus_per_run``), an int sets it, None (default) keeps the count the process
            has (a pool process inherits this one's). Other thread counts change float32 rounding in
            the last digits, not the results' meaning.
        runtime_env: Ray backend: extra ``runtime_env`` entries. When this call starts Ray
            (``ray.init(address=address)``), the job's runtime_env ships the minideep package to
            every worker (``py_modules``) with this process's BLAS thread settings, and these
            entries are added; when Ray is already initialised, the caller's ``ray.init`` decides
            and these entries go to the tasks.
        by_value: Ray backend: more modules (besides ``fn``'s) whose functions go to the workers by
            value, e.g. a chapter script that the workers cannot import.
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
            _run_ray(fn, todo, collect, address, cpus_per_run, gpus_per_run, runtime_env, threads, by_value)
        elif workers > 1:
            pool_size = min(workers, len(todo))
            threads = threads_for(threads_per_run, pool_size)
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


def threads_for(threads_per_run: int | str | None, workers: int) -> int | None:
    """The conv threads each pool process gets: ``"auto"`` shares the cores out, None keeps the process's count."""
    if threads_per_run == "auto":
        return max(1, (os.cpu_count() or 1) // max(1, workers))
    return threads_per_run


def _execute_with_threads(fn: Callable[[Run], Mapping[str, Any]], run: Run, threads: int | None) -> dict[str, Any]:
    """:func:`execute` in a worker process, after ``md.set_num_threads(threads)`` (None: the process's count).

    Jobs side by side in processes would otherwise each start one thread per core, and
    threads that outnumber the cores wait on each other (measured on 2 cores: a run of
    batch 100 took 70 s instead of 19 s).
    """
    set_num_threads(get_num_threads() if threads is None else threads)
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
    # Each worker dies with this process (lifeline: no orphans still writing into --out after a kill -9).
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_execute_with_threads, fn, run, threads): run for run in todo}
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


def _pickle_job_by_value(ray: Any, fn: Callable, modules: Sequence[Any] = ()) -> None:
    """A job defined in a script or a test module is sent by value, so workers need not import that file."""
    for module in [sys.modules.get(getattr(fn, "__module__", "") or ""), *modules]:
        if module is None or module.__name__ == "__main__" or module.__name__.split(".")[0] == "minideep":
            continue
        try:
            ray.cloudpickle.register_pickle_by_value(module)
        except (ValueError, AttributeError):  # an installed module: workers import it themselves
            pass


def _run_ray(fn: Callable, todo: list[Run], collect: Callable, address: str | None, cpus_per_run: float,
             gpus_per_run: float, runtime_env: Mapping[str, Any] | None, threads: int | None,
             by_value: Sequence[Any] = ()) -> None:
    """The jobs as Ray tasks, one per run, with their resource requests; Ray does the scheduling."""
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, runtime_env=_ray_runtime_env(runtime_env))
    try:
        _pickle_job_by_value(ray, fn, by_value)
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
# Command line
# ----------------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """argparse type of ``--workers`` (and the runner's ``--threads``): an int >= 1 (0 would otherwise mean 1 silently)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> float:
    """argparse type of ``--cpus-per-run`` and ``--gpus-per-run``: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--backend``, ``--workers``, ``--address``, ``--cpus-per-run``, ``--gpus-per-run`` to a parser."""
    group = parser.add_argument_group("sweep (where the runs go)")
    group.add_argument("--backend", choices=BACKENDS, default="local",
                       help="local: this machine (one run at a time, or --workers processes); ray: Ray tasks")
    group.add_argument("--workers", type=positive_int, default=None,
                       help="local backend: runs at the same time, each in its own process (default 1)")
    group.add_argument("--address", default=None,
                       help="ray backend: HOST:PORT of a running Ray cluster (default: start Ray on this machine)")
    group.add_argument("--cpus-per-run", type=_non_negative, default=1, help="ray backend: CPUs each run asks for")
    group.add_argument("--gpus-per-run", type=_non_negative, default=None,
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

