"""Check chapter 03's quick-preset claims on a results.json (issue 6 acceptance).

    python chapters/03_vgg38.py --out runs/03_vgg38      # the quick preset, about 10 minutes
    python scripts/check_chapter_03.py runs/03_vgg38/results.json

Claims, on the bundled Fashion-MNIST subset (10 classes, chance = 10%):
  1. VGG38 (plain) ends at chance accuracy, within 2 points.
  2. VGG38's first-layer mean |grad| is at least 100 times smaller than its last layer's.
  3. VGG08, VGG38+BN and VGG38+BN+ResNet end well above chance: at least 30% test accuracy.
  4. The run took under 10 minutes (wall time of all its variants).
Prints PASS/FAIL per claim; exits 1 if any fails.
"""
from __future__ import annotations

import sys

from minideep.experiment import check_claims, training_wall_time


def check(results: dict) -> list[tuple[str, bool, str]]:
    variants = results["variants"]
    chance = 1.0 / results["dataset"]["classes"]
    outcomes = []

    acc = variants["vgg38"]["test_accuracy"]
    outcomes.append(("VGG38 at chance (within 2 points)", abs(acc - chance) <= 0.02,
                     f"test accuracy {acc:.1%}, chance {chance:.1%}"))

    flow = variants["vgg38"]["gradient_flow"][-1]
    first, last = list(flow.values())[0], list(flow.values())[-1]
    outcomes.append(("VGG38 first-layer mean |grad| <= last / 100", first * 100 <= last,
                     f"first {first:.3g}, last {last:.3g}, ratio {first / last:.3g}"))

    for name in ("vgg08", "vgg38_bn", "vgg38_bn_res"):
        acc = variants[name]["test_accuracy"]
        outcomes.append((f"{name} test accuracy >= 30%", acc >= 0.30, f"{acc:.1%}"))

    wall = training_wall_time(results)
    outcomes.append(("whole run under 10 minutes", wall < 600, f"{wall:.0f} s of training runs"))
    return outcomes


def main(argv: list[str]) -> int:
    return check_claims(argv, "runs/03_vgg38/results.json", check)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
