"""A chapter's run: presets, seeds, variants, data choice, results.json, resume, the table.

Every chapter script is thin: it declares its presets and variants and hands them to
``Experiment``, which parses the common command line, picks the data set, runs every
(variant, seed) that is not finished yet, writes ``results.json`` atomically after each
one, and prints a table beside the paper's numbers.

The common command line (every chapter)::

    --preset smoke|quick|paper   --device cpu|gpu   --seeds 0 [1 2 ...]   --out DIR
    --data-dir DIR   --dataset NAME   --resume [--rerun-changed]   --variants NAME [NAME ...] | all
    --threads N   --workers N | --backend ray [--address HOST:PORT]      (the runs as minideep.jobs jobs)

Safe against the usual accidents: ``--out`` is checked writable and locked before anything
trains (a second run into it stops, naming the first: :mod:`minideep.outlock`); every
finished run and checkpoint folder records the settings it was made with, and ``--resume``
refuses to mix runs whose settings changed, saying what changed (``--rerun-changed`` redoes
them: :mod:`minideep.fingerprint`); a fresh run empties the checkpoint folders of its runs.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import __version__, allocator, blas_env, jobs
from .backend import check_device, get_num_threads, set_num_threads
from .fingerprint import changes, fingerprint, run_settings
from .outlock import OutputFolderError, check_writable, locked
from .results import (  # noqa: F401 - format_table, markdown_table: the chapters' tables
    WriteError, check_claims_ledger, claims_markdown, format_table, markdown_table, read_results, write_atomic,
    write_json_atomic,
)

PRESETS = ("smoke", "quick", "paper")

#: NumPy's seeds (``np.random.seed``, ``default_rng``) are unsigned 32-bit integers.
MAX_SEED = 2**32 - 1

#: In a run's checkpoint folder: the settings of the run that owns the checkpoints.
RUN_FILE = "run.json"


def _seed(text: str) -> int:
    """argparse type: a seed NumPy accepts, 0 <= seed < 2**32."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} is out of range: NumPy seeds must be 0 <= seed < 2**32 (= {MAX_SEED + 1})")
    return value


def git_revision() -> str | None:
    """The commit of the minideep checkout that runs (``git describe --always --dirty``), or None.

    None outside a git checkout (an installed package) or without git. "-dirty" means the
    checkout had uncommitted changes to tracked files when the run started (results.json is
    begun with :func:`versions`).
    """
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def versions() -> dict[str, str]:
    """Versions of Python, NumPy, minideep (and its git commit) and, when imported, CuPy and PyTorch."""
    found = {"python": platform.python_version(), "numpy": np.__version__, "minideep": __version__}
    revision = git_revision()
    if revision:
        found["git"] = revision  # which code made the numbers
    for name in ("cupy", "torch", "matplotlib"):
        module = sys.modules.get(name)
        if module is not None:
            found[name] = getattr(module, "__version__", "?")
    return found


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, where the system has them."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _cpuinfo(field: str) -> str | None:
    """The first ``field : value`` line's value in /proc/cpuinfo (Linux), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name ("AMD EPYC", "Intel(R) Xeon(R) Processor", ...) from /proc/cpuinfo, else Python's guess.

    Worth recording beside every timing: the same 2-core machine type has come with either,
    and the ratio to PyTorch differs between them (see the benchmarks page).
    """
    return _cpuinfo("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_vector_units() -> list[str]:
    """Which of the x86 vector extensions that matter for float32 products the CPU has (/proc/cpuinfo's flags)."""
    flags = (_cpuinfo("flags") or "").split()
    return [unit for unit in ("avx2", "fma", "avx512f", "amx_tile") if unit in flags]


def machine() -> dict[str, Any]:
    """A short description of the machine the numbers came from."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(), "cpu": cpu_model(),
            "cpus": os.cpu_count(), "openblas_kernel": blas_env.openblas_kernel()}
    pins, dropped = blas_env.pinned(), blas_env.dropped()
    if pins:
        info["openblas_pins"] = pins  # kept (--keep-openblas-env or a library call)
    if dropped:
        info["openblas_pins_dropped"] = dropped
    if allocator.applied():
        info["malloc"] = allocator.applied()  # freed memory kept for the next step (minideep.allocator)
    return info


# ----------------------------------------------------------------------------------------
# The experiment
# ----------------------------------------------------------------------------------------


@dataclass
class RunContext:
    """What a chapter's ``run_variant`` gets for one (variant, seed).

    ``configuration`` is the variant's own settings when the chapter builds its variants
    from a configuration grid (``Experiment.configurations``), else an empty dict.
    """

    variant: str
    seed: int
    preset: str
    config: dict[str, Any]
    device: str
    data: Any
    out: Path
    checkpoint_dir: Path
    resume: bool
    log: Callable[[str], None] = print
    configuration: dict[str, Any] = field(default_factory=dict)


@dataclass
class Experiment:
    """A chapter's experiment: its presets, variants and how to run one of them.

    Args:
        chapter: a short name, e.g. ``"03_vgg38"``.
        description: the ``--help`` text.
        presets: preset name -> configuration dict (``smoke``, ``quick``, ``paper``).
        variants: the variant names, in the order they are run and reported (with
            ``configurations``: the names of the groups ``--variants`` chooses from, e.g. a
            paper's tables).
        default_variants: preset name -> the variants run when ``--variants`` is not given.
        load_data: ``(args, config) -> data``; the returned object needs ``.description``
            (a dict saved to results.json) and ``.notice`` (a line printed, or None).
        run_variant: ``(RunContext) -> dict``, usually with ``test_accuracy`` and ``history``
            (a run without ``test_accuracy``, such as a gradient check, is stored as it is).
        summarize: ``(results dict) -> str``, the table printed at the end (and saved).
        figures: ``(results dict, out Path) -> list of Paths``, called at the end.
        default_seeds: preset name -> the seeds run when ``--seeds`` is not given (default [0]);
            e.g. three seeds for a chapter whose figure shows a min-max band over runs.
        configurations: a configuration grid for sweeps: ``(preset name, preset config,
            chosen groups) -> {name: configuration}``. Each name is then a variant of its
            own (its configuration goes to ``RunContext.configuration`` and to the variant's
            ``config`` in results.json); several groups may share a configuration, which runs once.
        aggregate: ``(results dict) -> None``, adds the chapter's summaries over seeds to the
            results after the runs (before figures and table).
        paper: the paper's numbers, variant -> {source: value}; saved to results.json as
            ``paper`` for the table and the claims.
        claims: ``(results dict) -> list of dicts``, the ledger of the paper's claims, each with
            ``claim``, ``source``, ``paper``, ``ours``, ``verdict`` (``reproduced``, ``differs``
            or ``not run``) and ``evidence``: written to ``claims.json`` and, as the Markdown
            table the chapter page includes, ``claims.md``.
        tables: ``(results dict) -> {name: Markdown table}``: each written to ``name.md`` in
            ``--out``, for the chapter page to include (the site never retypes a number).
        default_workers: preset name -> runs at the same time when ``--workers`` is not given.
        threads_per_run: threads of each run sent to a pool or to Ray (see ``jobs.run_sweep``).
        variant_flags: more option strings for ``--variants`` (e.g. ``"--tables"``).
        table_file: the file the printed table is saved to, in ``--out``.
    """

    chapter: str
    description: str
    presets: dict[str, dict[str, Any]]
    variants: Sequence[str]
    run_variant: Callable[[RunContext], dict]
    load_data: Callable[[argparse.Namespace, dict], Any] | None = None
    default_variants: dict[str, Sequence[str]] = field(default_factory=dict)
    summarize: Callable[[dict], str] | None = None
    figures: Callable[[dict, Path], list] | None = None
    default_preset: str = "quick"
    default_seeds: dict[str, Sequence[int]] = field(default_factory=dict)
    configurations: Callable[[str, dict, Sequence[str]], Mapping[str, dict]] | None = None
    aggregate: Callable[[dict], None] | None = None
    paper: Mapping[str, Any] | None = None
    claims: Callable[[dict], list] | None = None
    tables: Callable[[dict], Mapping[str, str]] | None = None
    default_workers: dict[str, int] = field(default_factory=dict)
    threads_per_run: int | str | None = None
    variant_flags: Sequence[str] = ()
    table_file: str = "table.txt"

    def parser(self) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog=f"chapters/{self.chapter}.py", description=self.description)
        p.add_argument("--preset", choices=PRESETS, default=self.default_preset,
                       help="smoke: seconds, for tests; quick: the CPU default; paper: the paper's settings (GPU)")
        p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
        p.add_argument("--seeds", "--seed", type=_seed, nargs="+", default=None,
                       help="one or several seeds, each 0 <= seed < 2**32 (default: the preset's, usually 0)")
        p.add_argument("--out", type=Path, default=Path("runs") / self.chapter, help="folder for results.json and figures")
        p.add_argument("--data-dir", type=Path, default=None, help="where data sets are looked for first")
        p.add_argument("--dataset", default="auto", help="data set to use (default: the preset's choice)")
        p.add_argument("--resume", action="store_true",
                       help="skip finished runs and continue interrupted ones (refused when the settings changed)")
        p.add_argument("--rerun-changed", action="store_true",
                       help="with --resume: run again, from scratch, the runs whose settings changed since they were made")
        p.add_argument("--variants", *self.variant_flags, dest="variants", nargs="+", default=None,
                       help=f"a subset of {', '.join(self.variants)}, or 'all'")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        p.add_argument("--threads", type=jobs.positive_int, default=None,
                       help="CPU threads (md.set_num_threads; default: md.get_num_threads(), one per core up to 8)")
        p.add_argument("--from-results", type=Path, default=None, metavar="RESULTS_JSON",
                       help="train nothing: regenerate the figures, tables and claims ledger of this results.json "
                            "into --out (in seconds)")
        p.add_argument("--keep-openblas-env", action="store_true",
                       help="keep OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (by default a script run restarts once "
                            "without them: they pin an old, slower BLAS kernel; see minideep.blas_env)")
        jobs.add_arguments(p)
        return p

    def selected_variants(self, requested: Sequence[str] | None, preset: str) -> list[str]:
        if not requested:
            return list(self.default_variants.get(preset, self.variants))
        if "all" in requested:
            return list(self.variants)
        unknown = [v for v in requested if v not in self.variants]
        if unknown:
            raise SystemExit(f"{self.chapter}: unknown variant(s) {unknown}; choose from {list(self.variants)} or 'all'")
        return [v for v in self.variants if v in requested]

    def main(self, argv: Sequence[str] | None = None) -> dict:
        """Parse the command line, run what is not finished, write results and figures.

        Before anything trains, ``--out`` is checked writable and locked (one run per folder
        at a time, :mod:`minideep.outlock`); with ``--resume`` the settings of every finished
        run and checkpoint are compared with the present ones (:mod:`minideep.fingerprint`).
        """
        began = time.perf_counter()
        parser = self.parser()
        args = parser.parse_args(argv)
        if args.seeds is not None and len(set(args.seeds)) < len(args.seeds):
            parser.error(f"argument --seeds: a seed is given twice: {args.seeds}")
        if args.rerun_changed and not args.resume:
            parser.error("argument --rerun-changed: only with --resume (a run without --resume reruns everything)")
        if argv is None:  # the command line's run: process-wide settings are the script's to make
            if not args.keep_openblas_env:
                # NumPy has loaded OpenBLAS with the pins already: only a new process can drop them.
                blas_env.restart_without_pins(f"chapters/{self.chapter}.py")
            if blas_env.running_as_script():
                allocator.keep_freed_memory()  # the steps reuse their memory instead of faulting it in again
        try:
            out = check_writable(args.out)
            with locked(out, "run"):
                if args.from_results is not None:
                    return self.from_results(args.from_results, out)
                return self._run(args, began)
        except OutputFolderError as error:  # before anything ran
            raise SystemExit(f"{self.chapter}: {error}") from error
        except WriteError as error:
            raise SystemExit(f"{self.chapter}: {error}. The runs finished so far are in {args.out / 'results.json'} "
                             "(as of the last complete write); once fixed, run again with --resume.") from error

    def _run(self, args: argparse.Namespace, began: float) -> dict:
        """:meth:`main` after the checks, holding the lock of ``--out``."""
        if args.seeds is None:
            args.seeds = list(self.default_seeds.get(args.preset, [0]))
        if args.workers is None and args.backend == "local":  # the preset's choice, at most one run per core
            args.workers = min(self.default_workers.get(args.preset, 1), os.cpu_count() or 1)
        check_device(args.device)
        # One BLAS thread and the conv workers sharing the cores: the setting every chapter's numbers come from.
        set_num_threads(args.threads or get_num_threads())
        config = dict(self.presets[args.preset])
        config["progress"] = not args.no_progress
        selected = self.selected_variants(args.variants, args.preset)
        if self.configurations is not None:
            configurations = {name: dict(c) for name, c in self.configurations(args.preset, config, selected).items()}
        else:
            configurations = {name: {} for name in selected}
        out: Path = args.out
        results_path = out / "results.json"

        data = self.load_data(args, config) if self.load_data else None
        if data is not None and getattr(data, "notice", None):
            print(data.notice)
        description = getattr(data, "description", None)
        settings = {v: run_settings(args.preset, config, description, configurations[v]) for v in configurations}

        results = self._start_results(results_path, args, config, data, settings)
        results["selected"] = selected
        if self.paper is not None:
            results["paper"] = self.paper
        options = jobs.options_from_args(args)
        in_this_process = options["backend"] == "local" and options["workers"] == 1
        session = {"backend": options["backend"], "workers": options["workers"], "address": options["address"],
                   "ran": 0, "skipped": 0, "failed": [],
                   "threads_per_run": get_num_threads() if in_this_process else jobs.threads_for(self.threads_per_run,
                                                                                                    options["workers"]),
                   # How busy the machine was: the wall times of this session mean little without it.
                   "load_average_start": _load_average()}
        results["sweep"] = session
        started = time.perf_counter()
        todo = []
        for variant in configurations:
            for seed in args.seeds:
                if str(seed) in results["variants"].get(variant, {}).get("runs", {}):
                    print(f"[{self.chapter}] {variant} seed {seed}: finished earlier, skipped")
                    session["skipped"] += 1
                else:
                    todo.append((variant, seed))
        for variant, seed in todo:  # the checkpoint folders say whose checkpoints they hold
            self._own_checkpoints(out, variant, seed, settings[variant], fresh=not args.resume)
        if len(configurations) > 1 and self.configurations is not None:
            print(f"[{self.chapter}] {len(configurations)} configurations x {len(args.seeds)} seeds, "
                  f"{len(todo)} runs to do ({args.preset} preset, {args.device})")
        if todo and not in_this_process:
            self._run_as_sweep(args, todo, configurations, settings, results, results_path, options)
        for variant, seed in todo if in_this_process else []:
            print(f"[{self.chapter}] {variant} seed {seed} ({args.preset} preset, {args.device})")
            t0 = time.perf_counter()
            context = RunContext(
                variant=variant, seed=seed, preset=args.preset, config=config, device=args.device,
                data=data, out=out, checkpoint_dir=_checkpoint_dir(out, variant, seed),
                resume=args.resume, configuration=configurations[variant],
            )
            run = self.run_variant(context)
            run["wall_time_s"] = time.perf_counter() - t0
            self._record(results, variant, seed, run, configurations[variant], settings[variant])
            session["ran"] += 1
            results["wall_time_s"] = results.get("wall_time_s", 0.0) + run["wall_time_s"]
            write_json_atomic(results_path, results)

        results["last_session_s"] = time.perf_counter() - started
        if self.aggregate:
            self.aggregate(results)
        if self.figures:
            results["figures"] = [str(Path(p).name) for p in self.figures(results, out)]
        session["wall_time_s"] = time.perf_counter() - began  # data, runs, summaries and figures
        session["load_average_end"] = _load_average()
        write_json_atomic(results_path, results)
        self.write_reports(results, out)
        print(f"[{self.chapter}] results in {results_path}")
        return results

    def write_reports(self, results: dict, out: Path) -> list[Path]:
        """The claims ledger (``claims.json``, ``claims.md``), the Markdown tables and the printed table, from ``results``."""
        written = []
        if self.claims:
            claims = check_claims_ledger(self.claims(results), f"{self.chapter} claims")
            written.append(write_json_atomic(out / "claims.json", {"chapter": self.chapter[:2], "preset": results["preset"],
                                                                   "claims": claims}))
            written.append(_write_text(out / "claims.md", claims_markdown(claims)))
        for name, table in (self.tables(results) if self.tables else {}).items():
            written.append(_write_text(out / f"{name}.md", table))
        if self.summarize:
            table = self.summarize(results)
            print(table)
            written.append(_write_text(out / self.table_file, table))
        return written

    def from_results(self, path: Path, out: Path) -> dict:
        """Regenerate every figure, table and the claims ledger of a finished run from its results.json, training nothing."""
        if not Path(path).is_file():
            raise SystemExit(f"{self.chapter}: --from-results {path}: no such file")
        results = read_results(path)
        if results.get("chapter") != self.chapter:
            raise SystemExit(f"{self.chapter}: --from-results {path} holds chapter {results.get('chapter')!r}'s results")
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        if self.figures:
            self.figures(results, out)
        self.write_reports(results, out)
        print(f"[{self.chapter}] regenerated from {path} into {out}")
        return results

    def script(self, module_name: str) -> "Experiment":
        """Run :meth:`main` when the chapter file runs as a script (``module_name == "__main__"``); return self.

        A chapter ends with ``EXPERIMENT = Experiment(...).script(__name__)``: imported (by the
        tests, by a sweep worker) it only defines the experiment.
        """
        if module_name == "__main__":
            self.main()
        return self

    def _run_as_sweep(self, args: argparse.Namespace, todo: list[tuple[str, int]], configurations: dict[str, dict],
                      variant_settings: Mapping[str, dict], results: dict, results_path: Path, options: dict[str, Any]) -> None:
        """The unfinished (variant, seed) runs as jobs of ``minideep.jobs`` (process pool or Ray).

        Each job imports the chapter script by its path, loads the data itself and calls
        ``run_variant``; its record goes to ``out/sweep/<variant>/seed<seed>.json`` as soon as
        it ends, and finished ones are copied into results.json. With ``--resume`` a run with
        a record is not run again (and an interrupted one continues from its checkpoint);
        without it the records of the runs to do are removed first. A failed job is reported
        (``results["sweep"]["failed"]``) and the others go on. In a process pool the jobs
        find the experiment by the script's path; Ray tasks get it by value (with the
        chapter's functions), so the cluster's nodes need minideep, not the checkout.
        """
        settings = {"script": str(Path(inspect.getfile(self.run_variant)).resolve()), "device": args.device,
                    "data_dir": None if args.data_dir is None else str(args.data_dir), "out": str(args.out.resolve()),
                    "resume": args.resume, "progress": False}
        by_value = []
        if options["backend"] == "ray":  # the experiment itself travels, so the nodes need no checkout
            settings["experiment"] = self
            by_value = [m for m in (inspect.getmodule(f) for f in (self.run_variant, self.load_data)) if m is not None]
        session = results["sweep"]
        by_seeds: dict[tuple[int, ...], list[str]] = {}  # variants that miss the same seeds go in one sweep
        for variant in dict.fromkeys(v for v, _ in todo):
            by_seeds.setdefault(tuple(s for v, s in todo if v == variant), []).append(variant)
        for seeds, names in by_seeds.items():
            # The run's settings are part of its identity: a sweep record made with others is never reused.
            configs = {v: {"chapter": self.chapter, "preset": args.preset, "dataset": args.dataset, "variant": v,
                           "configuration": configurations[v], "settings": variant_settings[v]} for v in names}
            if not args.resume:  # a fresh run, as in this process: earlier records do not count
                for run in jobs.make_runs(configs, list(seeds), args.out / "sweep"):
                    run.path.unlink(missing_ok=True)
            swept = jobs.run_sweep(run_experiment_job, configs, list(seeds), args.out / "sweep", settings=settings,
                                   threads_per_run=self.threads_per_run, by_value=by_value, **options)
            for record in swept.records.values():
                if record.get("status") != "ok":
                    session["failed"].append({k: record.get(k) for k in ("name", "seed", "error")})
                    continue
                run = dict(record["result"])
                run["wall_time_s"] = record["wall_time_s"]
                variant = record["config"]["variant"]
                self._record(results, variant, record["seed"], run, configurations[variant], variant_settings[variant])
                results["wall_time_s"] = results.get("wall_time_s", 0.0) + (run["wall_time_s"] or 0.0)
            session["ran"] += len(swept.ran)
            session["skipped"] += len(swept.skipped)
            write_json_atomic(results_path, results)

    def _start_results(self, path: Path, args: argparse.Namespace, config: dict, data: Any,
                       settings: Mapping[str, dict]) -> dict:
        """The results so far when resuming (every finished run and checkpoint checked against ``settings``), else a fresh record."""
        description = getattr(data, "description", None)
        if args.resume and path.exists():
            results = read_results(path)
            if results.get("chapter", self.chapter) != self.chapter:
                raise SystemExit(f"{path} holds chapter {results.get('chapter')!r}'s results; use another --out")
            self._check_settings(results, path, args, config, description, settings)
            results.update(preset=args.preset, config={k: v for k, v in config.items() if k != "progress"},
                           dataset=description, seeds=sorted({*results.get("seeds", []), *args.seeds}))
            return results
        if args.resume:  # no results yet, but maybe interrupted runs' checkpoints
            self._check_settings({"variants": {}}, path, args, config, description, settings)
        elif path.exists():
            with contextlib.suppress(ValueError, OSError):
                earlier = sorted(read_results(path).get("variants", {}))
                if earlier:
                    print(f"[{self.chapter}] {path}: the finished runs of {', '.join(earlier)} are replaced by this "
                          "fresh run (--resume keeps them)")
        return {
            "chapter": self.chapter,
            "preset": args.preset,
            "config": {k: v for k, v in config.items() if k != "progress"},
            "dataset": description,
            "device": args.device,
            "seeds": list(args.seeds),
            "versions": versions(),
            "machine": machine(),
            "variants": {},
        }

    def _check_settings(self, results: dict, path: Path, args: argparse.Namespace, config: dict, description: Any,
                        settings: Mapping[str, dict]) -> None:
        """Refuse to resume runs made with other settings, or (``--rerun-changed``) forget them so they run again.

        Checked: every finished run in ``results`` (a run this session does not select is
        compared on the preset, its configuration and the data set), and the checkpoint folder
        and sweep record of every selected run not finished yet.
        """
        out = args.out
        changed: list[tuple[str, int, str, list[str], bool]] = []  # variant, seed, where, what, selected
        for variant, entry in results["variants"].items():
            for seed_text, run in entry["runs"].items():
                old = run.get("settings") or _legacy_settings(results, entry)
                selected = variant in settings and int(seed_text) in args.seeds
                new = settings[variant] if variant in settings else run_settings(
                    args.preset, config, description, old.get("configuration", {}))
                what = changes(old, new)
                if what:
                    changed.append((variant, int(seed_text), path.name, what, selected))
        for variant in settings:
            for seed in args.seeds:
                if str(seed) in results["variants"].get(variant, {}).get("runs", {}):
                    continue
                folder = _checkpoint_dir(out, variant, seed)
                if folder.is_dir() and any(p.name != RUN_FILE for p in folder.rglob("*")):
                    what = _what_changed(_owner_settings(folder), settings[variant])
                    if what:
                        changed.append((variant, seed, f"checkpoints in {folder}", what, True))
                record = out / "sweep" / variant / f"seed{seed}.json"
                if record.is_file():
                    with contextlib.suppress(ValueError, OSError):
                        what = _what_changed(read_results(record).get("config", {}).get("settings"), settings[variant])
                        if what:
                            changed.append((variant, seed, f"sweep record {record}", what, True))
        if not changed:
            return
        lines = "\n".join(f"  {v} seed {s} ({where}): {'; '.join(what)}" for v, s, where, what, _ in changed)
        unselected = sorted({f"{v} seed {s}" for v, s, _, _, selected in changed if not selected})
        if not args.rerun_changed or unselected:
            advice = (f"these runs are not selected in this run, so --rerun-changed cannot redo them: "
                      f"{', '.join(unselected)}; select them (--variants/--seeds) or use another --out"
                      if unselected and args.rerun_changed else
                      "run again with --rerun-changed to redo them from scratch with the present settings, "
                      "or use another --out (or the old settings) to keep them")
            raise SystemExit(f"{path}: --resume would mix runs made with other settings than the present ones:\n"
                             f"{lines}\n{advice}.")
        print(f"[{self.chapter}] --rerun-changed: these runs start again from scratch:\n{lines}")
        for variant, seed, _, _, _ in changed:
            entry = results["variants"].get(variant)
            if entry is not None and entry["runs"].pop(str(seed), None) is not None:
                if entry["runs"]:
                    _summarise(entry)
                else:
                    del results["variants"][variant]
            shutil.rmtree(_checkpoint_dir(out, variant, seed), ignore_errors=True)
            (out / "sweep" / variant / f"seed{seed}.json").unlink(missing_ok=True)

    @staticmethod
    def _own_checkpoints(out: Path, variant: str, seed: int, settings: dict, fresh: bool) -> None:
        """Tie the run's checkpoint folder to this run's settings (``run.json``); a fresh run empties it first.

        A fresh run starts from nothing: the checkpoints an earlier run left there would
        otherwise be resumed by the next ``--resume`` as if they were this run's.
        """
        folder = _checkpoint_dir(out, variant, seed)
        if fresh and folder.exists():
            shutil.rmtree(folder)
        write_json_atomic(folder / RUN_FILE, {"fingerprint": fingerprint(settings), "settings": settings})

    @staticmethod
    def _record(results: dict, variant: str, seed: int, run: dict, configuration: dict | None = None,
                settings: dict | None = None) -> None:
        """Store one run (with the settings it was made with); the variant's top-level fields summarise its seeds."""
        entry = results["variants"].setdefault(variant, {"runs": {}})
        if configuration:
            entry.setdefault("config", configuration)
        if settings is not None:
            run = {**run, "settings": settings, "fingerprint": fingerprint(settings)}
        entry["runs"][str(seed)] = run
        _summarise(entry)


def _summarise(entry: dict) -> None:
    """A variant's top-level fields from its runs: mean and std of the test accuracy, the first run's curves."""
    runs = list(entry["runs"].values())
    # A run without a test accuracy (chapter 01's gradient checks) is stored as it is.
    accuracies = [r["test_accuracy"] for r in runs if "test_accuracy" in r]
    if accuracies:
        entry["test_accuracy"] = float(np.mean(accuracies))
        entry["test_accuracy_std"] = float(np.std(accuracies))
    first = runs[0]
    for key in ("history", "gradient_flow"):
        if key in first:
            entry[key] = first[key]


def _checkpoint_dir(out: Path, variant: str, seed: int) -> Path:
    """Where the checkpoints of one (variant, seed) go, in this process or in a sweep job."""
    return Path(out) / "checkpoints" / f"{variant}_seed{seed}"


def _legacy_settings(results: Mapping[str, Any], entry: Mapping[str, Any]) -> dict:
    """The settings of a run recorded before runs carried their own: those of its results.json."""
    return run_settings(results.get("preset"), results.get("config", {}), results.get("dataset"), entry.get("config", {}))


def _owner_settings(folder: Path) -> dict | None:
    """The settings in a checkpoint folder's ``run.json``; None when there is none (an older minideep's run)."""
    try:
        return dict(json.loads((folder / RUN_FILE).read_text())["settings"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _what_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """``fingerprint.changes``, or one line saying that ``old`` settings were never recorded."""
    return ["no settings recorded (made by an older minideep)"] if old is None else changes(old, new)


# ----------------------------------------------------------------------------------------
# Acceptance checks (scripts/check_chapter_XX.py)
# ----------------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> Path:
    """A text file (a table) written atomically, ending in one newline."""
    return write_atomic(path, lambda handle: handle.write((text.rstrip("\n") + "\n").encode()))


def training_wall_time(results: Mapping[str, Any]) -> float:
    """Seconds spent in the runs of a results.json, all variants and seeds together."""
    return float(sum(run.get("wall_time_s", 0.0) for v in results["variants"].values() for run in v["runs"].values()))


def print_claims_ledger(script: str | Path, argv: Sequence[str], default_path: str | Path) -> int:
    """A chapter's check script: print the claims ledger of a results.json, one line per claim.

    Reads ``argv[0]`` (or ``default_path``), computes the ledger with the ``claims`` hook of the
    ``Experiment`` that the chapter script at ``script`` defines (the same function that writes
    ``claims.json`` and ``claims.md``), and prints each verdict beside ours and the paper's
    number, then the counts. A claim that differs is a finding, not a failure: the status is 1
    only when the ledger cannot be made or is malformed.
    """
    path = Path(argv[0] if argv else default_path)
    results = read_results(path)
    if results.get("preset") != "quick":
        print(f"note: {path} is a {results.get('preset')} run, not the quick preset; the verdicts are for information")
    experiment = chapter_experiment(script)
    try:
        claims = check_claims_ledger(experiment.claims(results), f"{path} claims")
    except (TypeError, ValueError, KeyError) as e:
        print(f"malformed ledger: {e}")
        return 1
    for c in claims:
        print(f"{c['verdict'].upper():10s}  {c['claim']}: ours {c['ours']}; paper {c['paper']} ({c['source']})")
    counts = {v: sum(c["verdict"] == v for c in claims) for v in ("reproduced", "differs", "not run")}
    print(", ".join(f"{n} {v}" for v, n in counts.items()))
    return 0


# ----------------------------------------------------------------------------------------
# One run as a sweep job
# ----------------------------------------------------------------------------------------

_CHAPTERS: dict[str, Experiment] = {}


def _chapter_experiment(script: str, chapter: str) -> Experiment:
    """The ``Experiment`` named ``chapter`` defined by the chapter script at ``script`` (imported once per process)."""
    if script not in _CHAPTERS:
        spec = importlib.util.spec_from_file_location(f"_minideep_chapter_{chapter}", script)
        if spec is None or spec.loader is None:
            raise ImportError(f"run_experiment_job: cannot import the chapter script {script}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # a chapter's dataclasses look their module up while it loads
        spec.loader.exec_module(module)
        found = [v for v in vars(module).values() if isinstance(v, Experiment) and v.chapter == chapter]
        if not found:
            raise ImportError(f"run_experiment_job: {script} defines no Experiment named {chapter!r}")
        _CHAPTERS[script] = found[0]
    return _CHAPTERS[script]


def chapter_experiment(script: str | Path) -> Experiment:
    """The ``Experiment`` of the chapter script at ``script`` (its chapter is the file's stem, ``03_vgg38``)."""
    return _chapter_experiment(str(Path(script).resolve()), Path(script).stem)


def run_experiment_job(run: Any) -> dict:
    """A ``minideep.jobs`` job: one (variant, seed) of a chapter, in whatever process runs it.

    ``run.config`` names the chapter, preset, data set and variant (the run's identity);
    ``run.settings`` holds the script's path, the device, the data folder, the output
    folder and whether to resume from a checkpoint. Returns ``run_variant``'s dict.
    """
    settings = run.settings
    experiment = settings.get("experiment") or _chapter_experiment(settings["script"], run.config["chapter"])
    args = argparse.Namespace(
        preset=run.config["preset"], dataset=run.config["dataset"], device=settings["device"],
        data_dir=None if settings["data_dir"] is None else Path(settings["data_dir"]), out=Path(settings["out"]),
        seeds=[run.seed], variants=[run.config["variant"]], resume=settings["resume"], no_progress=True, threads=None,
    )
    config = dict(experiment.presets[args.preset])
    config["progress"] = settings["progress"]
    data = experiment.load_data(args, config) if experiment.load_data else None
    variant = run.config["variant"]
    context = RunContext(
        variant=variant, seed=run.seed, preset=args.preset, config=config, device=args.device, data=data,
        out=args.out, checkpoint_dir=_checkpoint_dir(args.out, variant, run.seed), resume=args.resume,
        configuration=dict(run.config.get("configuration", {})),
    )
    return experiment.run_variant(context)
