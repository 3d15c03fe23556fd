"""Chapter 05's claims ledger on a results.json: one line per claim of the paper, with its verdict.

    python chapters/05_skip_to_head.py --threads 1 --out runs/05_skip_to_head     # the quick preset
    python scripts/check_chapter_05.py runs/05_skip_to_head/results.json    # default: docs/figures/05/results.json

The verdicts (reproduced / differs / not run) are computed by the chapter's ``claims`` hook
from the numbers in results.json (``minideep.experiment.print_claims_ledger``): the same
function that writes ``claims.json`` and ``claims.md`` for the page. A claim that differs is
a finding, not a failure; the exit status is 1 only when the ledger is malformed.
"""
from __future__ import annotations

import sys
from pathlib import Path

from minideep.experiment import print_claims_ledger

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    return print_claims_ledger(ROOT / "chapters" / "05_skip_to_head.py", argv, ROOT / "docs" / "figures" / "05" / "results.json")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
