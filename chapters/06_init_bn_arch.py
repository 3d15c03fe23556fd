"""Chapter 06: He vs Glorot x batch norm x Tiny-YOLO/ResNet26, three runs each (McInroe 2020).

Rebuilds McInroe's 2 x 2 x 2 grid: two initialisations (He and Glorot, truncated normal as
in TensorFlow), batch normalisation on or off, and two architectures (Tiny-YOLO without
shortcuts, ResNet26 with them), each trained three times with Adam; the figure shows the
mean training accuracy with a min-max band over the runs, plus the gradient flow of all
eight networks at initialisation.

    python chapters/06_init_bn_arch.py                 # quick preset: 24 runs, ~10 min on a 2-core CPU
    python chapters/06_init_bn_arch.py --preset paper --device gpu   # Food-101 at 128x128, 50 epochs

Writes results.json, table.txt and the figures into --out (default runs/06_init_bn_arch).
"""
from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import numpy as np

import minideep as md
import minideep.nn.functional as F
from minideep import plots
from minideep.data import chapter_data, load_dataset
from minideep.data.errors import DatasetNotFoundError
from minideep.diagnostics import first_last_ratio, gradient_flow
from minideep.diagnostics.layers import preserved_buffers
from minideep.experiment import Experiment, RunContext, format_table
from minideep.models.resnet26 import ResNet26
from minideep.models.tiny_yolo import TinyYOLO
from minideep.train import train_classifier

ARCHITECTURES = {"tinyyolo": "Tiny-YOLO", "resnet26": "ResNet26"}
INITS = {"he": ("He", "he_truncated_normal"), "glorot": ("Glorot", "glorot_truncated_normal")}
# name -> (architecture, batch norm, init); the order of the paper's figure: rows, columns, colours.
VARIANTS = {
    f"{arch}_{'bn' if bn else 'nobn'}_{init}": (arch, bn, init)
    for arch in ARCHITECTURES for bn in (True, False) for init in INITS
}

# McInroe (2020), "Models": learnable parameters at 128x128 with 101 classes.
PAPER_PARAMETERS = {("tinyyolo", True): 10_311_833, ("tinyyolo", False): 10_307_257,
                    ("resnet26", True): 11_237_413, ("resnet26", False): 11_227_813}
# McInroe (2020), Figure 1 and "Analysis of Results" (the paper gives no numbers, only the figure).
PAPER_FINDING = {
    ("tinyyolo", True): "consistent, near-perfect",
    ("tinyyolo", False): "poor and inconsistent",
    ("resnet26", True): "consistent, near-perfect",
    ("resnet26", False): "nearly as good as with BN",
}
COUNT_NOTES = {
    ("tinyyolo", True): "exact (BN after all 8 convolutions; Table 1 draws it after the first 6 only)",
    ("tinyyolo", False): "exact",
    ("resnet26", True): "exact (2 blocks per stage, 1x1 projection opening each stage, conv biases kept)",
    ("resnet26", False): "paper keeps 2 x 64 BN parameters (4,800 BN channels vs our 4,864 removed)",
}

PRESETS = {
    # Seconds: every combination for two steps on a handful of images (the test suite runs it).
    "smoke": dict(n_train=40, n_val=20, n_test=20, size=64, width=0.0625, epochs=1, batch_size=20),
    # The CPU default: 800 training images at 64x64, networks at a quarter of the width, 4 epochs.
    "quick": dict(n_train=800, n_val=200, n_test=500, size=64, width=0.25, epochs=4, batch_size=50),
    # The paper: all of Food-101 at 128x128, full width, 50 epochs (batch size not stated: Keras' 32).
    "paper": dict(n_train=None, n_val=None, n_test=None, size=128, width=1.0, epochs=50, batch_size=32),
}
for preset in PRESETS.values():
    preset.update(optimizer="adam", lr=1e-3, schedule=None)  # the paper: Adam, no schedule mentioned


# --------------------------------------------------------------------------------- data


def food101_is_local(data_dir) -> bool:
    """True when Food-101 is on this machine (cached or unpacked), without downloading it."""
    try:
        load_dataset("food101", "test", data_dir, download=False, progress=False)
    except DatasetNotFoundError:
        return False
    return True


def load_data(args, config):
    requested = args.dataset
    if requested == "auto" and args.preset == "quick" and food101_is_local(args.data_dir):
        requested = "food101"  # the quick preset uses the paper's data when it is already here
    # 3 x size x size: grayscale repeated; 28 x 28 padded to 32 and upsampled, photos average-pooled down.
    return chapter_data(requested, "food101", args.preset, data_dir=args.data_dir, n_train=config["n_train"],
                        n_val=config["n_val"], n_test=config["n_test"], shape=(3, config["size"]), grow="repeat")


# --------------------------------------------------------------------------------- models


def build(arch: str, batch_norm: bool, init: str, num_classes: int, size: int, width: float):
    """One network of the grid; ``init`` is "he" or "glorot"."""
    scheme = INITS[init][1]
    if arch == "tinyyolo":
        return TinyYOLO(num_classes, image_size=size, batch_norm=batch_norm, init=scheme, width=width)
    return ResNet26(num_classes, batch_norm=batch_norm, init=scheme, width=width)


def weight_flow(model, x, y) -> dict[str, float]:
    """mean |dL/dW| of every convolution and dense weight on one batch (BN's gammas left out, so
    networks with and without BN share the x axis). BN's running statistics are left untouched."""
    matrices = {name[: -len(".weight")] for name, p in model.named_parameters()
                if name.endswith(".weight") and p.ndim >= 2}
    with preserved_buffers(model):
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        flow = {k: v for k, v in gradient_flow(model).items() if k in matrices}
        model.zero_grad()
    return flow


def run_variant(ctx: RunContext) -> dict:
    arch, batch_norm, init = VARIANTS[ctx.variant]
    cpu_start = time.process_time()  # CPU seconds of all threads: a cost that other jobs on the machine do not inflate
    md.manual_seed(ctx.seed)
    data, cfg = ctx.data, ctx.config
    model = build(arch, batch_norm, init, len(data.train.classes), cfg["size"], cfg["width"])
    x, y = next(iter(data.loaders(cfg["batch_size"], ctx.seed)[0]))
    flow_at_init = weight_flow(model, x, y)
    run = train_classifier(
        model, data, epochs=cfg["epochs"], batch_size=cfg["batch_size"], seed=ctx.seed, optimizer=cfg["optimizer"],
        lr=cfg["lr"], schedule=cfg["schedule"], device=ctx.device, checkpoint_dir=ctx.checkpoint_dir,
        resume=ctx.resume, progress=cfg["progress"],
    )
    run["gradient_flow_at_init"] = flow_at_init
    run["first_over_last_grad_at_init"] = first_last_ratio(flow_at_init)
    run["final_train_acc"] = run["history"][-1]["train_acc"]
    run["cpu_time_s"] = time.process_time() - cpu_start
    run["load_average"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None  # how shared the machine was
    print(f"  {ctx.variant} seed {ctx.seed}: final train accuracy {run['final_train_acc']:.1%}, "
          f"test {run['test_accuracy']:.1%}, first/last mean |grad| at init {run['first_over_last_grad_at_init']:.2g}")
    return run


# --------------------------------------------------------------------------------- report


@functools.lru_cache(maxsize=1)
def parameter_counts() -> list[dict]:
    """The paper-size networks (128x128, 101 classes) counted beside the paper's numbers."""
    rows = []
    for (arch, batch_norm), paper in PAPER_PARAMETERS.items():
        ours = build(arch, batch_norm, "he", 101, 128, 1.0).num_parameters()
        rows.append({"network": ARCHITECTURES[arch], "BN": "yes" if batch_norm else "no", "ours": f"{ours:,}",
                     "paper": f"{paper:,}", "difference": f"{ours - paper:+,}", "why": COUNT_NOTES[arch, batch_norm]})
    return rows


def final_values(entry: dict, key: str) -> list[float]:
    return [run["history"][-1][key] for run in entry["runs"].values() if run["history"][-1].get(key) is not None]


def summarize(results: dict) -> str:
    rows = []
    for name, entry in results["variants"].items():
        arch, batch_norm, init = VARIANTS[name]
        acc, loss = final_values(entry, "train_acc"), final_values(entry, "train_loss")
        tests = [r["test_accuracy"] for r in entry["runs"].values()]
        ratios = [r["first_over_last_grad_at_init"] for r in entry["runs"].values()]
        rows.append({
            "network": ARCHITECTURES[arch], "BN": "yes" if batch_norm else "no", "init": INITS[init][0],
            "runs": len(entry["runs"]),
            "train acc % (min-max)": f"{100 * np.mean(acc):.1f} ({100 * min(acc):.1f}-{100 * max(acc):.1f})",
            "train loss": float(np.mean(loss)),
            "test acc %": round(100 * float(np.mean(tests)), 1),
            "first/last |grad| at init": float(np.exp(np.mean(np.log(ratios)))),
            "paper (Fig. 1)": PAPER_FINDING[arch, batch_norm],
        })
    data = results["dataset"]
    config = results["config"]
    header = (f"Chapter 06 ({results['preset']} preset, {data['name']}: {data['n_train']} train / {data['n_test']} test "
              f"images at {data['image_shape'][-1]}x{data['image_shape'][-1]}, width x{config['width']}, "
              f"{config['epochs']} epochs, device {results['device']}); final-epoch training accuracy, mean over runs")
    counts = "Parameters of the paper-size networks (128x128, 101 classes)\n" + format_table(parameter_counts())
    return header + "\n" + format_table(rows) + "\n\n" + counts


def figures(results: dict, out: Path) -> list[Path]:
    variants = results["variants"]
    made = []
    grid: dict = {}
    flows: dict = {}
    for name, entry in variants.items():
        arch, batch_norm, init = VARIANTS[name]
        row, col, series = ARCHITECTURES[arch], "BN" if batch_norm else "no BN", INITS[init][0]
        grid.setdefault(row, {}).setdefault(col, {})[series] = [r["history"] for r in entry["runs"].values()]
        runs = [r["gradient_flow_at_init"] for r in entry["runs"].values()]
        # The mean over seeds of every layer's mean |grad|.
        flows.setdefault(f"{row} · {col}", {})[series] = {k: float(np.mean([f[k] for f in runs])) for k in runs[0]}
    made.append(plots.band_grid(grid, out / "init_bn_arch_train_acc.png", metric="train_acc",
                                title="Training accuracy and stability"))
    if all(run["history"][-1].get("val_acc") is not None for e in variants.values() for run in e["runs"].values()):
        made.append(plots.band_grid(grid, out / "init_bn_arch_val_acc.png", metric="val_acc",
                                    title="Validation accuracy"))
    made.append(plots.band_grid(grid, out / "init_bn_arch_train_loss.png", metric="train_loss", title="Training loss"))
    made.append(plots.gradient_flow_panels(flows, out / "gradient_flow_at_init.png", ncols=2,
                                           title="Gradient flow at initialisation (mean over seeds, one batch)"))
    return made


EXPERIMENT = Experiment(
    chapter="06_init_bn_arch",
    description=__doc__.split("\n\n")[0],
    presets=PRESETS,
    variants=list(VARIANTS),
    default_seeds={"smoke": [0], "quick": [0, 1, 2], "paper": [0, 1, 2]},
    load_data=load_data,
    run_variant=run_variant,
    summarize=summarize,
    figures=figures,
).script(__name__)
