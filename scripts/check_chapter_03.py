"""Chapter 03's claims ledger on a results.json: every headline claim of Pricope (2021) and the coursework.

    python chapters/03_vgg38.py --out runs/03_vgg38      # the quick preset
    python scripts/check_chapter_03.py runs/03_vgg38/results.json

Prints the chapter's ledger (``chapters/03_vgg38.py``'s ``claims`` hook, the same entries the
run writes to claims.json: claim, paper, ours, verdict, evidence), judged on the numbers in
that file. Exits 1 if one of the quick preset's core claims is not reproduced: VGG38 at
chance, its gradient vanishing, BN fixing it, residual connections alone fixing it. The
others may honestly differ (or not run) without failing the check.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from minideep.results import read_results

ROOT = Path(__file__).resolve().parents[1]
CORE = ("Plain VGG38 stays at chance", "In plain VGG38 the gradient vanishes on the way to the input",
        "BN fixes the gradient and VGG38 BN learns", "Residual connections alone fix VGG38")


def load_chapter():
    spec = importlib.util.spec_from_file_location("chapter_03", ROOT / "chapters" / "03_vgg38.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "runs/03_vgg38/results.json")
    results = read_results(path)
    failed = 0
    for entry in load_chapter().claims(results):
        core = entry["claim"] in CORE
        failed += core and entry["verdict"] != "reproduced"
        print(f"{entry['verdict'].upper():10s} {'*' if core else ' '} {entry['claim']}: ours {entry['ours']} "
              f"(paper {entry['paper']}); {entry['evidence']}")
    print("* core claims of the quick preset" + (f": {failed} not reproduced" if failed else ": all reproduced"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
