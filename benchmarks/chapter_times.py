"""Each chapter's quick preset: its wall time, read from the committed run, against the 10-minute budget.

    python benchmarks/chapter_times.py            # writes benchmarks/results/chapter-times.md (and .json)
    python benchmarks/chapter_times.py --figures DIR --out OUT   # the same for fresh runs in DIR/0N/

Reads ``docs/figures/0N/results.json`` of every chapter (the run its page comes from), never
a retyped number: the command's wall time (data, runs, summaries and figures; Python's start
and imports not included), the runs it made, the threads and workers, the load average at
its start and end, and the OpenBLAS kernel. Where the committed run used more seeds than the
chapter's default command (chapter 03 commits three, its default runs one), the default
command's time is estimated from the committed runs of the default seeds plus the
command's overhead, and marked as an estimate.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minideep.experiment import chapter_experiment  # noqa: E402
from minideep.results import compare_runs, markdown_table, write_atomic, write_json_atomic  # noqa: E402

BUDGET_S = 600.0
CHAPTERS = ("01_autodiff", "02_chain_rule", "03_vgg38", "04_highway", "05_skip_to_head", "06_init_bn_arch",
            "07_resnet_tuning")


def default_seeds(chapter: str) -> list[int]:
    """The seeds ``python chapters/<chapter>.py`` runs without arguments (its quick preset)."""
    return list(chapter_experiment(ROOT / "chapters" / f"{chapter}.py").default_seeds.get("quick", [0]))


def timing(chapter: str, results: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """One row: the committed command's time and, if it ran other seeds than the default, the default's estimate."""
    session = results.get("sweep") or {}
    runs = {(name, seed): run.get("wall_time_s") or 0.0 for name, entry in results["variants"].items()
            for seed, run in entry.get("runs", {}).items()}
    command = session.get("wall_time_s")
    run_total = sum(runs.values())
    committed = sorted(int(s) for s in results["seeds"])
    row: dict[str, Any] = {
        "chapter": chapter[:2], "preset": results["preset"], "data": (results.get("dataset") or {}).get("name"),
        "seeds": committed, "runs": len(runs), "workers": session.get("workers"),
        "threads": session.get("threads_per_run"),
        "command_s": command, "runs_s": run_total,
        "load_start": session.get("load_average_start"), "load_end": session.get("load_average_end"),
        "openblas_kernel": (results.get("machine") or {}).get("openblas_kernel"),
        "cpu": (results.get("machine") or {}).get("cpu"),  # recorded since session 5; older runs lack it
        "git": (results.get("versions") or {}).get("git"),
        "merged": bool(results.get("merged_from") or results.get("sessions")),
    }
    if committed != sorted(seeds) and command is not None and set(seeds) <= set(committed):
        default_runs = sum(t for (_, seed), t in runs.items() if int(seed) in seeds)
        row["default_s"], row["default_estimated"] = default_runs + (command - run_total) / max(1, session.get("workers") or 1), True
    else:
        row["default_s"], row["default_estimated"] = command, False
    return row


def agreement(committed: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
    """How the fresh run's numbers compare with the committed run's, for the runs both hold."""
    report = compare_runs(committed, fresh)
    beyond = report["beyond"]
    return {"runs": report["runs"], "compared": report["compared"], "beyond": len(beyond),
            "largest": report["largest"] if report["largest"] != float("inf") else None,
            "differences": [{"key": key, "committed": a, "fresh": b, "relative_difference": d}
                            for d, key, a, b in beyond[:20]]}


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def markdown(rows: list[dict[str, Any]], source: str | None = None) -> str:
    """The table; ``source`` says where the runs came from when they are not the committed ones."""
    table, kind = [], "committed " if source is None else ""
    for r in rows:
        default = _minutes(r["default_s"]) + (" (estimate)" if r["default_estimated"] else "")
        budget = "-" if r["default_s"] is None else ("met" if r["default_s"] <= BUDGET_S else "over")
        load = "-" if not r["load_start"] else f"{r['load_start'][0]:.1f} -> {r['load_end'][0]:.1f}" if r["load_end"] else "-"
        table.append({
            "chapter": r["chapter"], f"{kind}run": f"{r['runs']} runs, seeds {', '.join(map(str, r['seeds']))}",
            "workers x threads": f"{r['workers']} x {r['threads']}" if r["threads"] else f"{r['workers']} x -",
            f"{kind}command": _minutes(r["command_s"]) + (" (merged from several processes)" if r["merged"] else ""),
            "default command": default, "10-min budget": budget, "load (1 min) start -> end": load,
            "OpenBLAS": r["openblas_kernel"] or "-", "CPU": r.get("cpu") or "not recorded",
        })
        if "agreement" in r:
            a = r["agreement"]
            table[-1]["numbers vs the committed run"] = (
                f"equal ({a['compared']:,} values, {len(a['runs'])} runs)" if not a["beyond"]
                else f"{a['beyond']:,} of {a['compared']:,} values differ ("
                + (f"largest relative difference {a['largest']:.2g})" if a["largest"] is not None else "some are missing)"))
    if source is None:
        source = "Read from each chapter's committed `docs/figures/0N/results.json` by `python benchmarks/chapter_times.py`. "
    return "\n".join([
        "## Each chapter's quick preset on the 2-core machine",
        "",
        source + "The command's time covers data, runs, tables and figures (not Python's start). The default command is "
        "`python chapters/0N_name.py` with no arguments.",
        "",
        markdown_table(table),
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--compare-with", type=Path, default=None, metavar="FIGURES",
                        help="also compare each run's numbers with FIGURES/0N/results.json (scripts/compare_runs.py)")
    args = parser.parse_args(argv)
    committed = args.figures.resolve() == (ROOT / "docs" / "figures").resolve()
    source = None if committed else (
        "Read by `python benchmarks/chapter_times.py --figures DIR` from fresh runs of each chapter's default command "
        "(`python chapters/0N_name.py --out DIR/0N`, one after another on a quiet machine); those runs are not "
        "committed, the `chapter-times.json` beside this table keeps what was read from them. ")
    rows = []
    for chapter in CHAPTERS:
        path = args.figures / chapter[:2] / "results.json"
        if path.exists():
            results = json.loads(path.read_text())
            rows.append(timing(chapter, results, default_seeds(chapter)))
            other = args.compare_with / chapter[:2] / "results.json" if args.compare_with else None
            if other is not None and other.exists():
                rows[-1]["agreement"] = agreement(json.loads(other.read_text()), results)
    text = markdown(rows, source)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "chapter-times.json", rows)
    write_atomic(args.out / "chapter-times.md", lambda f: f.write(text.encode()))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
