"""Chapter 03: VGG38 does not learn, VGG08 does; BatchNorm and residual connections fix it.

Rebuilds the Edinburgh MLP coursework 2 experiment and Pricope (2021), Table 1:

    python chapters/03_vgg38.py                       # quick preset, bundled data, ~10 min on a CPU
    python chapters/03_vgg38.py --variants all        # all eight variants
    python chapters/03_vgg38.py --preset paper --device gpu    # CIFAR-100, 100 epochs

Writes results.json, table.txt and the figures into --out (default runs/03_vgg38).
"""
from __future__ import annotations

from pathlib import Path

import minideep as md
from minideep import plots
from minideep.data import chapter_data
from minideep.diagnostics import chain_rule_gains, first_last_ratio
from minideep.experiment import Experiment, RunContext, format_table
from minideep.models.vgg import VGG
from minideep.train import train_classifier

# name -> (processing blocks per stage, batch norm, residual, activation)
VARIANTS = {
    "vgg08": (0, False, False, "leaky_relu"),
    "vgg38": (5, False, False, "leaky_relu"),
    "vgg08_bn": (0, True, False, "leaky_relu"),
    "vgg08_bn_res": (0, True, True, "leaky_relu"),
    "vgg38_bn": (5, True, False, "leaky_relu"),
    "vgg38_res": (5, False, True, "leaky_relu"),
    "vgg38_bn_res": (5, True, True, "leaky_relu"),
    "vgg38_sigmoid_bn": (5, True, False, "sigmoid"),
}

# The published numbers (percent): the framework's own runs, the coursework report's table
# (train / validation) and Pricope (2021) Table 1 (test). See docs/chapters/03-vgg38.md.
PAPER = {
    "vgg08": {"framework test": 49.95, "coursework train/val": "51.59 / 46.84"},
    "vgg38": {"framework test": 1.00, "framework train loss": 4.605},
    "vgg08_bn": {"Pricope test": 53.89},
    "vgg08_bn_res": {"Pricope test": 54.45},
    "vgg38_bn": {"coursework train/val": "47.13 / 42.76", "Pricope test": 46.78},
    "vgg38_res": {"coursework train/val": "61.52 / 52.32", "Pricope test": 44.77},
    "vgg38_bn_res": {"coursework train/val": "62.99 / 53.76", "Pricope test": 58.84},
    "vgg38_sigmoid_bn": {"Pricope test": 26.88},
}

# PyTorch, the same networks, 2,000 bundled training images padded to 32x32, 3 epochs, 1,000 test images.
PYTORCH_QUICK = {"vgg08": 46, "vgg38": 10, "vgg38_bn": 35, "vgg38_bn_res": 71}

PRESETS = {
    # Seconds: every variant for two steps on a handful of 28x28 images (the test suite runs it).
    "smoke": dict(n_train=40, n_val=20, n_test=40, size=28, epochs=1, batch_size=20, augment=False),
    # The CPU default: 2,000 bundled training images, 3 epochs (about 10 minutes on 2 cores).
    "quick": dict(n_train=2000, n_val=500, n_test=1000, size=32, epochs=3, batch_size=100, augment=False),
    # The coursework exactly: CIFAR-100, 47,500 / 2,500 split, crop + flip, 100 epochs, Adam with cosine.
    "paper": dict(n_train=None, n_val=None, n_test=None, size=32, epochs=100, batch_size=100, augment=True),
}
for preset in PRESETS.values():
    preset.update(optimizer="adam", lr=1e-3, schedule="cosine", eta_min=2e-5)


def load_data(args, config):
    return chapter_data(
        args.dataset, "cifar100", args.preset, data_dir=args.data_dir, n_train=config["n_train"],
        n_val=config["n_val"], n_test=config["n_test"], shape=(3, config["size"]), augment=config["augment"], coursework=True,
    )


def build(variant: str, num_classes: int) -> VGG:
    blocks, batch_norm, residual, activation = VARIANTS[variant]
    return VGG(blocks, num_classes=num_classes, batch_norm=batch_norm, residual=residual, activation=activation)


def run_variant(ctx: RunContext) -> dict:
    md.manual_seed(ctx.seed)
    data, cfg = ctx.data, ctx.config
    model = build(ctx.variant, len(data.train.classes))
    # The chain rule at initialisation, on one training batch: per-block gradient norms and gains.
    x, y = next(iter(data.loaders(cfg["batch_size"], ctx.seed)[0]))
    gains = chain_rule_gains(model, x, y).to_dict()
    run = train_classifier(
        model, data, epochs=cfg["epochs"], batch_size=cfg["batch_size"], seed=ctx.seed, optimizer=cfg["optimizer"],
        lr=cfg["lr"], schedule=cfg["schedule"], eta_min=cfg["eta_min"], device=ctx.device,
        checkpoint_dir=ctx.checkpoint_dir, resume=ctx.resume, progress=cfg["progress"],
    )
    run["chain_rule_at_init"] = gains
    flow = run["gradient_flow"][-1] if run["gradient_flow"] else {}
    run["first_over_last_grad"] = first_last_ratio(flow)
    print(f"  {ctx.variant}: test accuracy {run['test_accuracy']:.1%}, "
          f"first/last layer mean |grad| {run['first_over_last_grad']:.2g}")
    return run


def summarize(results: dict) -> str:
    rows = []
    for name, entry in results["variants"].items():
        last = entry["history"][-1] if entry.get("history") else {}
        flow = entry["gradient_flow"][-1] if entry.get("gradient_flow") else {}
        values = list(flow.values())
        row = {
            "variant": name,
            "test acc %": round(100 * entry["test_accuracy"], 2),
            "train loss": last.get("train_loss"),
            "first |grad|": values[0] if values else None,
            "last |grad|": values[-1] if values else None,
        }
        if results["preset"] == "quick" and name in PYTORCH_QUICK and results["dataset"]["name"] == "bundled":
            row["PyTorch quick %"] = PYTORCH_QUICK[name]
        for source, value in PAPER.get(name, {}).items():
            row[source] = value
        rows.append(row)
    columns = ["variant", "test acc %", "train loss", "first |grad|", "last |grad|", "PyTorch quick %",
               "framework test", "coursework train/val", "Pricope test"]
    data = results["dataset"]
    header = (f"Chapter 03 ({results['preset']} preset, {data['name']}: {data['n_train']} train / "
              f"{data['n_test']} test images, device {results['device']})")
    return header + "\n" + format_table(rows, [c for c in columns if any(c in r for r in rows)])


def figures(results: dict, out: Path) -> list[Path]:
    variants = results["variants"]
    made = []
    if "vgg08" in variants and "vgg38" in variants:
        made.append(plots.gradient_flow_pair(variants["vgg08"]["gradient_flow"], variants["vgg38"]["gradient_flow"],
                                             ("VGG08", "VGG38"), out / "gradient_flow_vgg08_vs_vgg38.png",
                                             title="Gradient flow: mean |dL/dW| per layer, one line per epoch"))
    fixed = {n: variants[n]["gradient_flow"] for n in ("vgg38_bn", "vgg38_res", "vgg38_bn_res", "vgg38_sigmoid_bn")
             if n in variants}
    if fixed:
        made.append(plots.gradient_flow_panels(fixed, out / "gradient_flow_fixed_vgg38.png",
                                               title="Gradient flow of the fixed VGG38s"))
    for name in ("vgg38", "vgg38_bn_res"):
        if name in variants:
            first_seed = next(iter(variants[name]["runs"].values()))
            g = first_seed["chain_rule_at_init"]
            made.append(plots.chain_rule_gains(g["gains"], g["grad_norms"], out / f"chain_rule_at_init_{name}.png",
                                               g["names"], title=f"{name}: the chain rule block by block at initialisation"))
    histories = {n: [r["history"] for r in v["runs"].values()] for n, v in variants.items()}
    made.append(plots.training_curves(histories, out / "training_curves.png",
                                      title="Loss and accuracy of every variant"))
    return made


EXPERIMENT = Experiment(
    chapter="03_vgg38",
    description=__doc__.split("\n\n")[0],
    presets=PRESETS,
    variants=list(VARIANTS),
    default_variants={"smoke": list(VARIANTS), "quick": ["vgg08", "vgg38", "vgg38_bn", "vgg38_bn_res"]},
    load_data=load_data,
    run_variant=run_variant,
    summarize=summarize,
    figures=figures,
).script(__name__)
