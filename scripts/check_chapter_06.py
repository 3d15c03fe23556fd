"""Chapter 06's claims ledger on a results.json: one line per claim of the paper, with its verdict.

    python chapters/06_init_bn_arch.py --threads 1 --out runs/06_init_bn_arch     # the quick preset
    python scripts/check_chapter_06.py runs/06_init_bn_arch/results.json    # default: runs/06_init_bn_arch/results.json

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
    return print_claims_ledger(ROOT / "chapters" / "06_init_bn_arch.py", argv, Path("runs/06_init_bn_arch/results.json"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
