"""Chapter 03's BN-vs-depth comparison run longer: VGG08 and VGG38 BN for more epochs of the quick preset.

    python scripts/longer_03.py --epochs 12 --seeds 0 --out docs/figures/03/longer

Pricope finds VGG38 with BN no better than VGG08 (46.78% vs 49.95% after 100 CIFAR-100
epochs); the quick preset's three epochs put VGG38 BN ahead. This runs the chapter itself
(its networks, data, optimizer and cosine schedule, now over ``--epochs``) for the two
networks, and writes the run's ``results.json`` and ``longer.md``: validation accuracy per
epoch and the test accuracy, side by side, so the page can show whether the gap closes
when the networks train longer. Everything else is the quick preset's.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minideep import blas_env  # noqa: E402
from minideep.experiment import chapter_experiment  # noqa: E402
from minideep.results import markdown_table, read_results, write_atomic  # noqa: E402

VARIANTS = ("vgg08", "vgg38_bn")


def table(results: dict) -> str:
    """Validation accuracy after each epoch (mean over the seeds run), then the test accuracy, per network."""
    variants = results["variants"]
    epochs = results["config"]["epochs"]
    rows = []
    for epoch in range(1, epochs + 1):
        row = {"accuracy %": f"validation, epoch {epoch}"}
        for name in VARIANTS:
            vals = [r["history"][epoch - 1]["val_acc"] for r in variants[name]["runs"].values()]
            row[name] = f"{100 * sum(vals) / len(vals):.1f}"
        rows.append(row)
    test = {"accuracy %": "test (best-validation epoch)"}
    for name in VARIANTS:
        accs = [r["test_accuracy"] for r in variants[name]["runs"].values()]
        test[name] = f"{100 * sum(accs) / len(accs):.1f}"
    rows.append(test)
    return markdown_table(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--preset", default="quick", help="the chapter's preset to lengthen (smoke for a test)")
    parser.add_argument("--seeds", nargs="+", default=["0"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--from-results", action="store_true", help="only rewrite longer.md from --out's results.json")
    args = parser.parse_args(argv)
    if argv is None:
        blas_env.restart_without_pins("scripts/longer_03.py")  # the same kernel as the chapter's own runs
    if not args.from_results:
        chapter = chapter_experiment(ROOT / "chapters" / "03_vgg38.py")
        # The one change, on a copy (the chapter's own presets stay as they are); results.json records it.
        presets = {**chapter.presets, args.preset: {**chapter.presets[args.preset], "epochs": args.epochs}}
        dataclasses.replace(chapter, presets=presets).main(["--preset", args.preset, "--variants", *VARIANTS, "--seeds", *args.seeds,
                                 "--out", str(args.out), "--no-progress"])
    text = table(read_results(args.out / "results.json"))
    write_atomic(args.out / "longer.md", lambda f: f.write(text.encode()))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
