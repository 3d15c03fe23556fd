"""The VGG38 step under glibc's default allocator and with freed memory kept (minideep.allocator).

    python benchmarks/allocator.py                  # 3 processes per setting, 2 threads each side
    python benchmarks/allocator.py --processes 1 --out /tmp/alloc

Each process runs one framework alone, as a chapter script does: it sets the allocator (or
not), builds the VGG38 step (batch 100, Adam), warms up, and times ``--steps`` steps back to
back (the median step), counting the minor page faults per step. The peak memory (RSS growth,
``memory.py``) is measured in fresh processes under each setting. Frameworks and settings
alternate process by process, so that a drift of the machine touches all alike. Writes
``benchmarks/results/allocator.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from memory import in_fresh_process  # noqa: E402
from minideep import blas_env  # noqa: E402

SETTINGS = ("default", "kept")


def worker(framework: str, setting: str, threads: int, steps: int) -> dict:
    """One process: ``framework``'s step under ``setting``, ``steps`` timed steps back to back."""
    import time  # noqa: PLC0415

    from minideep import allocator  # noqa: PLC0415

    if setting == "kept" and not allocator.keep_freed_memory():
        raise SystemExit("allocator: this C library has no mallopt (not glibc)")
    from models import vgg_step  # noqa: PLC0415

    step = vgg_step(framework, 5, threads)
    for _ in range(2):
        step()
    times, faults = [], []
    for _ in range(steps):
        before, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return {"framework": framework, "setting": setting, "threads": threads, "step_s": statistics.median(times),
            "steps_s": times, "faults_per_step": statistics.median(faults)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=3, help="processes per setting")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per process")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--keep-openblas-env", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "SETTING"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.threads, args.steps)))
        return 0
    if argv is None and not args.keep_openblas_env:
        blas_env.restart_without_pins("allocator")  # the measured processes inherit the environment
    from minideep.results import markdown_table, write_atomic, write_json_atomic  # noqa: PLC0415

    load_start = [round(v, 2) for v in os.getloadavg()]
    records: list[dict] = []
    for _ in range(args.processes):
        for framework in ("minideep", "torch"):
            for setting in SETTINGS:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", framework, setting,
                       "--threads", str(args.threads), "--steps", str(args.steps), "--keep-openblas-env"]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=HERE)
                record = json.loads(out.stdout.strip().splitlines()[-1])
                record["memory_mib"] = in_fresh_process(framework, args.threads, setting == "kept")["growth_mib"]
                records.append(record)
                print(json.dumps(record), flush=True)
    load_end = [round(v, 2) for v in os.getloadavg()]
    rows = []
    for setting in SETTINGS:
        med = {fw: lambda key, fw=fw, setting=setting: statistics.median(r[key] for r in records
                                                        if r["setting"] == setting and r["framework"] == fw)
               for fw in ("minideep", "torch")}
        rows.append({
            "allocator": {"default": "glibc default", "kept": "freed memory kept"}[setting],
            "processes per framework": args.processes,
            "minideep ms": f"{med['minideep']('step_s') * 1e3:.0f}",
            "PyTorch ms": f"{med['torch']('step_s') * 1e3:.0f}",
            "minideep / PyTorch": f"{med['minideep']('step_s') / med['torch']('step_s'):.2f}x",
            "page faults per step (minideep / PyTorch)":
                f"{med['minideep']('faults_per_step'):,.0f} / {med['torch']('faults_per_step'):,.0f}",
            "peak memory MiB (minideep / PyTorch)":
                f"{med['minideep']('memory_mib'):.0f} / {med['torch']('memory_mib'):.0f}",
        })
    text = "\n".join([
        "## The VGG38 step with freed memory kept for the next step", "",
        f"Batch 100, Adam, {args.threads} threads; each framework alone in its process, as a chapter script runs; "
        f"medians over {args.processes} processes per framework and setting, each the median of {args.steps} steps "
        f"back to back; load average {load_start[0]} at the start, "
        f"{load_end[0]} at the end; `python benchmarks/allocator.py`.", "",
        markdown_table(rows), ""])
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "allocator.json", {"records": records, "threads": args.threads,
                                                    "load_average_start": load_start, "load_average_end": load_end,
                                                    "openblas_kernel": blas_env.openblas_kernel()})
    write_atomic(args.out / "allocator.md", lambda f: f.write(text.encode()))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
