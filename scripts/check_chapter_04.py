"""Check chapter 04's quick-preset claims on a results.json (issue 9 acceptance).

    python chapters/04_highway.py --out runs/04_highway      # the quick preset, a few minutes
    python scripts/check_chapter_04.py runs/04_highway/results.json

Claims (training loss = mean cross-entropy over the last epoch's batches, the best run of
the learning-rate search; "at init" = the same network before its first step):
  1. Every plain net of depth >= 50 fails to reduce its training loss: it ends above 90% of its loss at init.
  2. Every highway net of depth >= 50 does: it ends below 75% of its loss at init.
  3. Depth does not hurt the highway net: at depth 50 it ends within 2x of the 10-layer highway net's loss.
     (At depth 100, eight epochs are too few: the quick run's 100-layer highway net is still falling, see the page.)
  4. The shallow plain net is trainable (the failure is depth's): plain_10 ends below 50% of its loss at init.
  5. At initialisation, depth >= 50, the gradient reaching the input of the plain net is at least
     100x smaller (relative to the output's) than the highway net's: the carry path keeps the product of gains.
  6. The analysis of the deep highway net is there: one gate row and one lesion per highway layer.
  7. The conv highway nets have the official topology's parameter counts (38,986 / 151,690; Table 1: 39K / 151K).
  8. The run took under 10 minutes (wall time of all its variants).
Prints PASS/FAIL per claim; exits 1 if any fails.
"""
from __future__ import annotations

import sys

from minideep.experiment import check_claims, training_wall_time


def _deep(variants: dict, family: str) -> list[tuple[str, dict]]:
    """(name, first run) of every variant of the family (default init, run's data) with depth >= 50."""
    out = []
    for name, entry in variants.items():
        run = next(iter(entry["runs"].values()))
        if (run.get("family") == family and run.get("depth", 0) >= 50 and run.get("init") == "glorot_uniform"
                and "cifar100" not in name):
            out.append((name, run))
    return out


def _loss_ratio(run: dict) -> float:
    if run.get("all_diverged"):
        return float("inf")
    return run["final_train_loss"] / run["loss_at_init"]


def check(results: dict) -> list[tuple[str, bool, str]]:
    variants = results["variants"]
    outcomes = []
    plains, highways = _deep(variants, "plain"), _deep(variants, "highway")
    if not plains or not highways:
        outcomes.append(("plain and highway nets of depth >= 50 were run", False,
                         f"plain: {[n for n, _ in plains]}, highway: {[n for n, _ in highways]}"))
    for name, run in plains:
        ratio = _loss_ratio(run)
        outcomes.append((f"{name} fails to reduce the training loss (final > 0.9 x init)", ratio > 0.9,
                         f"{run['loss_at_init']:.3f} -> {run.get('final_train_loss', float('inf')):.3f} (x{ratio:.2f})"))
    for name, run in highways:
        ratio = _loss_ratio(run)
        outcomes.append((f"{name} reduces the training loss (final < 0.75 x init)", ratio < 0.75,
                         f"{run['loss_at_init']:.3f} -> {run.get('final_train_loss', float('inf')):.3f} (x{ratio:.2f})"))

    shallow = next(iter(variants.get("highway_10", {}).get("runs", {}).values()), None)
    if shallow is not None and "final_train_loss" in shallow:
        for name, run in [(n, r) for n, r in highways if r["depth"] == 50]:
            final = run.get("final_train_loss", float("inf"))
            outcomes.append((f"{name} ends within 2x of highway_10's training loss", final <= 2 * shallow["final_train_loss"],
                             f"{final:.3f} vs {shallow['final_train_loss']:.3f}"))
    else:
        outcomes.append(("highway_10 was run (the shallow reference)", False, "not in results"))

    plain10 = next(iter(variants.get("plain_10", {}).get("runs", {}).values()), None)
    if plain10 is not None and not plain10.get("all_diverged"):
        ratio = _loss_ratio(plain10)
        outcomes.append(("plain_10 reduces the training loss (final < 0.5 x init)", ratio < 0.5,
                         f"{plain10['loss_at_init']:.3f} -> {plain10['final_train_loss']:.3f} (x{ratio:.2f})"))
    else:
        outcomes.append(("plain_10 was run and trained", False, "missing or diverged"))

    by_depth = {run["depth"]: run for _, run in highways}
    for name, plain in plains:
        highway = by_depth.get(plain["depth"])
        if highway is None or "chain_rule_at_init" not in plain or "chain_rule_at_init" not in highway:
            continue
        p, h = plain["chain_rule_at_init"]["products"][0], highway["chain_rule_at_init"]["products"][0]
        outcomes.append((f"depth {plain['depth']} at init: highway's |dL/dx|/|dL/dout| >= 100x plain's", h >= 100 * p,
                         f"plain {p:.3g}, highway {h:.3g} (x{h / p if p else float('inf'):.3g})"))

    analysed = [(name, run) for name, run in highways if "analysis" in run]
    if not analysed:
        outcomes.append(("a deep highway net was analysed (gates, lesions)", False, "no analysis in results"))
    for name, run in analysed:
        n_highway = run["depth"] - 1
        gates, lesion = run["analysis"]["gates"], run["analysis"]["lesion_test"]
        ok = len(gates["mean_gate"]) == n_highway and len(lesion["accuracies"]) == n_highway
        outcomes.append((f"{name}: gates and lesions of all {n_highway} highway layers", ok,
                         f"{len(gates['mean_gate'])} gate rows, {len(lesion['accuracies'])} lesions; lesioned test "
                         f"accuracy {min(lesion['accuracies']):.1%} .. {max(lesion['accuracies']):.1%} "
                         f"(intact {lesion['baseline']:.1%})"))

    from minideep.models.highway import ConvHighwayNet  # noqa: PLC0415

    counts = {w: ConvHighwayNet(w).num_parameters() for w in (16, 32)}
    outcomes.append(("conv highway nets: 38,986 / 151,690 parameters", counts == {16: 38_986, 32: 151_690},
                     f"width 16: {counts[16]:,}, width 32: {counts[32]:,}"))

    wall = training_wall_time(results)
    outcomes.append(("whole run under 10 minutes", wall < 600, f"{wall:.0f} s of training runs"))
    return outcomes


def main(argv: list[str]) -> int:
    return check_claims(argv, "runs/04_highway/results.json", check)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
