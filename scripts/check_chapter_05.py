"""Chapter 05's claims ledger, computed from a results.json (the chapter's ``claims`` hook, printed).

    python chapters/05_skip_to_head.py --threads 1 --out runs/05_skip_to_head      # the quick preset
    python scripts/check_chapter_05.py runs/05_skip_to_head/results.json    # default: docs/figures/05/results.json

Prints one line per claim of the paper: its verdict (reproduced / differs / not run), the
paper's number and ours, as ``claims.json`` holds them. The verdicts are the chapter's
``claims(results)``, so they are always computed from the file, never typed. Exits 1 if the
ledger is malformed (a missing field, a verdict outside the three), else 0: a claim that
differs is a finding, not a failure.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from minideep.results import check_claims_ledger, read_results

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "chapters" / "05_skip_to_head.py"
DEFAULT = ROOT / "docs" / "figures" / "05" / "results.json"


def chapter():
    """The chapter script as a module (it runs nothing when imported)."""
    spec = importlib.util.spec_from_file_location("chapter_05", CHAPTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ledger(results: dict) -> list[dict]:
    """The checked claims of results."""
    return check_claims_ledger(chapter().claims(results), "chapter 05 claims")


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT
    try:
        claims = ledger(read_results(path))
    except (ValueError, KeyError, TypeError) as e:
        print(f"FAIL  {path}: the claims ledger could not be made: {e}")
        return 1
    for c in claims:
        print(f"{c['verdict']:<10}  {c['claim']}: paper {c['paper']}; ours {c['ours']}")
    counts = {v: sum(c["verdict"] == v for c in claims) for v in ("reproduced", "differs", "not run")}
    print(", ".join(f"{n} {v}" for v, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
