"""Check chapter 06's quick-preset claims on a results.json (issue 11 acceptance).

    python chapters/06_init_bn_arch.py --out runs/06_init_bn_arch   # the quick preset, 24 runs
    python scripts/check_chapter_06.py runs/06_init_bn_arch/results.json

The issue's claims (exit status 1 if one fails):
  1. The whole 2 x 2 x 2 grid ran, three seeds each, every run with its full per-epoch
     history and its gradient flow at initialisation.
  2. The quick preset still shows BN's effect on Tiny-YOLO's training: for He and for
     Glorot, Tiny-YOLO with BN ends with a mean training accuracy at least 10 points above
     Tiny-YOLO without BN, and its worst run above the best run without BN.
  3. The run took under 10 minutes (wall time of all its runs).
  4. The paper-size networks have the paper's parameter counts: Tiny-YOLO 10,311,833 (BN)
     and 10,307,257, ResNet26 11,237,413 (BN) exactly; ResNet26 without BN 128 below
     11,227,813 (see minideep/models/resnet26.py for why).

The paper's three findings, checked on the same run and reported as AGREES or DIFFERS
(the quick preset is 5 epochs on 1,000 images, not 50 epochs of Food-101, so a
difference is information, not a failure):
  A. BN gives consistent training: every BN combination's final training accuracy
     spreads over at most 5 points across its seeds.
  B. Without BN, Tiny-YOLO trains worse than ResNet26 under both inits (mean final
     training accuracy lower).
  C. ResNet26 trains nearly as well without BN as with it: within 10 points, both inits.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from minideep.experiment import check_claims, read_results, training_wall_time

ARCHS, INITS = ("tinyyolo", "resnet26"), ("he", "glorot")
DEFAULT_PATH = "runs/06_init_bn_arch/results.json"


def final_train_acc(results: dict, arch: str, bn: bool, init: str) -> list[float]:
    entry = results["variants"].get(f"{arch}_{'bn' if bn else 'nobn'}_{init}", {"runs": {}})
    return [run["history"][-1]["train_acc"] for run in entry["runs"].values()]


def pct(values) -> str:
    return f"{100 * np.mean(values):.1f}% ({100 * min(values):.1f}-{100 * max(values):.1f})" if values else "-"


def claims(results: dict) -> list[tuple[str, bool, str]]:
    out = []
    epochs = results["config"]["epochs"]
    names = [f"{a}_{b}_{i}" for a in ARCHS for b in ("bn", "nobn") for i in INITS]
    problems = []
    for name in names:
        runs = results["variants"].get(name, {}).get("runs", {})
        if len(runs) < 3:
            problems.append(f"{name}: {len(runs)} runs")
        for seed, run in runs.items():
            if len(run.get("history", [])) != epochs or not run.get("gradient_flow_at_init"):
                problems.append(f"{name} seed {seed}: incomplete")
    out.append(("the 2 x 2 x 2 grid, 3 seeds each, histories and gradient flow at init kept", not problems,
                "; ".join(problems) or f"8 combinations x 3 seeds, {epochs} epochs each"))

    for init in INITS:
        bn, nobn = final_train_acc(results, "tinyyolo", True, init), final_train_acc(results, "tinyyolo", False, init)
        ok = bool(bn and nobn) and np.mean(bn) - np.mean(nobn) >= 0.10 and min(bn) > max(nobn)
        out.append((f"BN's effect on Tiny-YOLO ({init}): mean +10 points and worst BN run > best run without BN", ok,
                    f"BN {pct(bn)}, no BN {pct(nobn)}"))

    wall = training_wall_time(results)
    cpu = sum(run.get("cpu_time_s", 0.0) for v in results["variants"].values() for run in v["runs"].values())
    loads = [run["load_average"][0] for v in results["variants"].values() for run in v["runs"].values()
             if run.get("load_average")]
    detail = f"{wall:.0f} s wall of training runs"
    if cpu:
        detail += f", {cpu:.0f} CPU seconds over all threads"
    if loads:
        detail += f", 1-minute load average {min(loads):.1f}-{max(loads):.1f} on {results['machine']['cpus']} CPUs"
    out.append(("whole run under 10 minutes", wall < 600, detail))

    from minideep.models.resnet26 import ResNet26  # noqa: PLC0415
    from minideep.models.tiny_yolo import TinyYOLO  # noqa: PLC0415

    counts = (TinyYOLO(101, image_size=128, batch_norm=True).num_parameters(),
              TinyYOLO(101, image_size=128, batch_norm=False).num_parameters(),
              ResNet26(101, batch_norm=True).num_parameters(), ResNet26(101, batch_norm=False).num_parameters())
    expected = (10_311_833, 10_307_257, 11_237_413, 11_227_813 - 128)
    out.append(("parameter counts at 128x128, 101 classes", counts == expected,
                ", ".join(f"{c:,}" for c in counts) + " (paper: 10,311,833, 10,307,257, 11,237,413, 11,227,813)"))
    return out


def findings(results: dict) -> list[tuple[str, bool, str]]:
    out = []
    spreads = {f"{a}/{i}": final_train_acc(results, a, True, i) for a in ARCHS for i in INITS}
    ok = all(v and max(v) - min(v) <= 0.05 for v in spreads.values())
    out.append(("A. BN: consistent training (final spread <= 5 points)", ok,
                ", ".join(f"{k} {100 * (max(v) - min(v)):.1f}" for k, v in spreads.items() if v)))
    for init in INITS:
        yolo, resnet = final_train_acc(results, "tinyyolo", False, init), final_train_acc(results, "resnet26", False, init)
        ok = bool(yolo and resnet) and np.mean(yolo) < np.mean(resnet)
        out.append((f"B. without BN, Tiny-YOLO below ResNet26 ({init})", ok, f"Tiny-YOLO {pct(yolo)}, ResNet26 {pct(resnet)}"))
    for init in INITS:
        bn, nobn = final_train_acc(results, "resnet26", True, init), final_train_acc(results, "resnet26", False, init)
        ok = bool(bn and nobn) and np.mean(bn) - np.mean(nobn) <= 0.10
        out.append((f"C. ResNet26 without BN within 10 points of with BN ({init})", ok,
                    f"BN {pct(bn)}, no BN {pct(nobn)}"))
    return out


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else DEFAULT_PATH)
    results = read_results(path)
    data = results["dataset"]
    print(f"{path}: {results['preset']} preset, {data['name']} ({data['n_train']} training images at "
          f"{data['image_shape'][-1]}x{data['image_shape'][-1]}), width x{results['config']['width']}, "
          f"{results['config']['epochs']} epochs")
    status = check_claims([str(path)], DEFAULT_PATH, claims)
    print("The paper's findings on this run:")
    for claim, ok, detail in findings(results):
        print(f"{'AGREES' if ok else 'DIFFERS'}  {claim}: {detail}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
