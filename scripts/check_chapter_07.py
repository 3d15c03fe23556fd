"""Chapter 07's claims ledger on a results.json: one line per claim of the paper, with its verdict.

    python chapters/07_resnet_tuning.py --threads 1 --out runs/07_resnet_tuning     # the quick preset
    python scripts/check_chapter_07.py runs/07_resnet_tuning/results.json    # or docs/figures/07/results.json

The verdicts (reproduced / differs / not run) are computed by the chapter's ``claims``
hook from the numbers in results.json, the same function that writes ``claims.json`` and
``claims.md`` for the page: this script only prints them. A claim that differs is
information, not a failure; the exit status is 1 only when the ledger is malformed (an
entry without its fields or with another verdict).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from minideep.experiment import check_claims_ledger, read_results

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "chapters" / "07_resnet_tuning.py"
DEFAULT_PATH = Path("runs/07_resnet_tuning/results.json")


def load_chapter():
    """The chapter script as a module (its name starts with a digit, so no plain import)."""
    spec = importlib.util.spec_from_file_location("chapter_07_resnet_tuning", CHAPTER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT_PATH
    results = read_results(path)
    if results.get("preset") != "quick":
        print(f"note: {path} is a {results.get('preset')} run, not the quick preset; the verdicts are for information")
    try:
        claims = check_claims_ledger(load_chapter().claims(results), f"{path} claims")
    except (TypeError, ValueError) as e:
        print(f"malformed ledger: {e}")
        return 1
    for c in claims:
        print(f"{c['verdict'].upper():10s}  {c['claim']}: ours {c['ours']}; paper {c['paper']} ({c['source']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
