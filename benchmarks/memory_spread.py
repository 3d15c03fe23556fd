"""The spread of the peak-memory measurement: memory.py repeated in fresh processes.

    python benchmarks/memory_spread.py              # 5 processes per framework and thread count
    python benchmarks/memory_spread.py --repeats 3 --out /tmp/mem

``run.py`` measures the VGG38 step's peak memory once per framework and thread count; one
process's resident-set growth varies by a few percent from run to run (the allocator's and the
BLAS library's pools), which is as large as the difference between the two frameworks. This
repeats ``memory.py`` and writes every value, the minimum, median and maximum, to
``benchmarks/results/memory-spread.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from minideep import blas_env  # noqa: E402
from memory import in_fresh_process  # noqa: E402
from minideep.results import markdown_table, write_atomic, write_json_atomic  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--keep-openblas-env", action="store_true")
    args = parser.parse_args(argv)
    if argv is None and not args.keep_openblas_env:
        blas_env.restart_without_pins("memory_spread")  # the measured processes inherit the environment
    rows, records = [], []
    for threads in (int(t) for t in args.threads.split(",")):
        # Interleaved, so that a drift of the machine touches both frameworks alike.
        values: dict[str, list[float]] = {"minideep": [], "torch": []}
        for _ in range(args.repeats):
            for framework in values:
                values[framework].append(float(in_fresh_process(framework, threads)["growth_mib"]))
        for framework, vals in values.items():
            records.append({"framework": framework, "threads": threads, "growth_mib": vals})
            rows.append({"framework": framework, "threads": threads, "processes": len(vals),
                         "min MiB": f"{min(vals):.1f}", "median MiB": f"{statistics.median(vals):.1f}",
                         "max MiB": f"{max(vals):.1f}"})
    text = "\n".join(["## VGG38 step peak memory, repeated in fresh processes", "",
                      "RSS growth over two training steps (`memory.py`), each value a process of its own, "
                      "the frameworks interleaved; `python benchmarks/memory_spread.py`.", "",
                      markdown_table(rows), ""])
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "memory-spread.json", {"records": records, "openblas_kernel": blas_env.openblas_kernel()})
    write_atomic(args.out / "memory-spread.md", lambda f: f.write(text.encode()))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
