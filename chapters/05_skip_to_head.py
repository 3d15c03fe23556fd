"""Chapter 05: a path from every layer to the head lets a 69-layer plain network train (Gil).

Rebuilds Gil, "Addressing issues with training deep networks", Table 1 and Figures 4-7:
baseline, concatenation and summation networks of 12, 69 and 120 layers (99 for the
baseline) with 3, 16 or 64 kernels per layer.

    python chapters/05_skip_to_head.py                          # quick preset: bundled data, ~8 min on 2 cores
    python chapters/05_skip_to_head.py --variants all --preset paper --device gpu    # the whole grid on CIFAR-10

Writes results.json, table.txt and the figures into --out (default runs/05_skip_to_head).
"""
from __future__ import annotations

from pathlib import Path

import minideep as md
from minideep import plots
from minideep.callbacks import EvaluateEachEpoch
from minideep.data import chapter_data
from minideep.data.transforms import ToFloat
from minideep.diagnostics import chain_rule_gains, first_last_ratio
from minideep.experiment import Experiment, RunContext, format_table
from minideep.models.skip_to_head import ConvReLU, SkipToHeadNet
from minideep.train import train_classifier

CONNECTION_NAMES = {"baseline": "Baseline", "concat": "Concatenation", "sum": "Summation"}
DEPTHS = {"baseline": (12, 69, 99), "concat": (12, 69, 120), "sum": (12, 69, 120)}
KERNELS = (3, 16, 64)
# name ("concat_69x3") -> (connection, depth, kernels): Gil's grid, 27 networks.
VARIANTS = {f"{c}_{d}x{k}": (c, d, k) for c in DEPTHS for d in DEPTHS[c] for k in KERNELS}

# Gil's Table 1: (end training accuracy, end test accuracy) on CIFAR-10 after 200 epochs. The
# fourth baseline row has no depth in the paper's table; the text (Table 1 discussion, Figures 6-7)
# makes it the 69-layer one. The 99-layer baseline was trained but has no row.
PAPER = {
    "baseline_12x3": (0.498, 0.485), "baseline_12x16": (0.801, 0.676), "baseline_12x64": (0.999, 0.64),
    "baseline_69x3": (0.101, 0.099),
    "concat_12x3": (0.595, 0.588), "concat_12x16": (0.834, 0.686), "concat_12x64": (0.999, 0.74),
    "concat_69x3": (0.647, 0.625), "concat_69x16": (0.932, 0.74), "concat_120x3": (0.782, 0.666),
    "sum_12x3": (0.519, 0.511), "sum_12x16": (0.751, 0.668), "sum_12x64": (1.0, 0.714), "sum_69x3": (0.499, 0.499),
}

PRESETS = {
    # Seconds: the six 3-kernel networks of depth 12 and 69, two steps each on a handful of images.
    "smoke": dict(n_train=40, n_test=20, size=32, epochs=1, batch_size=20, bn_momentum=0.1),
    # The CPU default: 2,000 bundled training images, 5 epochs of 20 steps (about 8 minutes on 2 cores).
    "quick": dict(n_train=2000, n_test=1000, size=32, epochs=5, batch_size=100, bn_momentum=0.1),
    # Gil exactly: all of CIFAR-10, batch 500, 200 epochs, Keras's BN momentum (0.99, i.e. 0.01 here).
    "paper": dict(n_train=None, n_test=None, size=32, epochs=200, batch_size=500, bn_momentum=0.01),
}
for preset in PRESETS.values():
    # Keras SGD as Gil used it: lr 0.01, no momentum, no schedule; pixels / 255, no augmentation.
    preset.update(optimizer="sgd", lr=0.01, momentum=0.0, schedule=None)

QUICK_VARIANTS = [f"{c}_{d}x3" for d in (12, 69) for c in ("baseline", "concat", "sum")]


def load_data(args, config):
    data = chapter_data(args.dataset, "cifar10", args.preset, data_dir=args.data_dir, n_train=config["n_train"],
                        n_test=config["n_test"], shape=(3, config["size"]))
    # Gil only divided the pixels by 255: no mean/std normalisation.
    data.train_transform = data.eval_transform = ToFloat()
    data.description["normalisation"] = "none: pixels / 255 (as Gil)"
    return data


def build(variant: str, num_classes: int, size: int, bn_momentum: float) -> SkipToHeadNet:
    connection, depth, kernels = VARIANTS[variant]
    return SkipToHeadNet(depth, kernels, connection, num_classes=num_classes, image_size=size, bn_momentum=bn_momentum)


def chain_labels(model: SkipToHeadNet, names: list[str]) -> list[str]:
    """Short labels for the chain-rule points: input, conv1..convL, bn1..bn3, fc_0, fc_1, logits."""
    labels, conv, bn = [], 0, 0
    for name in names:
        module = dict(model.named_modules()).get(name)
        if isinstance(module, ConvReLU):
            conv += 1
            labels.append(f"conv{conv}")
        elif name.startswith("body.layers."):
            bn += 1
            labels.append(f"bn{bn}")
        else:
            labels.append(name)
    return labels


def chain_rule(model: SkipToHeadNet, x, y) -> dict:
    """||dL/dh_l|| and the gains at every conv, BN and FC output, as plain lists with short labels."""
    report = chain_rule_gains(model, x, y, layers=model.chain_layers())
    return {"labels": chain_labels(model, report.names), "grad_norms": report.grad_norms, "gains": report.gains,
            "loss": report.loss, "geometric_mean_gain": report.geometric_mean_gain,
            "activation_std": [None] + [s["std"] for s in report.forward],
            "zero_fraction": [None] + [s.get("zero_fraction") for s in report.forward]}


def silent_convs(report: dict) -> int:
    """How many conv layers output exactly 0 for every unit and example: no gradient passes them."""
    return sum(1 for label, zero in zip(report["labels"], report["zero_fraction"])
               if label.startswith("conv") and zero == 1.0)


def run_variant(ctx: RunContext) -> dict:
    md.manual_seed(ctx.seed)
    data, cfg = ctx.data, ctx.config
    model = build(ctx.variant, len(data.train.classes), cfg["size"], cfg["bn_momentum"]).to(ctx.device)  # before the probe
    train_loader, _, test_loader = data.loaders(cfg["batch_size"], ctx.seed, ctx.device)
    # The chain rule at initialisation and after training, on the same training batch.
    x, y = next(iter(train_loader))
    at_init = chain_rule(model, x, y)
    run = train_classifier(
        model, data, epochs=cfg["epochs"], batch_size=cfg["batch_size"], seed=ctx.seed, optimizer=cfg["optimizer"],
        lr=cfg["lr"], momentum=cfg["momentum"], schedule=cfg["schedule"], device=ctx.device,
        checkpoint_dir=ctx.checkpoint_dir, resume=ctx.resume, progress=cfg["progress"],
        callbacks=[EvaluateEachEpoch(test_loader)],
    )
    connection, depth, kernels = VARIANTS[ctx.variant]
    run.update(connection=connection, depth=depth, kernels=kernels, head_features=model.head_features,
               end_train_accuracy=run["history"][-1]["train_acc"], chain_rule_at_init=at_init,
               chain_rule_trained=chain_rule(model, x, y))
    flow = run["gradient_flow"][-1] if run["gradient_flow"] else {}
    run["first_over_last_grad"] = first_last_ratio(flow)
    print(f"  {ctx.variant}: end train accuracy {run['end_train_accuracy']:.1%}, test accuracy "
          f"{run['test_accuracy']:.1%}, ||dL/dh|| at conv1 / at logits (init) "
          f"{at_init['grad_norms'][1] / at_init['grad_norms'][-1]:.2g}, conv layers silent (all outputs 0) "
          f"after training: {silent_convs(run['chain_rule_trained'])} of {depth}")
    return run


def _pct(value) -> float | None:
    return None if value is None else round(100 * value, 1)


def summarize(results: dict) -> str:
    rows = []
    for name, entry in results["variants"].items():
        run = next(iter(entry["runs"].values()))
        init = run["chain_rule_at_init"]["grad_norms"]
        paper = PAPER.get(name)
        rows.append({
            "network": CONNECTION_NAMES[run["connection"]], "layers": run["depth"], "kernels": run["kernels"],
            "train %": _pct(run["end_train_accuracy"]), "test %": _pct(entry["test_accuracy"]),
            "Gil train %": _pct(paper[0]) if paper else None, "Gil test %": _pct(paper[1]) if paper else None,
            "|dL/dh| conv1/logits (init)": init[1] / init[-1] if init[-1] else None,
            "all-zero convs (end)": silent_convs(run["chain_rule_trained"]),
        })
    data = results["dataset"]
    header = (f"Chapter 05 ({results['preset']} preset, {data['name']}: {data['n_train']} train / {data['n_test']} "
              f"test images, device {results['device']}); end-of-training accuracies, Gil's Table 1 beside them "
              f"(CIFAR-10, 200 epochs)")
    return header + "\n" + format_table(rows)


def _flow_labels(record: dict) -> dict:
    """Gradient-flow keys as conv1..convL, bn1..bn3, fc_0, fc_1, logits."""
    out, conv, bn = {}, 0, 0
    for name, value in record.items():
        if name.endswith(".conv"):
            conv += 1
            name = f"conv{conv}"
        elif name.startswith("body.layers."):
            bn += 1
            name = f"bn{bn}"
        out[name] = value
    return out


def figures(results: dict, out: Path) -> list[Path]:
    variants = results["variants"]
    runs = {n: list(v["runs"].values()) for n, v in variants.items()}
    first = {n: r[0] for n, r in runs.items()}
    made = [plots.training_curves({n: [r["history"] for r in rs] for n, rs in runs.items()}, out / "training_curves.png",
                                  splits=("train", "test"), title="Training and test curves of every network")]
    # Gil's Figures 4 and 5: rows = connection, columns = kernels, one line per depth (with two widths or more).
    grid: dict = {}
    for name, run in first.items():
        row = grid.setdefault(CONNECTION_NAMES[run["connection"]], {})
        row.setdefault(f"{run['kernels']} kernels", {})[f"{run['depth']} layers"] = [r["history"] for r in runs[name]]
    if len({run["kernels"] for run in first.values()}) > 1:
        for metric, title in (("test_acc", "Test accuracy (Gil's Figure 4)"), ("train_loss", "Training loss (Gil's Figure 5)")):
            made.append(plots.band_grid(grid, out / f"grid_{metric}.png", metric=metric, title=title))
    # Gil's Figures 6 and 7 for the 3-kernel networks: one panel per depth, the three connections in each.
    by_depth: dict = {}
    for name, run in first.items():
        if run["kernels"] == 3:
            by_depth.setdefault(CONNECTION_NAMES[run["connection"]], {})[run["depth"]] = [r["history"] for r in runs[name]]
    if by_depth:
        made.append(plots.depth_curves(by_depth, out / "depth_test_accuracy.png", key="test_acc", log_y=False,
                                       ylabel="test accuracy (fraction)", title="Test accuracy by depth, 3 kernels (Figure 6)"))
        made.append(plots.depth_curves(by_depth, out / "depth_train_loss.png", key="train_loss",
                                       title="Training loss by depth, 3 kernels (Figure 7)"))
    # Beyond the paper: why the direct paths keep early layers trainable.
    flow_panels = {n: [_flow_labels(rec) for rec in first[n]["gradient_flow"]]
                   for n in (f"{c}_69x3" for c in ("baseline", "concat", "sum")) if n in first}
    if flow_panels:
        made.append(plots.gradient_flow_panels(flow_panels, out / "gradient_flow_69x3.png",
                                               title="Gradient flow, 69 layers x 3 kernels: mean |dL/dW| per layer"))
    norms = {
        "at initialisation": {n: r["chain_rule_at_init"]["grad_norms"] for n, r in first.items() if r["kernels"] == 3},
        "after training": {n: r["chain_rule_trained"]["grad_norms"] for n, r in first.items() if r["kernels"] == 3},
    }
    if norms["at initialisation"]:
        made.append(plots.gains_grid(norms, out / "gradient_norms_3_kernels.png",
                                     xlabel="layer output $h_l$ (0 = input; convs, then 3 BN, then 3 FC)",
                                     title=r"$\|\partial L/\partial h_l\|$ at every layer, 3-kernel networks"))
        spread = {panel: {n: r[key]["activation_std"][1:] for n, r in first.items() if r["kernels"] == 3}
                  for panel, key in (("at initialisation", "chain_rule_at_init"), ("after training", "chain_rule_trained"))}
        made.append(plots.gains_grid(spread, out / "activation_std_3_kernels.png", ylabel="std of $h_l$ over the batch",
                                     xlabel="layer output $h_l$ (0 = conv1; convs, then 3 BN, then 3 FC)",
                                     title="The forward signal: spread of every layer's output, 3-kernel networks"))
    for name in ("baseline_69x3", "concat_69x3"):
        if name in first:
            g = first[name]["chain_rule_at_init"]
            made.append(plots.chain_rule_gains(g["gains"], g["grad_norms"], out / f"chain_rule_at_init_{name}.png",
                                               g["labels"], title=f"{name}: the chain rule layer by layer at initialisation"))
    return made


EXPERIMENT = Experiment(
    chapter="05_skip_to_head",
    description=__doc__.split("\n\n")[0],
    presets=PRESETS,
    variants=list(VARIANTS),
    default_variants={"smoke": QUICK_VARIANTS, "quick": QUICK_VARIANTS, "paper": list(VARIANTS)},
    load_data=load_data,
    run_variant=run_variant,
    summarize=summarize,
    figures=figures,
).script(__name__)
