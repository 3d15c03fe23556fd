"""Do two chapter runs agree? Every trained number of the runs both results.json files hold, compared.

    python chapters/04_highway.py                                     # your run, into runs/04_highway
    python scripts/compare_runs.py docs/figures/04/results.json runs/04_highway/results.json

For each (variant, seed) run in both files, every number in the run's record (accuracies,
losses, histories, gradient statistics, chain-rule probes) is compared by its relative
difference |a - b| / max(|a|, |b|); strings must be equal. Timings and the machine's state
(``*_s``, ``time``, ``load_average``, a data file's path: ``minideep.results.NOT_RESULTS``)
are not results and are skipped. Prints how many values were compared, the largest
difference, and the keys that differ by more than ``--tolerance`` (default 1e-9: equal up to
float64 summation noise); exits 1 if any does, or if the two files share no run.

Two runs of the same code on the same data agree bit for bit on one machine. Across machines
they can too: the benchmarks page lists the chapters' runs repeated on another CPU.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minideep.results import EQUAL_WITHIN, compare_runs, read_results  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path, help="a results.json (the committed run, say)")
    parser.add_argument("second", type=Path, help="another results.json (your run)")
    parser.add_argument("--tolerance", type=float, default=EQUAL_WITHIN, help="largest relative difference called equal")
    parser.add_argument("--show", type=int, default=10, help="how many differing keys to print")
    args = parser.parse_args(argv)
    report = compare_runs(read_results(args.first), read_results(args.second), args.tolerance)
    if not report["runs"]:
        print(f"compare_runs: {args.first} and {args.second} share no (variant, seed) run")
        return 1
    over = report["beyond"]
    print(f"{len(report['runs'])} runs in both, {report['compared']} values compared; largest relative difference "
          f"{report['largest']:.3g}; {len(over)} beyond {args.tolerance:g}")
    for d, key, a, b in over[: args.show]:
        print(f"  {key}: {a!r} vs {b!r} (relative difference {d:.3g})")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
