"""Chapter 04: highway networks train at depths where plain networks do not (Srivastava et al. 2015).

Rebuilds the optimisation experiment (plain vs highway, fully connected, depth 10 to 100),
the 10-layer convolutional highway nets of Table 1, and the analysis of a trained 50-layer
highway net (gate biases and activity, block outputs, routing by class, lesioning):

    python chapters/04_highway.py                       # quick preset: depths 10 and 50, bundled data, minutes on a CPU
    python chapters/04_highway.py --variants all        # every depth, the He-init plain net, the conv nets, CIFAR-100
    python chapters/04_highway.py --preset paper --device gpu    # MNIST (and CIFAR-100), the paper's settings

Writes results.json, table.txt, the claims ledger (claims.json, claims.md), the Markdown tables
(*.md) and the figures into --out (default runs/04_highway); --from-results RESULTS_JSON
regenerates them without training. best_highway_analysis retrains the best trial of the
highway_50 search it finds in --out's results.json: with --workers N, run it afterwards
(--resume --variants best_highway_analysis), since the pool may start it before highway_50 ends.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

import minideep as md
from minideep import plots
from minideep.backend import as_numpy
from minideep.data import DataLoader, chapter_data
from minideep.diagnostics import block_report, chain_rule_gains, gate_analysis, lesion_study, lesioned, recorded_gates
from minideep.experiment import Experiment, RunContext, format_table, markdown_table
from minideep.models.highway import PAPER_CONV_PARAMETERS, ConvHighwayCIFAR, ConvHighwayNet, HighwayMLP, PlainMLP
from minideep.ops.loss import cross_entropy
from minideep.plots.figures import DIVERGING_CMAP, _new_figure, _save, _style
from minideep.results import read_results
from minideep.train import TrainingDiverged, evaluate, train_classifier


class Spec(NamedTuple):
    """One variant: a network family, its depth (hidden layers) or width, and what differs from the default."""

    family: str  # "plain", "highway", "conv" or "conv_cifar"
    depth: int = 0  # hidden layers of an MLP, the entry layer included
    width: int = 0  # channels of a conv highway net
    init: str = "glorot_uniform"  # Glorot's "normalized initialization"
    dataset: str | None = None  # None: the run's data set; "cifar10"/"cifar100": the paper's other data sets
    gate_bias: float | None = None  # None: searched (random search) or -1/-2/-3 by depth
    activations: tuple[str, ...] | None = None  # None: searched
    analysis: bool = False  # an analysis net: fixed configuration, gates, routing and lesions
    from_search: bool = False  # the analysis net is the best trial of the preset's ``analysis_search`` network


DEPTHS = (10, 20, 50, 100)
VARIANTS = {f"{family}_{d}": Spec(family, d) for family in ("plain", "highway") for d in DEPTHS}
VARIANTS.update({
    # The same 50-layer plain net started He-normal: the init alone moves it off the plateau (slowly).
    "plain_50_he": Spec("plain", 50, init="he_normal"),
    "conv_highway_16": Spec("conv", width=16),
    "conv_highway_32": Spec("conv", width=32),
    # The paper's analysis nets (Section 4): 50 hidden layers, tanh, b_T = -2 on MNIST and -4 on CIFAR-100.
    "highway_50_analysis": Spec("highway", 50, gate_bias=-2.0, activations=("tanh",), analysis=True),
    # The paper's procedure: analyse the best net of the 50-layer search (its best trial retrained, same seed).
    "best_highway_analysis": Spec("highway", 50, analysis=True, from_search=True),
    "highway_50_cifar100": Spec("highway", 50, dataset="cifar100", gate_bias=-4.0, activations=("tanh",),
                                analysis=True),
    # Table 3: the official 19-layer convolutional highway net (Highway B, ~2.3M parameters), CIFAR-10 and -100.
    "conv_highway_19_cifar10": Spec("conv_cifar", 19, dataset="cifar10"),
    "conv_highway_19_cifar100": Spec("conv_cifar", 19, dataset="cifar100"),
})

# Srivastava et al. (2015): Section 3.1 / Fig. 1 (FC, MNIST, training cross-entropy), Table 1 (conv, MNIST),
# Table 3 (conv, CIFAR-10/100: best (mean +- std) of 5 runs).
PAPER = {
    "plain_10": "train CE < 1e-4", "plain_20": "train CE < 1e-4",
    "plain_50": "degrades with depth", "plain_100": ">100x worse than highway_100",
    "highway_50": "as good as depth 10/20", "highway_100": "as good as depth 10/20",
    "conv_highway_16": "39K params, 99.43 (99.4+-0.03)", "conv_highway_32": "151K params, 99.55 (99.54+-0.02)",
    "conv_highway_19_cifar10": "92.40 (92.31+-0.12)", "conv_highway_19_cifar100": "67.76 (67.61+-0.15)",
}

#: The random search's ranges (the paper gives the searched quantities, not the ranges, except b_T in [-10, -1]):
#: lr log-uniform, 1 - momentum log-uniform, the per-epoch decay factor uniform, the activation a coin toss.
SEARCH_SPACE = {"lr": (1e-3, 0.3), "one_minus_momentum": (0.01, 0.5), "lr_decay": (0.8, 1.0),
                "activations": ("relu", "tanh"), "gate_bias": (-10.0, -1.0)}

PRESETS = {
    # Seconds (the test suite): two trials per network, analysis of the 10-layer highway net.
    "smoke": dict(n_train=60, n_val=10, n_test=20, epochs=1, batch_size=20, trials=2, top_k=1,
                  long_epochs=2, long_depths=[10], analysis_lrs=[0.03], analysis_epochs=1,
                  analysis_examples=40, lesion_examples=None, conv_n_train=10, conv_epochs=1, epoch_lines=False,
                  report_batch=4, report_probes=2, report_iterations=2),
    # The CPU default: 2,000 bundled images, 5 epochs per trial, 40 random trials per network (best and mean of
    # the best 10, the paper's statistic), the two best configurations retrained 4x longer, the paper's analysis
    # net. 10 trials took 120 s on the quiet 2-core machine; 40 are as many as fit the 10-minute budget.
    "quick": dict(n_train=2000, n_val=500, n_test=1000, epochs=5, batch_size=100, trials=40, top_k=10,
                  long_epochs=20, long_depths=[10, 100], analysis_lrs=[0.03, 0.1], analysis_epochs=10,
                  analysis_examples=1000, lesion_examples=None, conv_n_train=2000, conv_epochs=1, epoch_lines=False,
                  report_batch=16, report_probes=8, report_iterations=10),
    # The paper: all of MNIST (55,000 / 5,000 split), 100 random trials per network (best and mean of the best
    # 10), 100 epochs; lesions on the whole training set; conv nets with the official solver's length.
    "paper": dict(n_train=None, n_val=5000, n_test=None, epochs=100, batch_size=100, trials=100, top_k=10,
                  long_epochs=400, long_depths=[10, 100], analysis_lrs=[0.01, 0.03, 0.1], analysis_epochs=100,
                  analysis_examples=10000, lesion_examples=None, conv_n_train=None, conv_epochs=300,
                  epoch_lines=True, report_batch=16, report_probes=8, report_iterations=10),
}
PRESETS["smoke"]["analysis_search"] = "highway_10"
PRESETS["quick"]["analysis_search"] = PRESETS["paper"]["analysis_search"] = "highway_50"
for preset in PRESETS.values():
    # The analysis net: SGD with momentum and an exponentially decaying rate (Section 3.1); the conv nets use the
    # official solver (Nesterov, lr 0.01 / 0.025 for CIFAR, momentum 0.9, weight decay 1e-3, step schedule).
    preset.update(momentum=0.9, lr_decay=0.95, conv_lr=0.01, conv_weight_decay=1e-3, cifar_lr=0.025,
                  search_seed=2015)
# Table 3's nets: the official 200k steps of 100 = 400 epochs of CIFAR's 50,000 (smoke/quick: one short epoch).
PRESETS["paper"]["cifar_epochs"] = 400
PRESETS["smoke"]["cifar_epochs"] = PRESETS["quick"]["cifar_epochs"] = 1


def search_trials(family: str, depth: int, n: int, seed: int) -> list[dict]:
    """The random search's ``n`` configurations for one network, drawn from ``SEARCH_SPACE``.

    Reproducible: the generator is seeded with (``seed``, depth, family), so every network has
    its own trials and the same call gives the same trials. Plain networks draw no b_T.
    """
    rng = np.random.default_rng([seed, depth, {"plain": 0, "highway": 1}[family]])
    space, trials = SEARCH_SPACE, []
    for i in range(n):
        lo, hi = space["lr"]
        mlo, mhi = space["one_minus_momentum"]
        trial = {"trial": i, "lr": float(math.exp(rng.uniform(math.log(lo), math.log(hi)))),
                 "momentum": float(1 - math.exp(rng.uniform(math.log(mlo), math.log(mhi)))),
                 "lr_decay": float(rng.uniform(*space["lr_decay"])),
                 "activation": str(space["activations"][int(rng.integers(2))])}
        gate = float(rng.uniform(*space["gate_bias"]))  # drawn for both families, so the streams line up
        if family == "highway":
            trial["gate_bias"] = gate
        trials.append(trial)
    return trials


def search_summary(search: list[dict], k: int) -> dict:
    """Best final training loss and the mean of the best ``k`` (diverged trials count as infinite)."""
    losses = sorted(t["final_train_loss"] for t in search)
    finite = [v for v in losses if math.isfinite(v)]
    top = losses[:k]
    return {"best": losses[0] if losses else None, "top_k": k,
            "top_k_mean": float(np.mean(top)) if top and all(math.isfinite(v) for v in top) else None,
            "top_k_mean_finite": float(np.mean(finite[:k])) if finite else None,
            "trials": len(search), "diverged": sum(1 for t in search if t.get("diverged"))}


def load_data(args, config):
    data = chapter_data(args.dataset, "mnist", args.preset, data_dir=args.data_dir, n_train=config["n_train"],
                        n_val=config["n_val"], n_test=config["n_test"])
    # The CIFAR-100 analysis net loads its own data, and only when it runs.
    data.cifar100 = functools.partial(chapter_data, "auto", "cifar100", args.preset, data_dir=args.data_dir,
                                      n_train=config["n_train"], n_val=config["n_val"], n_test=config["n_test"])
    # Table 3's conv nets: CIFAR-10 or CIFAR-100 at 32x32 (the bundled stand-in off the paper preset).
    data.cifar = lambda name: chapter_data("auto", name, args.preset, data_dir=args.data_dir, n_train=config["n_train"],
                                           n_val=config["n_val"], n_test=config["n_test"], shape=(3, 32))
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


def train_trial(ctx: RunContext, spec: Spec, data, trial: dict, epochs: int, tag: str):
    """One trial (a configuration of the search, or a fixed one): (trained model and run, or None; record)."""
    cfg = ctx.config
    shape = data.train.images.shape[1:]
    md.manual_seed(ctx.seed)
    model = build_mlp(spec._replace(gate_bias=trial.get("gate_bias", spec.gate_bias)), trial["activation"],
                      int(np.prod(shape)), len(data.train.classes))
    train_eval = DataLoader(data.train, 500, transform=data.eval_transform)
    record = {**trial, "epochs": epochs, "loss_at_init": evaluate(model, train_eval)["loss"]}
    label = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in trial.items() if k != "trial")
    try:
        run = train_classifier(
            model, data, epochs=epochs, batch_size=cfg["batch_size"], seed=ctx.seed, optimizer="sgd", lr=trial["lr"],
            momentum=trial["momentum"], schedule="exponential", gamma=trial["lr_decay"], device=ctx.device,
            checkpoint_dir=ctx.checkpoint_dir / tag, resume=ctx.resume,
            progress=cfg["progress"], log=print if cfg["epoch_lines"] else None,
        )
    except TrainingDiverged as e:
        record.update(diverged=True, final_train_loss=math.inf, message=str(e).split(";")[0])
        print(f"    {tag} ({label}): diverged ({record['message']})")
        return None, record
    final = run["history"][-1]["train_loss"]
    record.update(diverged=not math.isfinite(final), final_train_loss=final if math.isfinite(final) else math.inf,
                  train_loss=[h["train_loss"] for h in run["history"]], test_accuracy=run["test_accuracy"])
    print(f"    {tag} ({label}): training loss {record['loss_at_init']:.3f} -> {final:.3g}, "
          f"test accuracy {run['test_accuracy']:.1%}")
    return (model, run), record


def training_cross_entropy(model, x: md.Tensor, y: np.ndarray, batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on (x, y), in eval mode, no graph."""
    total = correct = 0.0
    with md.no_grad():
        for i in range(0, len(y), batch_size):
            logits = model(x[i:i + batch_size])
            target = y[i:i + batch_size]
            total += float(cross_entropy(logits, target).item()) * len(target)
            correct += float((as_numpy(logits.data).argmax(axis=1) == target).sum())
    return total / len(y), correct / len(y)


def lesion_cross_entropy(model, x: md.Tensor, y: np.ndarray) -> dict:
    """The paper's lesioning (Fig. 4): each highway layer's gates shut (T = 0, the layer copies its input) in turn,
    training-set cross-entropy and accuracy with that layer lesioned."""
    model.eval()
    names = [name for name, m in model.named_modules() if isinstance(m, md.nn.Highway)]
    base_loss, base_acc = training_cross_entropy(model, x, y)
    losses, accs = [], []
    for name in names:
        with lesioned(model, name):
            loss, acc = training_cross_entropy(model, x, y)
        losses.append(loss)
        accs.append(acc)
    return {"names": names, "loss": losses, "accuracy": accs, "baseline_loss": base_loss,
            "baseline_accuracy": base_acc, "n_examples": int(len(y))}


def gate_statistics(model, x: md.Tensor, y: np.ndarray, threshold: float = 0.5) -> dict:
    """The two gate statistics of the paper's Fig. 2, both ways, and the routing of Fig. 3.

    With T[n, l, u] the transform gate of unit u in layer l for example n:
      active_on_average[l]:  fraction of units whose mean over the examples, mean_n T, exceeds ``threshold``
                             (the paper: "most transform gates are active on average");
      active_per_example[l]: fraction of units with T > ``threshold``, averaged over the examples
                             (the paper: "very selective activity for the single example");
      routing[c][l][u]:      mean of T over class c minus the mean over all examples (Fig. 3).
    """
    model.eval()
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, md.nn.Highway)]
    with md.no_grad(), recorded_gates(layers) as recorded:
        model(x)
    gates = np.stack([as_numpy(recorded[name]).astype(np.float64) for name, _ in layers], axis=1)  # (N, L, U)
    mean = gates.mean(axis=0)
    routing = {str(int(c)): np.round(gates[y == c].mean(axis=0) - mean, 4).tolist() for c in np.unique(y)}
    return {"threshold": threshold, "names": [name for name, _ in layers],
            "active_on_average": (mean > threshold).mean(axis=1).tolist(),
            "active_per_example": (gates > threshold).mean(axis=2).mean(axis=0).tolist(),
            "mean_gate_overall": float(gates.mean()), "routing": routing,
            "routing_max_abs": np.abs(np.stack([np.asarray(r) for r in routing.values()])).max(axis=(0, 2)).tolist()}


def analyse_highway(model, data, cfg: dict, device: str) -> dict:
    """Gates (Fig. 2), routing by class (Fig. 3) and lesions (Fig. 4) of a trained highway net."""
    x_train, y_train = arrays(data.train, data.eval_transform, cfg["analysis_examples"], device)
    x_lesion, y_lesion = arrays(data.train, data.eval_transform, cfg["lesion_examples"], device)
    x_test, y_test = arrays(data.test, data.eval_transform, None, device)
    model.eval()
    gates = gate_analysis(model, x_train, y_train)
    return {"gates": gates.to_dict(), "gate_statistics": gate_statistics(model, x_train, y_train),
            "lesion_train": lesion_cross_entropy(model, x_lesion, y_lesion),
            "lesion_test": lesion_study(model, (x_test, y_test)).to_dict(),
            "class_names": list(data.train.classes), "n_train_examples": int(len(y_train))}


def highway_theory(activation: str):
    """The gate argument for a highway layer's rms gain, with the gates at their bias t = sigmoid(b_T):

    J = diag(1 - T) + diag(T) diag(phi') W_H + diag(H - x) diag(T (1 - T)) W_T. Keeping the carry term and the
    transform term (W_H with unit rms gain, E[phi'^2] = 1/2 for ReLU, about 1 for tanh near 0) and leaving out
    the gate's own term: rms^2 ~ mean_u [(1 - t_u)^2 + t_u^2 E[phi'^2]]. Plain layers: no prediction.
    """
    slope2 = 0.5 if activation == "relu" else 1.0

    def theory(name: str, module, row: dict) -> float | None:
        if not isinstance(module, md.nn.Highway):
            return None
        t = 1.0 / (1.0 + np.exp(-as_numpy(module.gate.bias.data).astype(np.float64)))
        return float(np.sqrt(np.mean((1 - t) ** 2 + t ** 2 * slope2)))
    return theory


def blocks(model, x, y, cfg: dict, seed: int, activation: str) -> list[dict]:
    """``diagnostics.block_report`` over the entry layer, every hidden layer and the classifier, with the gate theory."""
    n = cfg["report_batch"]
    rows = block_report(model, x[:n], y[:n], probes=cfg["report_probes"], iterations=cfg["report_iterations"],
                        seed=seed, theory=highway_theory(activation))
    keep = ("name", "kind", "grad_norm", "on_gradient", "rms", "top", "predicted")
    return [{k: row[k] for k in keep} for row in rows]


def searched_best(ctx: RunContext) -> tuple[Spec, list[dict]]:
    """(spec, [best trial]) of the preset's ``analysis_search`` network, from ``--out``'s results.json."""
    name = ctx.config["analysis_search"]
    path = ctx.out / "results.json"
    try:
        best = read_results(path)["variants"][name]["runs"][str(ctx.seed)]["best"]
    except (FileNotFoundError, KeyError) as e:
        raise SystemExit(f"04_highway: best_highway_analysis analyses the best trial of {name} seed {ctx.seed}, "
                         f"which {path} does not hold ({e!r}); run {name} first (the presets list it before)") from e
    return VARIANTS[name]._replace(analysis=True, from_search=True), [best]


def run_mlp(ctx: RunContext, spec: Spec) -> dict:
    cfg = ctx.config
    load_before = os.getloadavg()[0]
    data = ctx.data.cifar100() if spec.dataset == "cifar100" else ctx.data
    if spec.dataset and data.notice:
        print(f"  {data.notice}")
    if spec.from_search:  # the best trial of the search, read from this run's results.json, retrained
        spec, trials = searched_best(ctx)
        epochs = cfg["epochs"]
    elif spec.analysis:  # the paper's configuration: tanh, b_T fixed; only the learning rate chosen
        trials = [{"trial": i, "lr": lr, "momentum": cfg["momentum"], "lr_decay": cfg["lr_decay"],
                   "activation": spec.activations[0], "gate_bias": spec.gate_bias}
                  for i, lr in enumerate(cfg["analysis_lrs"])]
        epochs = cfg["analysis_epochs"]
    else:
        trials = search_trials(spec.family, spec.depth, cfg["trials"], cfg["search_seed"])
        epochs = cfg["epochs"]
    search, best = [], None
    for trial in trials:
        trained, record = train_trial(ctx, spec, data, trial, epochs, f"trial{trial['trial']}")
        search.append(record)
        if trained is not None and math.isfinite(record["final_train_loss"]) and (
                best is None or record["final_train_loss"] < best[2]["final_train_loss"]):
            best = (*trained, record)
    out = {"family": spec.family, "depth": spec.depth, "init": spec.init, "search": search,
           "search_summary": search_summary(search, cfg["top_k"] if not spec.analysis else 1),
           "dataset": data.description, "analysis_net": spec.analysis}
    if best is None:
        print(f"  {ctx.variant}: every trial diverged")
        return {**out, "all_diverged": True, "load_average": [load_before, os.getloadavg()[0]]}
    model, run, record = best
    chosen = {k: record[k] for k in ("trial", "lr", "momentum", "lr_decay", "activation", "gate_bias") if k in record}
    out.update(run, best=chosen, loss_at_init=record["loss_at_init"], final_train_loss=record["final_train_loss"])
    if isinstance(model, HighwayMLP):
        out["gate_bias_init"] = model.gate_bias

    # The budget check: the best configuration trained longer (is depth 100 short of depth 10 for want of steps?).
    if not spec.analysis and spec.family == "highway" and spec.depth in cfg["long_depths"]:
        _, longer = train_trial(ctx, spec, data, chosen, cfg["long_epochs"], "longer")
        out["longer"] = longer

    # The chain rule at initialisation (the best setting's starting point) and after training, on one batch.
    x, y = next(iter(data.loaders(cfg["batch_size"], ctx.seed, ctx.device)[0]))
    md.manual_seed(ctx.seed)
    fresh = build_mlp(spec._replace(gate_bias=chosen.get("gate_bias", spec.gate_bias)), chosen["activation"],
                      model.layers[1].linear.in_features, model.classifier.out_features)
    fresh.to(ctx.device)
    out["chain_rule_at_init"] = chain_rule_gains(fresh, x, y).to_dict()
    out["chain_rule_trained"] = chain_rule_gains(model, x, y).to_dict()
    if spec.depth in (10, 50) or spec.analysis:
        out["blocks_at_init"] = blocks(fresh, x, y, cfg, ctx.seed, chosen["activation"])
        out["blocks_trained"] = blocks(model, x, y, cfg, ctx.seed, chosen["activation"])
    if spec.analysis:
        out["analysis"] = analyse_highway(model, data, cfg, ctx.device)
        out["gate_bias_trained_mean"] = float(np.mean([as_numpy(h.gate.bias.data).mean() for h in model.highways]))
    out["load_average"] = [load_before, os.getloadavg()[0]]
    s = out["search_summary"]
    print(f"  {ctx.variant}: best trial {chosen}, training loss {record['loss_at_init']:.3f} -> "
          f"{record['final_train_loss']:.3g}; best {s['best']:.3g}, mean of best {s['top_k']} "
          f"{s['top_k_mean'] if s['top_k_mean'] is not None else float('nan'):.3g}; test accuracy {run['test_accuracy']:.1%}")
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


def run_conv_cifar(ctx: RunContext, spec: Spec) -> dict:
    """Table 3's 19-layer highway net with the official solver (Nesterov, lr 0.025, x0.1 steps, weight decay 1e-3)."""
    cfg = ctx.config
    data = ctx.data.cifar(spec.dataset)
    if data.notice:
        print(f"  {data.notice}")
    md.manual_seed(ctx.seed)
    model = ConvHighwayCIFAR(len(data.train.classes), in_channels=data.train.images.shape[1])
    run = train_classifier(
        model, data, epochs=cfg["cifar_epochs"], batch_size=cfg["batch_size"], seed=ctx.seed, optimizer="nesterov",
        lr=cfg["cifar_lr"], momentum=cfg["momentum"], weight_decay=cfg["conv_weight_decay"], schedule="step",
        device=ctx.device, checkpoint_dir=ctx.checkpoint_dir, resume=ctx.resume, progress=cfg["progress"],
    )
    run.update(family="conv_cifar", dataset=data.description, parameters_counted=model.num_parameters())
    print(f"  {ctx.variant}: {model.num_parameters():,} parameters, test accuracy {run['test_accuracy']:.1%}")
    return run


def run_variant(ctx: RunContext) -> dict:
    spec = VARIANTS[ctx.variant]
    if spec.family == "conv_cifar":
        return run_conv_cifar(ctx, spec)
    return run_conv(ctx, spec) if spec.family == "conv" else run_mlp(ctx, spec)


def input_output_ratio(chain: dict | None) -> float | None:
    """||dL/dx|| / ||dL/dh_L||: what is left of the output gradient at the input (the product of all gains)."""
    return chain["products"][0] if chain else None


def _runs(results: dict, name: str) -> list[dict]:
    return list(results["variants"][name]["runs"].values()) if name in results["variants"] else []


def _first(results: dict, name: str) -> dict | None:
    runs = _runs(results, name)
    return runs[0] if runs else None


def _g(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return "diverged"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _config(best: dict) -> str:
    parts = [best.get("activation", "?"), f"lr {best['lr']:.3g}", f"momentum {best['momentum']:.3g}",
             f"decay {best['lr_decay']:.3g}"]
    if "gate_bias" in best:
        parts.append(f"b_T {best['gate_bias']:.2g}")
    return ", ".join(parts)


def _search_names(results: dict) -> list[str]:
    return [n for n in VARIANTS if n in results["variants"] and VARIANTS[n].family in ("plain", "highway")
            and not VARIANTS[n].analysis]


def _depths(names: list[str]) -> str:
    """"plain and highway at 10, 50, 100 layers" for the searched networks among ``names``."""
    specs = [VARIANTS[n] for n in names if n in VARIANTS and VARIANTS[n].family in ("plain", "highway")
             and not VARIANTS[n].analysis]
    families = sorted({s.family for s in specs}, key=("plain", "highway").index)
    return f"{' and '.join(families)} at {', '.join(str(d) for d in sorted({s.depth for s in specs}))} layers"


def setup_rows(results: dict) -> list[dict]:
    """The search's settings in this run beside the paper preset's (read from results.json and PRESETS)."""
    run, paper, data = results["config"], PRESETS["paper"], results["dataset"]
    this = f"{results['preset']} preset (this run)"
    trials = lambda c: f"{c['trials']}, {c['epochs']} (batch {c['batch_size']})"  # noqa: E731
    return [
        {"setting": "data", this: f"{data['name']}: {data['n_train']:,} train, {data['n_val']:,} validation, "
                                  f"{data['n_test']:,} test", "paper preset (GPU)": "MNIST: 55,000 / 5,000 / 10,000"},
        {"setting": "trials per network, epochs each", this: trials(run), "paper preset (GPU)": trials(paper)},
        {"setting": "reported", this: f"best, mean of the best {run['top_k']}",
         "paper preset (GPU)": f"best, mean of the best {paper['top_k']}"},
        {"setting": "networks", this: _depths(results["selected"]),
         "paper preset (GPU)": _depths(PAPER_VARIANTS)},
    ]


def tables(results: dict) -> dict[str, str]:
    """Markdown tables for the page, all read from results.json."""
    out = {"setup": markdown_table(setup_rows(results))}
    rows = []
    for name in _search_names(results):
        run = _first(results, name)
        s = run["search_summary"]
        rows.append({"network": name, "trials": s["trials"], "diverged": s["diverged"],
                     "best train CE": _g(s["best"]), f"mean of best {s['top_k']}": _g(s["top_k_mean"]),
                     "best configuration": _config(run["best"]) if "best" in run else "–",
                     "test acc % (best)": f"{100 * run['test_accuracy']:.1f}" if "test_accuracy" in run else "–",
                     "paper": PAPER.get(name, "")})
    if rows:
        out["search"] = markdown_table(rows, list(rows[0]))
    budget = []
    for name in _search_names(results):
        run = _first(results, name)
        if run.get("longer"):
            longer = run["longer"]
            budget.append({"network": name, "configuration": _config(run["best"]),
                           f"train CE after {run['search'][0]['epochs']} epochs": _g(run["final_train_loss"]),
                           f"after {longer['epochs']} epochs": _g(longer["final_train_loss"]),
                           "test acc % (longer)": f"{100 * longer['test_accuracy']:.1f}" if "test_accuracy" in longer
                           else "–"})
    if budget:
        out["budget"] = markdown_table(budget, list(budget[0]))
    for name in ("highway_100", "highway_10"):
        run = _first(results, name)
        if run:
            trials = sorted(run["search"], key=lambda t: t["final_train_loss"])
            out[f"trials_{name}"] = markdown_table(
                [{"trial": t["trial"], "activation": t["activation"], "lr": _g(t["lr"]), "momentum": _g(t["momentum"]),
                  "decay": _g(t["lr_decay"]), "b_T": _g(t.get("gate_bias")), "train CE": _g(t["final_train_loss"])}
                 for t in trials], ["trial", "activation", "lr", "momentum", "decay", "b_T", "train CE"])
    for variant, key in (("best_highway_analysis", "analysis"), ("highway_50_analysis", "analysis_paper_config")):
        analysis = _first(results, variant)
        if not analysis or "analysis" not in analysis:
            continue
        a = analysis["analysis"]
        st, les, g = a["gate_statistics"], a["lesion_train"], a["gates"]
        test_acc = a["lesion_test"]["accuracies"]
        rows = []
        for i in sorted({i for i in (0, 4, 9, 14, 19, 24, 29, 34, 39, 44) if i < len(st["names"])} | {len(st["names"]) - 1}):
            rows.append({"highway layer": i + 1, "b_T mean (trained)": f"{g['gate_bias_mean'][i]:.2f}",
                         "mean T": f"{g['mean_activity'][i]:.3f}",
                         "active on average": f"{st['active_on_average'][i]:.0%}",
                         "active per example": f"{st['active_per_example'][i]:.0%}",
                         "max abs(class − all)": f"{st['routing_max_abs'][i]:.3f}",
                         "train CE lesioned": f"{les['loss'][i]:.3f}",
                         "train acc lesioned %": f"{100 * les['accuracy'][i]:.1f}",
                         "test acc lesioned %": f"{100 * test_acc[i]:.1f}"})
        rows.append({"highway layer": "none (intact)", "b_T mean (trained)": "", "mean T": f"{st['mean_gate_overall']:.3f}",
                     "active on average": "", "active per example": "", "max abs(class − all)": "",
                     "train CE lesioned": f"{les['baseline_loss']:.3f}",
                     "train acc lesioned %": f"{100 * les['baseline_accuracy']:.1f}",
                     "test acc lesioned %": f"{100 * a['lesion_test']['baseline']:.1f}"})
        out[key] = markdown_table(rows, list(rows[0]))
    for name in ("plain_50", "highway_50", "highway_50_analysis", "best_highway_analysis"):
        run = _first(results, name)
        for when in ("at_init", "trained"):
            if run and run.get(f"blocks_{when}"):
                out[f"blocks_{name}_{when}"] = block_markdown(run[f"blocks_{when}"])
    counts = [{"network": f"conv highway, width {w}", "parameters (ours)": ConvHighwayNet(w).num_parameters(),
               "official topology": PAPER_CONV_PARAMETERS[w], "Table 1": label}
              for w, label in ((16, "39K"), (32, "151K"))]
    for row in counts:
        entry = results["variants"].get(f"conv_highway_{row['network'].rsplit(' ', 1)[-1]}")
        row["test acc % (ours)"] = _pm_pct(entry)
    out["conv_mnist"] = markdown_table(counts, list(counts[0]))
    cifar = []
    for name, paper in (("conv_highway_19_cifar10", "92.40 (92.31 ± 0.12)"), ("conv_highway_19_cifar100", "67.76 (67.61 ± 0.15)")):
        entry = results["variants"].get(name)
        cifar.append({"network": f"Highway B (19 layers), {VARIANTS[name].dataset}",
                      "parameters (ours)": ConvHighwayCIFAR(10 if name.endswith("10") else 100).num_parameters(),
                      "test acc %, best (mean ± sd)": _best_pm(entry), "runs": len(entry["runs"]) if entry else 0,
                      "paper (5 runs)": paper})
    out["conv_cifar"] = markdown_table(cifar, list(cifar[0]))
    return out


def _pm_pct(entry: dict | None) -> str:
    if not entry:
        return "not run"
    return f"{100 * entry['test_accuracy']:.2f}" + (f" ± {100 * entry['test_accuracy_std']:.2f}" if len(entry["runs"]) > 1 else "")


def _best_pm(entry: dict | None) -> str:
    if not entry:
        return "not run"
    accs = [r["test_accuracy"] for r in entry["runs"].values()]
    return f"{100 * max(accs):.2f} ({100 * np.mean(accs):.2f} ± {100 * np.std(accs):.2f})"


def block_markdown(rows: list[dict], every: int = 6) -> str:
    """Every ``every``-th hidden layer's row of a block report (and the entry layer, the last and the classifier)."""
    keep = sorted(set(range(0, len(rows), every)) | {1, len(rows) - 2, len(rows) - 1})
    table = [{"block": rows[i]["name"], "kind": rows[i]["kind"], "‖dL/dh‖": _g(rows[i]["grad_norm"]),
              "on gradient": _g(rows[i]["on_gradient"]), "rms": _g(rows[i]["rms"]), "top": _g(rows[i]["top"]),
              "gate theory (rms)": _g(rows[i].get("predicted"))} for i in keep if 0 <= i < len(rows)]
    return markdown_table(table, list(table[0]))


def claims(results: dict) -> list[dict]:
    """The paper's headline claims with the run's numbers beside them; every verdict computed from ``results``."""
    out = []
    preset = results["preset"]
    data = results["dataset"]
    setup = f"{preset} preset, {data['name']}, {data['n_train']} training images"

    def add(claim, source, paper, ours, verdict, evidence):
        out.append({"claim": claim, "source": source, "paper": paper, "ours": ours, "verdict": verdict,
                    "evidence": evidence})

    def best(name):
        run = _first(results, name)
        return None if run is None or "search_summary" not in run else run["search_summary"]["best"]

    cfg = results["config"]
    search_note = (f"best of {cfg.get('trials')} random trials, {cfg.get('epochs')} epochs each; {setup}")
    p10 = best("plain_10")
    add("10- and 20-layer plain networks reach a training cross-entropy below 1e-4", "Srivastava et al., §3.1 / Fig. 1",
        "< 1e-4", _g(p10), "not run" if p10 is None else ("reproduced" if p10 < 1e-4 else "differs"), search_note)
    p50, p100_ = best("plain_50"), best("plain_100")
    chain = [v for v in (p10, p50, p100_) if v is not None]
    add("Plain networks degrade with depth", "§3.1 / Fig. 1", "much worse at 50/100 layers",
        f"plain_10 {_g(p10)}, plain_50 {_g(p50)}, plain_100 {_g(p100_)}", "not run" if len(chain) < 2 else
        ("reproduced" if all(a < b for a, b in zip(chain, chain[1:])) and chain[-1] > 2 * chain[0] else "differs"),
        "reproduced when the best training CE rises at every depth step and the deepest plain net's is over 2x "
        "plain_10's; " + search_note)
    h10, h50, h100 = best("highway_10"), best("highway_50"), best("highway_100")
    for name, value in (("highway_50", h50), ("highway_100", h100)):
        add(f"{name.replace('_', '-')} optimises as well as the 10-layer highway net", "§3.1 / Fig. 1",
            "as good as depth 10/20", f"{_g(value)} vs {_g(h10)}",
            "not run" if None in (value, h10) else ("reproduced" if value <= 2 * h10 else "differs"),
            "reproduced when its best training CE is within 2x highway_10's; " + search_note)
    longer = {n: (_first(results, n) or {}).get("longer") for n in ("highway_10", "highway_100")}
    if all(longer.values()):
        l10, l100 = longer["highway_10"]["final_train_loss"], longer["highway_100"]["final_train_loss"]
        add("highway-100 as good as highway-10, given a longer budget", "§3.1 / Fig. 1", "as good as depth 10/20",
            f"{_g(l100)} vs {_g(l10)} after {longer['highway_10']['epochs']} epochs", "reproduced" if l100 <= 2 * l10 else "differs",
            "each network's best search configuration retrained 4x longer")
    p100 = best("plain_100")
    add("highway-100 is more than 100x better than plain-100", "§3.1", "> 2 orders of magnitude",
        f"plain_100 {_g(p100)}, highway_100 {_g(h100)}" + (f" (x{p100 / h100:.3g})" if None not in (p100, h100) else ""),
        "not run" if None in (p100, h100) else ("reproduced" if p100 > 100 * h100 else "differs"),
        "ratio of the best training CEs; " + search_note)
    paper_net = _first(results, "highway_50_analysis")
    if paper_net and "search_summary" in paper_net:
        loss = paper_net["search_summary"]["best"]
        init = paper_net.get("loss_at_init")
        add("The paper's MNIST analysis net (50 hidden layers, tanh, b_T = -2) trains well", "§4 / Fig. 2",
            "the best net of the search", f"train CE {_g(init)} -> {_g(loss)}",
            "reproduced" if loss is not None and init is not None and loss < 0.5 * init else "differs",
            f"best of the learning rates {cfg.get('analysis_lrs')} (momentum {cfg.get('momentum')}, "
            f"decay {cfg.get('lr_decay')}), {cfg.get('analysis_epochs')} epochs; {setup}")
    analysis = _first(results, "best_highway_analysis")
    a = (analysis or {}).get("analysis")
    an_setup = (f"the best 50-layer highway net of the search ({_config(analysis['best'])}), {setup}"
                if a else "")
    if a:
        init, trained = analysis["gate_bias_init"], analysis["gate_bias_trained_mean"]
        add("Most transform-gate biases decreased further during training", "§4.1 / Fig. 2", "b_T below its start",
            f"mean b_T {init:.4f} -> {trained:.4f}", "reproduced" if trained < init else "differs", an_setup)
        st = a["gate_statistics"]
        on_avg, per_ex = float(np.mean(st["active_on_average"])), float(np.mean(st["active_per_example"]))
        add("Most transform gates are active on average", "§4.1 / Fig. 2", "most units: mean T > 0.5",
            f"{on_avg:.0%} of units have mean T > 0.5", "reproduced" if on_avg > 0.5 else "differs",
            "mean over the analysis examples, per unit, averaged over the layers; " + an_setup)
        add("Per example, gate activity is very selective (sparse)", "§4.1 / Fig. 2", "few gates open per example",
            f"{per_ex:.0%} of gates have T > 0.5 per example", "reproduced" if per_ex < 0.5 and per_ex < on_avg + 1e-12
            else "differs", "fraction of units with T > 0.5 in each example, averaged; " + an_setup)
        r = np.asarray(st["routing_max_abs"])
        early, late = float(r[:15].mean()), float(r[15:].mean()) if len(r) > 15 else float("nan")
        add("Mean gate activity differs by class, mostly in the first 15 layers (MNIST)", "§4.1 / Fig. 3",
            "differences in layers 1-15", f"max abs(class − all) {early:.3f} (layers 1-15) vs {late:.3f} (16-49)",
            "reproduced" if early > late else "differs", "per layer, the largest class-mean minus overall-mean gate "
            "over units and classes, averaged over the layers of each range; " + an_setup)
        les = a["lesion_train"]
        rise = np.asarray(les["loss"]) - les["baseline_loss"]
        early_rise = float(rise[:14].max())
        mid_rise = float(np.median(rise[14:45])) if len(rise) > 14 else float("nan")
        add("Lesioning an early layer raises the training error a lot; layers 15-45 have close to no effect",
            "§4.2 / Fig. 4", "early: large; 15-45: ~0", f"train CE +{early_rise:.3g} (worst of layers 1-14) vs "
            f"+{mid_rise:.3g} (median of 15-45)", "reproduced" if early_rise > 10 * max(mid_rise, 1e-12) else "differs",
            f"training-set cross-entropy with one layer's gates shut, on {les['n_examples']} training examples "
            f"(the run's whole training set); intact {les['baseline_loss']:.3g}")
        quiet = float(np.mean(np.abs(np.asarray(les["accuracy"]) - les["baseline_accuracy"]) <= 0.01))
        add("About 60% of the layers do not contribute (MNIST)", "§4.2", "~60%",
            f"{quiet:.0%} of layers change training accuracy by at most 1 point",
            "reproduced" if 0.4 <= quiet <= 0.8 else "differs", f"training set, {les['n_examples']} examples; " + an_setup)
    else:
        for claim in ("Gate biases, gate activity, routing and lesions of the analysis net",):
            add(claim, "§4", "Figs 2-4", "not run", "not run", "best_highway_analysis not in this run")
    counts = {w: ConvHighwayNet(w).num_parameters() for w in (16, 32)}
    add("The 10-layer conv highway nets have 39K and 151K parameters", "Table 1", "39K / 151K",
        f"{counts[16]:,} / {counts[32]:,}", "reproduced" if (counts[16], counts[32]) == (38_986, 151_690) else "differs",
        "parameters of ConvHighwayNet(16) and (32), the official Caffe topology")
    for name, paper in (("conv_highway_16", "99.43%"), ("conv_highway_32", "99.55%")):
        entry = results["variants"].get(name)
        full = preset == "paper" and data["name"] == "mnist"
        add(f"{name}: MNIST test accuracy", "Table 1", paper, _pm_pct(entry) + ("%" if entry else ""),
            "not run" if not entry or not full else ("reproduced" if abs(100 * entry["test_accuracy"] - float(paper[:-1])) < 0.2
                                                     else "differs"),
            "the paper preset trains it with the official solver on all of MNIST" if not full else "mean over seeds")
    for name, paper in (("conv_highway_19_cifar10", "92.40 (92.31 ± 0.12)%"),
                        ("conv_highway_19_cifar100", "67.76 (67.61 ± 0.15)%")):
        entry = results["variants"].get(name)
        ours = _best_pm(entry)
        full = preset == "paper" and entry is not None
        add(f"{name}: test accuracy, best (mean ± sd) of 5 runs", "Table 3", paper, ours,
            "not run" if not full else ("reproduced" if abs(100 * max(r["test_accuracy"] for r in entry["runs"].values())
                                                         - float(paper.split()[0])) < 1.0 else "differs"),
            "paper preset only (GPU): the official 19-layer net and solver, 5 seeds")
    return out


def summarize(results: dict) -> str:
    rows = []
    for name in sorted(results["variants"], key=list(VARIANTS).index):
        entry = results["variants"][name]
        run = next(iter(entry["runs"].values()))
        best = run.get("best", {})
        s = run.get("search_summary", {})
        rows.append({
            "variant": name,
            "params": run.get("parameters"),
            "best config": _config(best) if best else None,
            "train CE: init": run.get("loss_at_init"),
            "-> best": s.get("best", (run.get("history") or [{}])[-1].get("train_loss")),
            f"mean best {s.get('top_k', '')}": s.get("top_k_mean"),
            "test acc %": round(100 * entry["test_accuracy"], 2) if "test_accuracy" in entry else None,
            "paper": PAPER.get(name),
        })
    data = results["dataset"]
    header = (f"Chapter 04 ({results['preset']} preset, {data['name']}: {data['n_train']} train / "
              f"{data['n_test']} test images, device {results['device']}); training loss = mean cross-entropy "
              "over the last epoch's batches; best and mean of the best k of the random search")
    return "\n".join([header, format_table(rows)])


def _search_figure(results: dict, path: Path) -> Path:
    """Every trial's final training loss by depth, plain and highway, with the best and the mean of the best k."""
    fig, axes = _new_figure(1, 1)
    ax = axes[0, 0]
    for i, family in enumerate(("plain", "highway")):
        depths, bests, tops = [], [], []
        for name in _search_names(results):
            spec = VARIANTS[name]
            if spec.family != family:
                continue
            run = _first(results, name)
            finite = [t["final_train_loss"] for t in run["search"] if math.isfinite(t["final_train_loss"])]
            jitter = spec.depth * (0.97 if family == "plain" else 1.03)
            ax.scatter([jitter] * len(finite), finite, s=12, alpha=0.5, color=_style(i)["color"])
            depths.append(spec.depth)
            bests.append(run["search_summary"]["best"])
            tops.append(run["search_summary"]["top_k_mean_finite"])
        if depths:
            ax.plot(depths, bests, "-o", color=_style(i)["color"], label=f"{family}: best")
            ax.plot(depths, tops, "--", color=_style(i)["color"], label=f"{family}: mean of best {results['config']['top_k']}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("final training cross-entropy (nats)")
    ax.set_title(f"Random search, {results['config']['trials']} trials per network (dots: every trial)")
    ax.legend(fontsize=8)
    return _save(fig, path, "chapter 04 search figure")


def _gate_statistics_figure(stats: dict, path: Path, title: str) -> Path:
    fig, axes = _new_figure(1, 1)
    ax = axes[0, 0]
    layers = np.arange(1, len(stats["names"]) + 1)
    ax.plot(layers, stats["active_on_average"], "-o", ms=3, label="active on average: fraction of units with mean T > 0.5")
    ax.plot(layers, stats["active_per_example"], "-s", ms=3, label="active per example: fraction of units with T > 0.5")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("highway layer")
    ax.set_ylabel("fraction of the 50 units")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path, "chapter 04 gate statistics")


def _routing_figure(routing: dict, names: list[str], path: Path, title: str) -> Path:
    """The paper's Fig. 3: per class, mean gate activity of the class minus the mean over all examples."""
    classes = sorted(routing, key=int)
    cols = 5
    rows = math.ceil(len(classes) / cols)
    fig, axes = _new_figure(rows, cols, sharex=True, sharey=True)
    limit = max(float(np.abs(np.asarray(routing[c])).max()) for c in classes) or 1.0
    image = None
    for k, c in enumerate(classes):
        ax = axes[k // cols, k % cols]
        image = ax.imshow(np.asarray(routing[c]), cmap=DIVERGING_CMAP, vmin=-limit, vmax=limit, aspect="auto",
                          interpolation="nearest")
        ax.set_title(f"{c}: {names[int(c)]}" if int(c) < len(names) else c, fontsize=8)
        if k % cols == 0:
            ax.set_ylabel("layer")
        if k // cols == rows - 1:
            ax.set_xlabel("unit")
    for k in range(len(classes), rows * cols):
        axes[k // cols, k % cols].axis("off")
    fig.colorbar(image, ax=axes, shrink=0.8, label="class mean T − overall mean T")
    fig.suptitle(title)
    return _save(fig, path, "chapter 04 routing figure")


def _lesion_train_figure(lesion: dict, path: Path, title: str) -> Path:
    fig, axes = _new_figure(1, 2)
    layers = np.arange(1, len(lesion["names"]) + 1)
    for ax, key, base, label in ((axes[0, 0], "loss", lesion["baseline_loss"], "training cross-entropy (nats)"),
                                 (axes[0, 1], "accuracy", lesion["baseline_accuracy"], "training accuracy")):
        ax.plot(layers, lesion[key], "-o", ms=3)
        ax.axhline(base, ls="--", color="0.4", label="intact network")
        ax.set_xlabel("lesioned highway layer")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    axes[0, 0].set_yscale("log")
    fig.suptitle(title)
    return _save(fig, path, "chapter 04 lesion figure")


def _budget_figure(results: dict, path: Path) -> Path | None:
    runs = {n: (_first(results, n) or {}).get("longer") for n in _search_names(results)}
    runs = {n: r for n, r in runs.items() if r and r.get("train_loss")}
    if not runs:
        return None
    fig, axes = _new_figure(1, 1)
    ax = axes[0, 0]
    for i, (name, run) in enumerate(runs.items()):
        short = _first(results, name)
        ax.plot(range(1, len(run["train_loss"]) + 1), run["train_loss"], "-", color=_style(i)["color"],
                label=f"{name}, best configuration, {run['epochs']} epochs")
        ax.plot(range(1, len(short["history"]) + 1), [h["train_loss"] for h in short["history"]], "o",
                color=_style(i)["color"], label=f"{name}, the search's {len(short['history'])} epochs")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training cross-entropy (nats)")
    ax.set_title("The budget check: the best search configuration trained longer")
    ax.legend(fontsize=8)
    return _save(fig, path, "chapter 04 budget figure")


def figures(results: dict, out: Path) -> list[Path]:
    variants, made = results["variants"], []
    curves: dict[str, dict[int, list]] = {}
    for name, entry in variants.items():
        spec = VARIANTS[name]
        runs = [r["history"] for r in entry["runs"].values() if r.get("history")]
        if spec.family not in ("plain", "highway") or spec.dataset or spec.analysis or not runs:
            continue
        family = spec.family + (", He init" if spec.init == "he_normal" else "")
        curves.setdefault(family, {})[spec.depth] = runs
    if curves:
        made.append(plots.depth_curves(curves, out / "depth_curves.png",
                                       title="Training loss by depth (the best trial of each random search)"))
    if _search_names(results):
        made.append(_search_figure(results, out / "search.png"))
    budget = _budget_figure(results, out / "budget.png")
    if budget:
        made.append(budget)

    depth = 50 if "plain_50" in variants and "highway_50" in variants else 10
    pair = [(label, _runs(results, f"{label}_{depth}")) for label in ("plain", "highway")]
    if all(runs and "chain_rule_at_init" in runs[0] for _, runs in pair):
        grid = {when: {label: runs[0][key]["grad_norms"] for label, runs in pair}
                for when, key in (("at initialisation", "chain_rule_at_init"), ("after training", "chain_rule_trained"))}
        made.append(plots.gains_grid(grid, out / f"chain_rule_depth{depth}.png",
                                     title=f"Gradient norm at every layer output, plain vs highway, depth {depth}"))
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
        suffix = {"highway_50_analysis": "_paper_config", "highway_50_cifar100": "_cifar100"}.get(name, "")
        where = f"{name} on {run['dataset']['name']}"
        a = run["analysis"]
        g = a["gates"]
        made.append(plots.gate_activity(g["mean_gate"], g["example_gate"], g["block_outputs"], g["gate_biases"],
                                        out / f"gates{suffix}.png", title=f"Transform gates and block outputs, {where}"))
        made.append(_gate_statistics_figure(a["gate_statistics"], out / f"gate_statistics{suffix}.png",
                                            f"Gate activity both ways, {where}"))
        made.append(_routing_figure(a["gate_statistics"]["routing"], a["class_names"], out / f"routing{suffix}.png",
                                    f"Routing by class (Fig. 3): class-mean minus overall-mean transform gate, {where}"))
        made.append(_lesion_train_figure(a["lesion_train"], out / f"lesion_train{suffix}.png",
                                         f"Lesioning on the training set ({a['lesion_train']['n_examples']} examples), "
                                         f"{where}: one layer's gates shut"))
        lesion = a["lesion_test"]
        layers = list(range(1, len(lesion["names"]) + 1))
        made.append(plots.lesion_curve(layers, lesion["accuracies"], lesion["baseline"],
                                       out / f"lesion_test{suffix}.png", chance=1 / run["dataset"]["classes"],
                                       title=f"Lesioning, {where}: test accuracy with one layer's gates shut",
                                       xlabel="lesioned highway layer"))
    return made


PAPER_VARIANTS = [v for v in VARIANTS if v != "plain_50_he" and v != "best_highway_analysis"] + ["best_highway_analysis"]

EXPERIMENT = Experiment(
    chapter="04_highway",
    description=__doc__.split("\n\n")[0],
    presets=PRESETS,
    variants=list(VARIANTS),
    default_variants={
        "smoke": ["plain_10", "highway_10", "highway_50_analysis", "conv_highway_16", "best_highway_analysis"],
        "quick": ["highway_50_analysis", "plain_10", "highway_10", "plain_50", "highway_50", "highway_100", "plain_100",
                  "best_highway_analysis"],
        "paper": PAPER_VARIANTS,
    },
    load_data=load_data,
    run_variant=run_variant,
    summarize=summarize,
    figures=figures,
    claims=claims,
    tables=tables,
).script(__name__)
