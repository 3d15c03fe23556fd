"""Chapter 02: the chain rule in deep plain networks (Glorot & Bengio 2010; He et al. 2015).

Plain MLPs of depth 2 to 50 (784 -> width -> ... -> width -> 10, every hidden layer a
Linear followed by the activation) with sigmoid, tanh or ReLU, under three weight inits:

* ``small``:  W ~ N(0, 0.01^2), a fixed scale that ignores the layer's width;
* ``glorot``: W ~ U(-a, a) with Var(W) = 2 / (fan_in + fan_out) (Glorot & Bengio 2010, Eq. 16);
* ``he``:     W ~ N(0, 2 / fan_in) (He et al. 2015, Eq. 10); biases start at 0 in all three.

For every network the chapter measures, on one fixed batch, the gradient norm
n_l = ||dL/dh_l|| at every hidden layer's output h_l and the per-layer gain
g_l = n_{l-1} / n_l (``minideep.diagnostics.chain_rule_gains``), checks the identity
n_l = n_L * g_L * ... * g_{l+1}, then trains with plain SGD for a few hundred steps and
measures again. The printed table says which (activation, init) pairs vanish, explode or
stay stable at the largest depth.

    python chapters/02_chain_rule.py                       # quick preset, bundled data, a few minutes
    python chapters/02_chain_rule.py --preset smoke        # seconds
    python chapters/02_chain_rule.py --variants relu_he sigmoid_small
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import minideep as md
import minideep.nn.functional as F
from minideep import nn, optim, plots
from minideep.backend import as_numpy, to_device
from minideep.data import load_dataset
from minideep.diagnostics.chain_rule import chain_rule_gains
from minideep.experiment import Experiment, RunContext, format_table
from minideep.models.plain_mlp import plain_mlp

ACTIVATIONS = ("sigmoid", "tanh", "relu")
INIT_LABELS = {"small": "N(0, 0.01²)", "glorot": "Glorot", "he": "He"}
VARIANTS = tuple(f"{a}_{i}" for a in ACTIVATIONS for i in INIT_LABELS)

#: |dL/dh_1| / |dL/dh_L| below VANISH or above EXPLODE (at the largest depth) names the verdict:
#: the first layer gets less than a tenth, or more than ten times, the output layer's gradient.
VANISH, EXPLODE = 0.1, 10.0
#: E[f'(z)^2] for pre-activations z near 0 (sigmoid' = 1/4, tanh' = 1) or symmetric about 0 (ReLU).
SLOPE_SQUARED = {"sigmoid": 1 / 16, "tanh": 1.0, "relu": 0.5}

_COMMON = {"width": 64, "lr": 0.05, "diagnostic_batch": 256, "dtype": "float64", "dataset": "bundled",
           "chain_rule_figures": ["sigmoid_glorot", "tanh_he", "relu_he"]}
PRESETS = {
    "smoke": {**_COMMON, "depths": [2, 4], "steps": 3, "batch_size": 32, "log_every": 1, "table_depth": 4,
              "diagnostic_batch": 64, "chain_rule_figures": ["relu_he"]},
    "quick": {**_COMMON, "depths": [2, 5, 10, 20, 50], "steps": 200, "batch_size": 32, "log_every": 10,
              "table_depth": 10, "curve_depth": 20},
    # Glorot & Bengio's MLPs were 1,000 units wide and trained with minibatches of 10; meant for a GPU.
    "paper": {**_COMMON, "width": 1000, "depths": [2, 5, 10, 20, 50, 100], "steps": 2000, "batch_size": 10,
              "lr": 0.01, "log_every": 50, "table_depth": 10, "curve_depth": 20},
}


# ----------------------------------------------------------------------------------------
# Data: flattened images, standardised
# ----------------------------------------------------------------------------------------


@dataclass
class FlatData:
    """Train and test images as (N, C*H*W) floats with mean 0 and std 1 over the training pixels."""

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any
    description: dict
    notice: str | None


def load_data(args: Any, config: dict) -> FlatData:
    """The data set of ``--dataset`` (default: the bundled Fashion-MNIST subset), flattened."""
    name = config["dataset"] if args.dataset == "auto" else args.dataset
    train = load_dataset(name, "train", data_dir=args.data_dir)
    test = load_dataset(name, "test", data_dir=args.data_dir)
    dtype = np.dtype(config["dtype"])
    x_train = train.images.reshape(len(train.images), -1).astype(dtype) / 255
    x_test = test.images.reshape(len(test.images), -1).astype(dtype) / 255
    mean, std = float(x_train.mean()), float(x_train.std())
    description = {"name": train.name, "train": len(x_train), "test": len(x_test), "features": x_train.shape[1],
                   "classes": len(train.classes), "source": train.source,
                   "preprocessing": f"pixels / 255, flattened, minus {mean:.4f}, divided by {std:.4f}"}
    notice = f"data: {train.name}, {len(x_train):,} training / {len(x_test):,} test images ({train.source})"
    arrays = [(x_train - mean) / std, train.labels, (x_test - mean) / std, test.labels]
    return FlatData(*(to_device(a, args.device) for a in arrays), description, notice)


# ----------------------------------------------------------------------------------------
# The networks
# ----------------------------------------------------------------------------------------


INITS = {"small": "small_normal", "glorot": "glorot_uniform", "he": "he_normal"}  # names in minideep.nn.init


# --8<-- [start:predicted_gain]
def weight_variance(init: str, fan_in: int, fan_out: int) -> float:
    """Var(W) of each init: 0.01^2, 2 / (fan_in + fan_out) (Glorot) or 2 / fan_in (He)."""
    return {"small": 0.01**2, "glorot": 2 / (fan_in + fan_out), "he": 2 / fan_in}[init]


def predicted_gain(activation: str, init: str, width: int) -> float:
    """The variance argument's gain of one hidden layer: sqrt(n Var(W) E[f'(z)^2]).

    With dL/dh_{l-1} = W^T (f'(z) * dL/dh_l), each of the n = fan_in components is a sum
    of fan_out terms, so E||dL/dh_{l-1}||^2 = n Var(W) E[f'(z)^2] ||dL/dh_l||^2 for
    independent weights. Exact for ReLU (E[f'^2] = 1/2 for any symmetric z); for sigmoid
    and tanh it assumes small pre-activations (the linear regime around 0).
    """
    return float(np.sqrt(width * weight_variance(init, width, width) * SLOPE_SQUARED[activation]))
# --8<-- [end:predicted_gain]




# ----------------------------------------------------------------------------------------
# One variant: every depth, at initialisation and after training
# ----------------------------------------------------------------------------------------


def _summary(report: Any) -> dict[str, Any]:
    """The numbers a table needs from a ChainRuleReport, plus the full report for the JSON."""
    n = np.asarray(report.grad_norms, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(n[1] / n[-1])  # |dL/dh_1| / |dL/dh_L|: first hidden layer vs the output
    full = report.to_dict()
    full["forward"] = [{k: v for k, v in s.items() if k != "shape"} for s in full["forward"]]
    hidden = np.asarray(report.gains[1:-1], dtype=np.float64)  # g_2 .. g_D: the width x width layers
    return {"ratio_first_to_last": ratio, "geometric_mean_gain": report.geometric_mean_gain,
            "median_hidden_gain": float(np.median(hidden)) if hidden.size else None,
            "identity_holds": report.identity_holds, "max_relative_error": report.max_relative_error,
            "note": report.note, "loss": report.loss, "report": full}


def _test_accuracy(model: nn.Module, x: Any, y: Any) -> float:
    with md.no_grad():
        logits = as_numpy(model(md.tensor(x)).data)
    return float((logits.argmax(axis=1) == as_numpy(y)).mean())


def run_depth(ctx: RunContext, depth: int) -> dict[str, Any]:
    """Build one network, measure the chain rule, train with SGD, measure again, test."""
    cfg, data = ctx.config, ctx.data
    activation, init = ctx.variant.split("_")
    md.manual_seed(ctx.seed)  # same seed for every depth: the first layers are drawn alike
    model, points = plain_mlp(depth, cfg["width"], activation, INITS[init], data.x_train.shape[1],
                              int(data.y_train.max()) + 1, np.dtype(cfg["dtype"]))
    model.to(ctx.device)
    xd, yd = data.x_train[: cfg["diagnostic_batch"]], data.y_train[: cfg["diagnostic_batch"]]
    at_init = chain_rule_gains(model, xd, yd, layers=points)

    opt = optim.SGD(model.named_parameters(), lr=cfg["lr"])
    rng = np.random.default_rng(ctx.seed)
    n_train, batch = len(data.x_train), cfg["batch_size"]
    order, cursor = rng.permutation(n_train), 0
    history, diverged, recent = [], None, []
    for step in range(1, cfg["steps"] + 1):
        if cursor + batch > n_train:  # a new shuffled pass over the training set
            order, cursor = rng.permutation(n_train), 0
        idx = order[cursor: cursor + batch]
        cursor += batch
        loss = F.cross_entropy(model(md.tensor(data.x_train[idx])), data.y_train[idx])
        value = loss.item()
        if not np.isfinite(value):
            diverged = step
            history.append({"epoch": step * batch / n_train, "step": step, "train_loss": value})
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        recent.append(value)
        if step % cfg["log_every"] == 0 or step == cfg["steps"]:  # the mean over the steps since the last record
            history.append({"epoch": step * batch / n_train, "step": step, "train_loss": float(np.mean(recent))})
            recent = []

    trained = chain_rule_gains(model, xd, yd, layers=points)
    return {"depth": depth, "init": _summary(at_init), "trained": _summary(trained), "history": history,
            "diverged_at_step": diverged, "test_accuracy": _test_accuracy(model, data.x_test, data.y_test),
            "table_at_init": at_init.table()}


def verdict(summary: dict) -> str:
    """vanish / explode / stable from the ratio |dL/dh_1| / |dL/dh_L| of one measurement."""
    ratio = summary["ratio_first_to_last"]
    if not np.isfinite(summary["loss"]):
        return "diverged"
    if np.isnan(ratio):  # 0 / 0: no gradient reached even the output layer's input
        return "vanish"
    if ratio < VANISH:
        return "vanish"
    return "explode" if ratio > EXPLODE else "stable"


def run_variant(ctx: RunContext) -> dict:
    """Every depth of the preset for one (activation, init) pair."""
    cfg, log = ctx.config, ctx.log
    depths = {}
    for depth in cfg["depths"]:
        t0 = time.perf_counter()
        result = run_depth(ctx, depth)
        result["wall_time_s"] = time.perf_counter() - t0
        depths[str(depth)] = result
        i, t = result["init"], result["trained"]
        log(f"  depth {depth:3d}: |dL/dh_1|/|dL/dh_L| {i['ratio_first_to_last']:9.3g} at init, "
            f"{t['ratio_first_to_last']:9.3g} after {cfg['steps']} steps; mean gain {i['geometric_mean_gain']:.3g}; "
            f"identity {'holds' if i['identity_holds'] else 'FAILS'} (rel. err {i['max_relative_error']:.0e}); "
            f"test acc {result['test_accuracy']:.1%}  [{result['wall_time_s']:.1f} s]")
        if depth == cfg["table_depth"]:
            log(f"  depth {depth} at initialisation, layer by layer:")
            log("    " + result["table_at_init"].replace("\n", "\n    "))
    activation, init = ctx.variant.split("_")
    deepest = depths[str(max(cfg["depths"]))]
    return {"activation": activation, "init": init, "depths": depths,
            "predicted_gain": predicted_gain(activation, init, cfg["width"]),
            "test_accuracy": deepest["test_accuracy"], "test_accuracy_depth": max(cfg["depths"]),
            "history": deepest["history"],
            "verdict_at_init": verdict(deepest["init"]), "verdict_trained": verdict(deepest["trained"])}


# ----------------------------------------------------------------------------------------
# Tables and figures
# ----------------------------------------------------------------------------------------


def _runs(results: dict) -> dict[str, dict]:
    """variant -> its first seed's run, in the chapter's variant order."""
    return {v: next(iter(results["variants"][v]["runs"].values())) for v in VARIANTS if v in results["variants"]}


def _identity(summary: dict) -> str:
    if summary["identity_holds"]:
        return "holds"
    return "n/a (a norm is 0)" if summary["note"] else "FAILS"


def summarize(results: dict) -> str:
    runs = _runs(results)
    if not runs:
        return "(no runs)"
    cfg = results["config"]
    deepest, steps = str(max(cfg["depths"])), cfg["steps"]
    rows = []
    for run in runs.values():
        d = run["depths"][deepest]
        i, t = d["init"], d["trained"]
        rows.append({"activation": run["activation"], "init": INIT_LABELS[run["init"]],
                     "gain predicted": run["predicted_gain"], "gain measured": i["median_hidden_gain"],
                     "ratio at init": i["ratio_first_to_last"], "verdict at init": run["verdict_at_init"],
                     f"ratio after {steps} steps": t["ratio_first_to_last"], "verdict trained": run["verdict_trained"],
                     "identity": _identity(i) if _identity(i) != "holds" else _identity(t),
                     "test acc": f"{d['test_accuracy']:.1%}"})
    by_depth = [("|dL/dh_1| / |dL/dh_L| at initialisation", lambda d: d["init"]["ratio_first_to_last"]),
                (f"test accuracy after {steps} SGD steps", lambda d: f"{d['test_accuracy']:.1%}")]
    text = (f"Depth {deepest}, width {cfg['width']}, {results['dataset']['name']} data. ratio = |dL/dh_1| / |dL/dh_L| "
            f"(first hidden layer over the logits);\ngain predicted = sqrt(n Var(W) E[f'(0)^2]), gain measured = "
            f"median of the hidden layers' g_l at init; verdict: vanish below {VANISH:g}, explode above {EXPLODE:g}.\n"
            + format_table(rows))
    for title, value in by_depth:
        table = [{"activation, init": f"{r['activation']}, {INIT_LABELS[r['init']]}",
                  **{f"depth {k}": value(r["depths"][k]) for k in map(str, cfg["depths"])}} for r in runs.values()]
        text += f"\n\n{title}, by depth:\n" + format_table(table)
    return text


def figures(results: dict, out: Path) -> list[Path]:
    runs = _runs(results)
    if not runs:
        return []
    cfg = results["config"]
    deepest = str(max(cfg["depths"]))
    key = {v: (r["activation"], INIT_LABELS[r["init"]]) for v, r in runs.items()}
    paths = []
    norms = {"at initialisation": {key[v]: r["depths"][deepest]["init"]["report"]["grad_norms"] for v, r in runs.items()},
             f"after {cfg['steps']} SGD steps": {key[v]: r["depths"][deepest]["trained"]["report"]["grad_norms"]
                                                 for v, r in runs.items()}}
    paths.append(plots.gains_grid(norms, out / f"grad_norms_depth{deepest}.png",
                                  title=f"Gradient norm at each hidden layer, depth {deepest}, width {cfg['width']}",
                                  xlabel="layer output $h_l$ (0 = input, last = logits)"))
    gains = {key[v]: r["depths"][deepest]["init"]["report"]["gains"] for v, r in runs.items()}
    paths.append(plots.gains_grid(gains, out / f"gains_depth{deepest}.png", ylabel=r"gain $g_l$",
                                  title=f"Per-layer gains at initialisation, depth {deepest}",
                                  xlabel="layer (0 = first hidden layer, last = output layer)"))
    shown = [v for v in cfg["chain_rule_figures"] if v in runs] or list(runs)[:1]
    for v, r in ((v, runs[v]) for v in shown):
        report = r["depths"][deepest]["init"]["report"]
        paths.append(plots.chain_rule_gains(report["gains"], report["grad_norms"], out / f"chain_rule_{v}_depth{deepest}.png",
                                            title=f"{r['activation']}, {INIT_LABELS[r['init']]} init, depth {deepest}: "
                                                  "the chain rule at initialisation"))
    depth = str(cfg.get("curve_depth", deepest))
    histories = {f"{a}, {i}": r["depths"][depth]["history"] for v, r in runs.items() for a, i in [key[v]]}
    paths.append(plots.training_curves(histories, out / f"training_loss_depth{depth}.png", metrics=("loss",),
                                       splits=("train",), band=None,
                                       title=f"Training loss (mean over {cfg['log_every']} steps), depth {depth}"))
    return paths


EXPERIMENT = Experiment(
    chapter="02_chain_rule",
    description="Vanishing and exploding gradients in deep plain MLPs: per-layer gains for sigmoid/tanh/ReLU "
                "under small-normal, Glorot and He init.",
    presets=PRESETS,
    variants=VARIANTS,
    run_variant=run_variant,
    load_data=load_data,
    summarize=summarize,
    figures=figures,
).script(__name__)
