"""Check chapter 05's quick-preset claims on a results.json (issue 10 acceptance).

    python chapters/05_skip_to_head.py --out runs/05_skip_to_head      # the quick preset, about 8 minutes
    python scripts/check_chapter_05.py runs/05_skip_to_head/results.json

Claims, on the bundled Fashion-MNIST subset (10 classes, chance = 10%): the deep baseline is
stuck near chance while the concatenation and summation nets of the same depth learn.
  1. baseline_69x3 ends at chance: test and end training accuracy within 3 points of 10%.
  2. concat_69x3 and sum_69x3 learn: test accuracy at least 40% (4x chance).
  3. Why: at initialisation the gradient reaching the first conv layer's output in
     baseline_69x3 is under 1e-4 of the gradient at the logits, while the direct paths keep
     it above 1e-2 of it in concat_69x3 and sum_69x3.
  4. The run took under 10 minutes (wall time of all its variants).
Prints PASS/FAIL per claim; exits 1 if any fails.
"""
from __future__ import annotations

import sys

from minideep.experiment import check_claims, training_wall_time

DEEP = ("baseline_69x3", "concat_69x3", "sum_69x3")


def _first_run(results: dict, name: str) -> dict:
    return next(iter(results["variants"][name]["runs"].values()))


def check(results: dict) -> list[tuple[str, bool, str]]:
    """(claim, passed, detail) for each claim; a missing variant fails its claims."""
    variants = results["variants"]
    missing = [n for n in DEEP if n not in variants]
    if missing:
        return [(f"variants {', '.join(DEEP)} present", False, f"missing {missing}; run the quick preset's defaults")]
    chance = 1.0 / results["dataset"]["classes"]
    outcomes = []

    base = _first_run(results, "baseline_69x3")
    test, train = variants["baseline_69x3"]["test_accuracy"], base["end_train_accuracy"]
    outcomes.append(("baseline_69x3 stuck at chance (test and train within 3 points)",
                     abs(test - chance) <= 0.03 and abs(train - chance) <= 0.03,
                     f"test {test:.1%}, end train {train:.1%}, chance {chance:.1%}"))

    for name in ("concat_69x3", "sum_69x3"):
        acc = variants[name]["test_accuracy"]
        outcomes.append((f"{name} learns: test accuracy >= 40%", acc >= 0.40,
                         f"test {acc:.1%}, end train {_first_run(results, name)['end_train_accuracy']:.1%}"))

    for name, bound in (("baseline_69x3", None), ("concat_69x3", 1e-2), ("sum_69x3", 1e-2)):
        norms = _first_run(results, name)["chain_rule_at_init"]["grad_norms"]
        ratio = norms[1] / norms[-1]
        if bound is None:
            outcomes.append((f"{name} at init: ||dL/dh_conv1|| < 1e-4 ||dL/dh_logits||", ratio < 1e-4, f"ratio {ratio:.2g}"))
        else:
            outcomes.append((f"{name} at init: ||dL/dh_conv1|| > 1e-2 ||dL/dh_logits||", ratio > bound, f"ratio {ratio:.2g}"))

    wall = training_wall_time(results)
    outcomes.append(("whole run under 10 minutes", wall < 600, f"{wall:.0f} s of training runs ({len(variants)} networks)"))
    return outcomes


def main(argv: list[str]) -> int:
    return check_claims(argv, "runs/05_skip_to_head/results.json", check)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
