"""Chapter 04: highway networks train at depths where plain networks do not (Srivastava et al. 2015).

Rebuilds the optimisation experiment (plain vs highway, fully connected, depth 10 to 100),
the 10-layer convolutional highway nets of Table 1, and the analysis of a trained 50-layer
highway net (gate biases and activity, block outputs, routing by class, lesioning):

    python chapters/04_highway.py                       # quick preset: depths 10 and 50, bundled data, minutes on a CPU
    python chapters/04_highway.py --variants all        # every depth, the He-init plain net, the conv nets, CIFAR-100
    python chapters/04_highway.py --preset paper --device gpu    # MNIST (and CIFAR-100), the paper's settings

Writes results.json, table.txt and the figures into --out (default runs/04_highway).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

import minideep as md
from minideep import plots
from minideep.data import DataLoader, chapter_data
from minideep.diagnostics import chain_rule_gains, gate_analysis, lesion_study
from minideep.experiment import Experiment, RunContext, format_table
from minideep.models.highway import PAPER_CONV_PARAMETERS, ConvHighwayNet, HighwayMLP, PlainMLP
from minideep.train import TrainingDiverged, evaluate, train_classifier


class Spec(NamedTuple):
    """One variant: a network family, its depth (hidden layers) or width, and what differs from the default."""

    family: str  # "plain", "highway" or "conv"
    depth: int = 0  # hidden layers of an MLP, the entry layer included
    width: int = 0  # channels of a conv highway net
    init: str = "glorot_uniform"  # Glorot's "normalized initialization"
    dataset: str | None = None  # None: the run's data set; "cifar100": the paper's second analysis net
    gate_bias: float | None = None  # None: -1/-2/-3 by depth (models.highway.gate_bias_for_depth)
    activations: tuple[str, ...] | None = None  # None: the preset's search


DEPTHS = (10, 20, 50, 100)
VARIANTS = {f"{family}_{d}": Spec(family, d) for family in ("plain", "highway") for d in DEPTHS}
VARIANTS.update({
    # The same 50-layer plain net started He-normal: the init alone moves it off the plateau (slowly).
    "plain_50_he": Spec("plain", 50, init="he_normal"),
    "conv_highway_16": Spec("conv", width=16),
    "conv_highway_32": Spec("conv", width=32),
    # The paper's CIFAR-100 analysis net: 50 hidden layers, tanh, b_T = -4 (off the paper preset, the bundled set).
    "highway_50_cifar100": Spec("highway", 50, dataset="cifar100", gate_bias=-4.0, activations=("tanh",)),
})

# Srivastava et al. (2015): Section 3.1 / Fig. 1 (FC, MNIST, training cross-entropy), Table 1 (conv, MNIST).
PAPER = {
    "plain_10": "train CE < 1e-4", "plain_20": "train CE < 1e-4",
    "plain_50": "degrades with depth", "plain_100": ">100x worse than highway_100",
    "highway_50": "as good as depth 10/20", "highway_100": "as good as depth 10/20",
    "conv_highway_16": "39K params, 99.43 (99.4+-0.03)", "conv_highway_32": "151K params, 99.55 (99.54+-0.02)",
}

PRESETS = {
    # Seconds (the test suite): a few steps, one learning rate, analysis of the 10-layer highway net.
    "smoke": dict(n_train=60, n_val=10, n_test=20, epochs=1, batch_size=20, lrs=[0.1], activations=["relu"],
                  analysis_depth=10, gains_depth=10, analysis_examples=40, conv_n_train=10, conv_epochs=1,
                  epoch_lines=False),
    # The CPU default: 4,000 bundled images, 8 epochs, two learning rates per network, analysis of the 50-layer net.
    "quick": dict(n_train=4000, n_val=500, n_test=1000, epochs=8, batch_size=100, lrs=[0.03, 0.1], activations=["relu"],
                  analysis_depth=50, gains_depth=50, analysis_examples=1000, conv_n_train=2000, conv_epochs=1,
                  epoch_lines=False),
    # The paper: all of MNIST (55,000 / 5,000 split), a search over rates and activations, 100 epochs; conv nets
    # with the official solver's length (300 epochs = 180k steps of 100).
    "paper": dict(n_train=None, n_val=5000, n_test=None, epochs=100, batch_size=100, lrs=[0.01, 0.03, 0.1, 0.3],
                  activations=["relu", "tanh"], analysis_depth=50, gains_depth=50, analysis_examples=10000,
                  conv_n_train=None, conv_epochs=300, epoch_lines=True),
}
for preset in PRESETS.values():
    # SGD with momentum and an exponentially decaying rate (Section 3.1); the conv nets use the official solver.
    preset.update(momentum=0.9, lr_decay=0.95, conv_lr=0.01, conv_weight_decay=1e-3)


def load_data(args, config):
    data = chapter_data(args.dataset, "mnist", args.preset, data_dir=args.data_dir, n_train=config["n_train"],
                        n_val=config["n_val"], n_test=config["n_test"])
    # The CIFAR-100 analysis net loads its own data, and only when it runs.
    data.cifar100 = functools.partial(chapter_data, "auto", "cifar100", args.preset, data_dir=args.data_dir,
                                      n_train=config["n_train"], n_val=config["n_val"], n_test=config["n_test"])
    return data


def arrays(dataset, transform, n: int | None, device: str) -> tuple[md.Tensor, np.ndarray]:
    """The first n examples of a split as one transformed batch (a Tensor on ``device``) and their labels."""
    n = len(dataset) if n is None else min(n, len(dataset))
    x = md.tensor(transform(dataset.images[:n])).to(device)
    return x, dataset.labels[:n]


def build_mlp(spec: Spec, activation: str, in_features: int, num_classes: int):
    if spec.family == "plain":
        return PlainMLP(spec.depth, in_features=in_features, num_classes=num_classes, activation=activation, init=spec.init)
    return HighwayMLP(spec.depth, in_features=in_features, num_classes=num_classes, activation=activation,
                      gate_bias=spec.gate_bias, init=spec.init)


def train_trial(ctx: RunContext, spec: Spec, data, lr: float, activation: str):
    """One point of the learning-rate search: (trained model or None, record)."""
    cfg = ctx.config
    shape = data.train.images.shape[1:]
    md.manual_seed(ctx.seed)
    model = build_mlp(spec, activation, int(np.prod(shape)), len(data.train.classes))
    train_eval = DataLoader(data.train, 500, transform=data.eval_transform)
    record = {"lr": lr, "activation": activation, "loss_at_init": evaluate(model, train_eval)["loss"]}
    try:
        run = train_classifier(
            model, data, epochs=cfg["epochs"], batch_size=cfg["batch_size"], seed=ctx.seed, optimizer="sgd", lr=lr,
            momentum=cfg["momentum"], schedule="exponential", gamma=cfg["lr_decay"], device=ctx.device,
            checkpoint_dir=ctx.checkpoint_dir / f"{activation}_lr{lr:g}", resume=ctx.resume,
            progress=cfg["progress"], log=print if cfg["epoch_lines"] else None,
        )
    except TrainingDiverged as e:
        record.update(diverged=True, final_train_loss=math.inf, message=str(e).split(";")[0])
        print(f"    {activation}, lr {lr:g}: diverged ({record['message']})")
        return None, record
    record.update(diverged=False, final_train_loss=run["history"][-1]["train_loss"],
                  train_loss=[h["train_loss"] for h in run["history"]], test_accuracy=run["test_accuracy"])
    print(f"    {activation}, lr {lr:g}: training loss {record['loss_at_init']:.3f} -> {record['final_train_loss']:.3f}, "
          f"test accuracy {run['test_accuracy']:.1%}")
    return (model, run), record


def analyse_highway(model, data, cfg: dict, device: str) -> dict:
    """Gates (Fig. 2), routing by class (Fig. 3) and lesions (Fig. 4) of a trained highway net."""
    x_train, y_train = arrays(data.train, data.eval_transform, cfg["analysis_examples"], device)
    x_test, y_test = arrays(data.test, data.eval_transform, None, device)
    model.eval()
    gates = gate_analysis(model, x_train, y_train)
    lesion_train = lesion_study(model, (x_train, y_train))
    lesion_test = lesion_study(model, (x_test, y_test))
    return {"gates": gates.to_dict(), "lesion_train": lesion_train.to_dict(), "lesion_test": lesion_test.to_dict(),
            "class_names": list(data.train.classes)}


def run_mlp(ctx: RunContext, spec: Spec) -> dict:
    cfg = ctx.config
    data = ctx.data.cifar100() if spec.dataset == "cifar100" else ctx.data
    if spec.dataset and data.notice:
        print(f"  {data.notice}")
    search, best = [], None
    for activation in spec.activations or cfg["activations"]:
        for lr in cfg["lrs"]:
            trained, record = train_trial(ctx, spec, data, lr, activation)
            search.append(record)
            if trained is not None and (best is None or record["final_train_loss"] < best[2]["final_train_loss"]):
                best = (*trained, record)
    out = {"family": spec.family, "depth": spec.depth, "init": spec.init, "search": search,
           "dataset": data.description}
    if best is None:
        print(f"  {ctx.variant}: every learning rate diverged")
        return {**out, "all_diverged": True}
    model, run, record = best
    out.update(run, best={"lr": record["lr"], "activation": record["activation"]},
               loss_at_init=record["loss_at_init"], final_train_loss=record["final_train_loss"])
    if isinstance(model, HighwayMLP):
        out["gate_bias_init"] = model.gate_bias

    # The chain rule at initialisation (the best setting's starting point) and after training, on one batch.
    x, y = next(iter(data.loaders(cfg["batch_size"], ctx.seed, ctx.device)[0]))
    md.manual_seed(ctx.seed)
    fresh = build_mlp(spec, record["activation"], model.layers[1].linear.in_features, model.classifier.out_features)
    fresh.to(ctx.device)
    out["chain_rule_at_init"] = chain_rule_gains(fresh, x, y).to_dict()
    out["chain_rule_trained"] = chain_rule_gains(model, x, y).to_dict()
    if spec.family == "highway" and (spec.depth == cfg["analysis_depth"] or spec.dataset):
        out["analysis"] = analyse_highway(model, data, cfg, ctx.device)
    print(f"  {ctx.variant}: best {record['activation']} lr {record['lr']:g}, training loss "
          f"{record['loss_at_init']:.3f} -> {record['final_train_loss']:.3f}, test accuracy {run['test_accuracy']:.1%}")
    return out


def run_conv(ctx: RunContext, spec: Spec) -> dict:
    cfg, data = ctx.config, ctx.data
    if cfg["conv_n_train"] and cfg["conv_n_train"] < len(data.train):
        data = dataclasses.replace(data, train=data.train.subset(cfg["conv_n_train"], ctx.seed))
    channels, size = data.train.images.shape[1], data.train.images.shape[2]
    md.manual_seed(ctx.seed)
    model = ConvHighwayNet(spec.width, in_channels=channels, num_classes=len(data.train.classes), image_size=size)
    run = train_classifier(
        model, data, epochs=cfg["conv_epochs"], batch_size=cfg["batch_size"], seed=ctx.seed, optimizer="nesterov",
        lr=cfg["conv_lr"], momentum=cfg["momentum"], weight_decay=cfg["conv_weight_decay"], schedule="step",
        device=ctx.device, checkpoint_dir=ctx.checkpoint_dir, resume=ctx.resume, progress=cfg["progress"],
    )
    run.update(family="conv", width=spec.width, n_train=len(data.train), paper_parameters=PAPER_CONV_PARAMETERS[spec.width])
    print(f"  {ctx.variant}: {run['parameters']:,} parameters (official topology {PAPER_CONV_PARAMETERS[spec.width]:,}), "
          f"test accuracy {run['test_accuracy']:.1%}")
    return run


def run_variant(ctx: RunContext) -> dict:
    spec = VARIANTS[ctx.variant]
    return run_conv(ctx, spec) if spec.family == "conv" else run_mlp(ctx, spec)


def input_output_ratio(chain: dict | None) -> float | None:
    """||dL/dx|| / ||dL/dh_L||: what is left of the output gradient at the input (the product of all gains)."""
    return chain["products"][0] if chain else None


def summarize(results: dict) -> str:
    rows = []
    for name in sorted(results["variants"], key=list(VARIANTS).index):
        entry = results["variants"][name]
        run = next(iter(entry["runs"].values()))
        best = run.get("best", {})
        rows.append({
            "variant": name,
            "params": run.get("parameters"),
            "best lr": best.get("lr"),
            "act": best.get("activation"),
            "train loss: init": run.get("loss_at_init"),
            "-> final": run.get("final_train_loss", (run.get("history") or [{}])[-1].get("train_loss")),
            "test acc %": round(100 * entry["test_accuracy"], 2) if "test_accuracy" in entry else None,
            "|dL/dx|/|dL/dout| at init": input_output_ratio(run.get("chain_rule_at_init")),
            "paper": PAPER.get(name),
        })
    data = results["dataset"]
    header = (f"Chapter 04 ({results['preset']} preset, {data['name']}: {data['n_train']} train / "
              f"{data['n_test']} test images, device {results['device']}); training loss = mean cross-entropy "
              "over the last epoch's batches, best of the learning-rate search")
    counts = [{"network": f"conv highway, width {w}", "parameters (ours)": ConvHighwayNet(w).num_parameters(),
               "official topology": PAPER_CONV_PARAMETERS[w], "Table 1": label}
              for w, label in ((16, "39K"), (32, "151K"))]
    return "\n".join([header, format_table(rows), "", "Table 1's 10-layer convolutional highway nets:",
                      format_table(counts)])


def _first_runs(variants: dict, name: str) -> list[dict]:
    return list(variants[name]["runs"].values()) if name in variants else []


def figures(results: dict, out: Path) -> list[Path]:
    variants, made = results["variants"], []
    curves: dict[str, dict[int, list]] = {}
    for name, entry in variants.items():
        spec = VARIANTS[name]
        runs = [r["history"] for r in entry["runs"].values() if r.get("history")]
        if spec.family == "conv" or spec.dataset or not runs:
            continue
        family = spec.family + (", He init" if spec.init == "he_normal" else "")
        curves.setdefault(family, {})[spec.depth] = runs
    if curves:
        made.append(plots.depth_curves(curves, out / "depth_curves.png",
                                       title="Training loss by depth (best learning rate of the search)"))

    depth = results["config"]["gains_depth"]
    pair = [(label, _first_runs(variants, f"{label}_{depth}")) for label in ("plain", "highway")]
    if all(runs and "chain_rule_at_init" in runs[0] for _, runs in pair):
        grid = {when: {label: runs[0][key]["grad_norms"] for label, runs in pair}
                for when, key in (("at initialisation", "chain_rule_at_init"), ("after training", "chain_rule_trained"))}
        made.append(plots.gains_grid(grid, out / f"chain_rule_depth{depth}.png",
                                     title=f"Gradient norm at every layer output, plain vs highway, depth {depth}"))
        for label, runs in pair:
            g = runs[0]["chain_rule_at_init"]
            title = f"{label}, {depth} layers: per-layer gains at initialisation"
            made.append(plots.chain_rule_gains(g["gains"], g["grad_norms"], out / f"gains_{label}_{depth}.png",
                                               g["names"], title=title))
        flows = {label: runs[0]["gradient_flow"] for label, runs in pair}
        # One weight per layer in both panels: W of a plain layer, W_H of a highway layer (its gate W_T left out).
        flows["highway"] = [{k: v for k, v in rec.items() if not k.endswith(".gate")} for rec in flows["highway"]]
        labels = (f"plain {depth}", f"highway {depth} (W_H)")
        made.append(plots.gradient_flow_pair(flows["plain"], flows["highway"], labels,
                                             out / f"gradient_flow_depth{depth}.png",
                                             title="Gradient flow: mean |dL/dW| per layer, one line per epoch"))

    for name, entry in variants.items():
        run = next(iter(entry["runs"].values()))
        if "analysis" not in run:
            continue
        suffix = "_cifar100" if VARIANTS[name].dataset else ""
        where = f"{name} on {run['dataset']['name']}"
        g = run["analysis"]["gates"]
        made.append(plots.gate_activity(g["mean_gate"], g["example_gate"], g["block_outputs"], g["gate_biases"],
                                        out / f"gates{suffix}.png", title=f"Transform gates and block outputs, {where}"))
        if g["by_class"]:
            names = run["analysis"]["class_names"]
            by_class = {f"{label}: {names[int(label)]}": values for label, values in g["by_class"].items()}
            made.append(plots.gate_activity_by_class(by_class, out / f"gates_by_class{suffix}.png",
                                                     title=f"Mean transform-gate activity by class, {where}"))
        classes = run["dataset"]["classes"]
        for split in ("train", "test"):
            lesion = run["analysis"][f"lesion_{split}"]
            layers = [int(n.rsplit(".", 1)[-1]) for n in lesion["names"]]
            made.append(plots.lesion_curve(layers, lesion["accuracies"], lesion["baseline"],
                                           out / f"lesion_{split}{suffix}.png", chance=1 / classes,
                                           title=f"Lesioning, {where}: {split} accuracy with one layer's gate shut",
                                           xlabel="lesioned layer (hidden layer number)"))
    return made


EXPERIMENT = Experiment(
    chapter="04_highway",
    description=__doc__.split("\n\n")[0],
    presets=PRESETS,
    variants=list(VARIANTS),
    default_variants={
        "smoke": ["plain_10", "highway_10", "conv_highway_16"],
        "quick": ["plain_10", "plain_50", "highway_10", "highway_50"],
        "paper": [v for v in VARIANTS if v != "plain_50_he"],
    },
    load_data=load_data,
    run_variant=run_variant,
    summarize=summarize,
    figures=figures,
).script(__name__)
