"""Chapter 02: the chain rule in deep plain networks (Glorot & Bengio 2010; He et al. 2015).

Plain MLPs of depth 2 to 50 (784 -> width -> ... -> width -> 10, every hidden layer a
Linear followed by the activation) with sigmoid, tanh or ReLU, under four weight inits:

* ``standard``: W ~ U(-1/sqrt(n_in), 1/sqrt(n_in)), Var(W) = 1 / (3 n_in): the "standard" init
  Glorot & Bengio (2010, Eq. 1) start from, the baseline;
* ``glorot``: W ~ U(-a, a) with Var(W) = 2 / (fan_in + fan_out) (Glorot & Bengio 2010, Eq. 16);
* ``he``:     W ~ N(0, 2 / fan_in) (He et al. 2015, Eq. 10);
* ``small``:  W ~ N(0, 0.01^2), a fixed scale that ignores the width (an extra: what a
  width-blind scale does); biases start at 0 in all four.

Two more experiments run in the quick preset: ``saturation`` (Glorot & Bengio's Figure 2:
the activations of every hidden layer of a 4-layer sigmoid/tanh net over training) and
``relu30`` (He et al.'s Figure 3: a 30-layer ReLU net trained from He and from Glorot init).

Every number is a deterministic function of the command: the same command on the same
machine (same BLAS kernels) gives the same results bit for bit (tests/test_chapter_02.py).
The deep tanh nets' *after-training* numbers are, however, sensitive to rounding: the
chapter retrains the deepest nets from inputs scaled by 1 + 1e-14 and records both, which
is why a machine with other BLAS kernels can print other after-training numbers.

For every network the chapter measures, on one fixed batch, the gradient norm
n_l = ||dL/dh_l|| at every hidden layer's output h_l and the per-layer gain
g_l = n_{l-1} / n_l (``minideep.diagnostics.chain_rule_gains``), checks the identity
n_l = n_L * g_L * ... * g_{l+1}, then trains with plain SGD for a few hundred steps and
measures again. The printed table says which (activation, init) pairs vanish, explode or
stay stable at the largest depth.

    python chapters/02_chain_rule.py                       # quick preset, bundled data, a few minutes
    python chapters/02_chain_rule.py --preset smoke        # seconds
    python chapters/02_chain_rule.py --variants relu_he sigmoid_standard saturation relu30
"""
from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import minideep as md
import minideep.nn.functional as F
from minideep import nn, optim, plots
from minideep.backend import as_numpy, to_device
from minideep.data import load_dataset
from minideep.diagnostics import block_report, report_table
from minideep.diagnostics.chain_rule import chain_rule_gains
from minideep.experiment import Experiment, RunContext, format_table, markdown_table
from minideep.models.plain_mlp import plain_mlp

ACTIVATIONS = ("sigmoid", "tanh", "relu")
INIT_LABELS = {"standard": "standard U(±1/√n)", "glorot": "Glorot", "he": "He", "small": "N(0, 0.01²) (extra)"}
PAIRS = tuple(f"{a}_{i}" for a in ACTIVATIONS for i in INIT_LABELS)
EXTRAS = ("saturation", "relu30")
VARIANTS = PAIRS + EXTRAS
#: the variants whose per-block Jacobian table goes on the page
BLOCK_TABLE_VARIANTS = ("sigmoid_standard", "tanh_standard", "tanh_glorot", "relu_glorot", "relu_he")

#: |dL/dh_1| / |dL/dh_L| below VANISH or above EXPLODE (at the largest depth) names the verdict:
#: the first layer gets less than a tenth, or more than ten times, the output layer's gradient.
VANISH, EXPLODE = 0.1, 10.0
#: E[f'(z)^2] for pre-activations z near 0 (sigmoid' = 1/4, tanh' = 1) or symmetric about 0 (ReLU).
SLOPE_SQUARED = {"sigmoid": 1 / 16, "tanh": 1.0, "relu": 0.5}

_COMMON = {"width": 64, "lr": 0.05, "diagnostic_batch": 256, "dtype": "float64", "dataset": "bundled",
           "chain_rule_figures": ["sigmoid_standard", "tanh_glorot", "relu_he"],
           # retrain the deepest nets from inputs x (1 + eps): how much rounding moves the after-training numbers
           "sensitivity_eps": 1e-14,
           # block_report at table_depth: a batch of 16, 8 probes, 10 power iterations (seconds)
           "block_batch": 16, "block_probes": 8, "block_iterations": 10}
PRESETS = {
    "smoke": {**_COMMON, "depths": [2, 4], "steps": 3, "batch_size": 32, "log_every": 1, "table_depth": 4,
              "diagnostic_batch": 64, "chain_rule_figures": ["relu_he"], "block_batch": 4, "block_probes": 2,
              "block_iterations": 2,
              "saturation": {"activations": ["sigmoid"], "init": "standard", "depth": 2, "width": 16, "steps": 4,
                             "record_every": 2, "batch": 32, "probe": 50, "lr": 0.05},
              "relu30": {"depth": 3, "width": 16, "steps": 4, "log_every": 2, "inits": ["he", "glorot"]}},
    "quick": {**_COMMON, "depths": [2, 5, 10, 20, 50], "steps": 200, "batch_size": 32, "log_every": 10,
              "table_depth": 10, "curve_depth": 20,
              # Glorot & Bengio's Figure 2: 4 hidden layers, standard init, mean/std of each layer's activations
              # on a fixed set of 300 examples, recorded during training (they trained for much longer)
              "saturation": {"activations": ["sigmoid", "tanh"], "init": "standard", "depth": 4, "width": 256,
                             "steps": 3000, "record_every": 100, "batch": 10, "probe": 300, "lr": 0.05},
              # He et al.'s Figure 3 (a 30-layer ReLU conv net; here an MLP of width 64): He vs Glorot init
              "relu30": {"depth": 30, "width": 64, "steps": 1000, "log_every": 20, "inits": ["he", "glorot"]}},
    # Glorot & Bengio: MNIST (and CIFAR-10 when it can be downloaded: --dataset cifar10), 5 hidden layers of
    # 1,000 units, minibatches of 10; meant for a GPU.
    "paper": {**_COMMON, "dataset": "mnist", "width": 1000, "depths": [5, 10, 20, 50], "steps": 20000,
              "batch_size": 10, "lr": 0.01, "log_every": 200, "table_depth": 5, "curve_depth": 5,
              "saturation": {"activations": ["sigmoid", "tanh"], "init": "standard", "depth": 4, "width": 1000,
                             "steps": 50000, "record_every": 1000, "batch": 10, "probe": 300, "lr": 0.01},
              "relu30": {"depth": 30, "width": 1000, "steps": 20000, "log_every": 200, "inits": ["he", "glorot"]}},
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


INITS = {"standard": "standard_uniform", "glorot": "glorot_uniform", "he": "he_normal",
         "small": "small_normal"}  # names in minideep.nn.init


# --8<-- [start:predicted_gain]
def weight_variance(init: str, fan_in: int, fan_out: int) -> float:
    """Var(W) of each init: 1 / (3 fan_in) (standard), 2 / (fan_in + fan_out) (Glorot), 2 / fan_in (He), 0.01^2."""
    return {"standard": 1 / (3 * fan_in), "glorot": 2 / (fan_in + fan_out), "he": 2 / fan_in,
            "small": 0.01**2}[init]


def predicted_gain(activation: str | None, init: str, fan_in: int, fan_out: int | None = None) -> float:
    """The variance argument's gain of one layer: sqrt(n_in Var(W) E[f'(z)^2]).

    With dL/dh_{l-1} = W^T (f'(z) * dL/dh_l), each of the n_in = fan_in components is a sum
    of fan_out terms, so E||dL/dh_{l-1}||^2 = n_in Var(W) E[f'(z)^2] ||dL/dh_l||^2 for
    independent weights. Exact for ReLU (E[f'^2] = 1/2 for any symmetric z); for sigmoid
    and tanh it assumes small pre-activations (the linear regime around 0). ``activation``
    None is a Linear layer alone (the output layer): f' = 1.
    """
    fan_out = fan_in if fan_out is None else fan_out
    slope = 1.0 if activation is None else SLOPE_SQUARED[activation]
    return float(np.sqrt(fan_in * weight_variance(init, fan_in, fan_out) * slope))
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


def _sgd(model: nn.Module, x: Any, y: Any, steps: int, batch: int, lr: float, seed: int, log_every: int,
         record: Any = None) -> tuple[list[dict], int | None]:
    """Plain SGD on shuffled minibatches; the mean training loss every ``log_every`` steps.

    Returns the history and the step at which the loss stopped being finite (None if it did
    not). ``record(step)``, when given, is called before the first step and every
    ``log_every`` steps (the saturation experiment measures its activations there).
    """
    opt = optim.SGD(model.named_parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    n_train = len(x)
    order, cursor = rng.permutation(n_train), 0
    history, diverged, recent = [], None, []
    if record is not None:
        record(0)
    for step in range(1, steps + 1):
        if cursor + batch > n_train:  # a new shuffled pass over the training set
            order, cursor = rng.permutation(n_train), 0
        idx = order[cursor: cursor + batch]
        cursor += batch
        loss = F.cross_entropy(model(md.tensor(x[idx])), y[idx])
        value = loss.item()
        if not np.isfinite(value):
            diverged = step
            history.append({"epoch": step * batch / n_train, "step": step, "train_loss": value})
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        recent.append(value)
        if step % log_every == 0 or step == steps:  # the mean over the steps since the last record
            history.append({"epoch": step * batch / n_train, "step": step, "train_loss": float(np.mean(recent))})
            recent = []
            if record is not None:
                record(step)
    return history, diverged


def _build(ctx: RunContext, depth: int, activation: str, init: str, width: int) -> tuple[nn.Module, list]:
    cfg, data = ctx.config, ctx.data
    md.manual_seed(ctx.seed)  # same seed for every depth: the first layers are drawn alike
    model, points = plain_mlp(depth, width, activation, INITS[init], data.x_train.shape[1],
                              int(data.y_train.max()) + 1, np.dtype(cfg["dtype"]))
    model.to(ctx.device)
    return model, points


def grouped(model: nn.Sequential) -> nn.Sequential:
    """The same modules (shared, not copied) grouped as blocks layer1 = (linear1, f), ..., output."""
    modules = list(model.children())
    blocks = [(f"layer{k + 1}", nn.Sequential(modules[2 * k], modules[2 * k + 1])) for k in range(len(modules) // 2)]
    return nn.Sequential(OrderedDict(blocks + [("output", modules[-1])]))


def block_table(ctx: RunContext, model: nn.Sequential, activation: str, init: str) -> list[dict]:
    """``diagnostics.block_report`` of every (Linear, f) block, the variance argument as the theory column."""
    cfg, data = ctx.config, ctx.data

    def theory(name: str, module: Any, row: dict) -> float:
        linear = module if name == "output" else list(module.children())[0]
        fan_out, fan_in = linear.weight.shape
        return predicted_gain(None if name == "output" else activation, init, fan_in, fan_out)

    n, net = cfg["block_batch"], grouped(model)
    names = [name for name, _ in net.named_children()]  # the (Linear, f) pairs, not their parts
    return block_report(net, data.x_train[:n], data.y_train[:n], blocks=names, probes=cfg["block_probes"],
                        iterations=cfg["block_iterations"], seed=ctx.seed, theory=theory)


def run_depth(ctx: RunContext, depth: int) -> dict[str, Any]:
    """Build one network, measure the chain rule, train with SGD, measure again, test."""
    cfg, data = ctx.config, ctx.data
    activation, init = ctx.variant.split("_")
    model, points = _build(ctx, depth, activation, init, cfg["width"])
    xd, yd = data.x_train[: cfg["diagnostic_batch"]], data.y_train[: cfg["diagnostic_batch"]]
    at_init = chain_rule_gains(model, xd, yd, layers=points)
    blocks = {}
    if depth == cfg["table_depth"]:
        blocks["init"] = block_table(ctx, model, activation, init)
    history, diverged = _sgd(model, data.x_train, data.y_train, cfg["steps"], cfg["batch_size"], cfg["lr"],
                             ctx.seed, cfg["log_every"])
    trained = chain_rule_gains(model, xd, yd, layers=points)
    if depth == cfg["table_depth"]:
        blocks["trained"] = block_table(ctx, model, activation, init)
    out = {"depth": depth, "init": _summary(at_init), "trained": _summary(trained), "history": history,
           "diverged_at_step": diverged, "test_accuracy": _test_accuracy(model, data.x_test, data.y_test),
           "table_at_init": at_init.table(), "blocks": blocks}
    if depth == max(cfg["depths"]) and cfg.get("sensitivity_eps"):
        # The same run from inputs scaled by 1 + eps (eps ~ 1e-14, a few units of rounding):
        # how far rounding alone moves the after-training numbers.
        eps = cfg["sensitivity_eps"]
        model, points = _build(ctx, depth, activation, init, cfg["width"])
        x_scaled = data.x_train * (1 + eps)
        _, _ = _sgd(model, x_scaled, data.y_train, cfg["steps"], cfg["batch_size"], cfg["lr"], ctx.seed,
                    cfg["log_every"])
        again = chain_rule_gains(model, xd, yd, layers=points)
        out["perturbed"] = {"eps": eps, "ratio_first_to_last": _summary(again)["ratio_first_to_last"],
                            "test_accuracy": _test_accuracy(model, data.x_test, data.y_test)}
    return out


# ----------------------------------------------------------------------------------------
# Glorot & Bengio's Figure 2 (saturation) and He et al.'s Figure 3 (30-layer ReLU)
# ----------------------------------------------------------------------------------------


def run_saturation(ctx: RunContext) -> dict:
    """Each hidden layer's activations on a fixed probe set, every ``record_every`` steps of training.

    Glorot & Bengio's Figure 2: the mean and standard deviation (and the 2nd and 98th
    percentiles, their Figure 3) of every hidden layer's outputs on 300 fixed examples,
    and a histogram of each layer's outputs at the end (their Figure 4).
    """
    cfg, data = ctx.config["saturation"], ctx.data
    runs = {}
    for activation in cfg["activations"]:
        model, points = _build(ctx, cfg["depth"], activation, cfg["init"], cfg["width"])
        hidden = points[:-1]
        probe = md.tensor(data.x_test[: cfg["probe"]])
        records: list[dict] = []

        def activations() -> list[np.ndarray]:
            captured = []
            handles = [m.register_forward_hook(lambda mod, inp, out: captured.append(as_numpy(out.data)))
                       for m in hidden]
            with md.no_grad():
                model(probe)
            for h in handles:
                h.remove()
            return captured

        def record(step: int) -> None:
            acts = activations()
            records.append({"step": step, "layers": [
                {"mean": float(a.mean()), "std": float(a.std()), "p2": float(np.percentile(a, 2)),
                 "p98": float(np.percentile(a, 98))} for a in acts]})

        history, diverged = _sgd(model, data.x_train, data.y_train, cfg["steps"], cfg["batch"], cfg["lr"],
                                 ctx.seed, cfg["record_every"], record)
        lo, hi = (0.0, 1.0) if activation == "sigmoid" else (-1.0, 1.0)
        edges = np.linspace(lo, hi, 41)
        histograms = [np.histogram(a, bins=edges)[0].tolist() for a in activations()]
        runs[activation] = {"records": records, "history": history, "diverged_at_step": diverged,
                            "histogram_edges": edges.tolist(), "histograms": histograms,
                            "test_accuracy": _test_accuracy(model, data.x_test, data.y_test)}
    return {"kind": "saturation", "config": cfg, "runs": runs}


def run_relu30(ctx: RunContext) -> dict:
    """A deep ReLU net trained from He and from Glorot init (He et al. 2015, Figure 3)."""
    cfg, data = ctx.config["relu30"], ctx.data
    runs = {}
    for init in cfg["inits"]:
        model, points = _build(ctx, cfg["depth"], "relu", init, cfg["width"])
        n = ctx.config["diagnostic_batch"]
        at_init = chain_rule_gains(model, data.x_train[:n], data.y_train[:n], layers=points)
        history, diverged = _sgd(model, data.x_train, data.y_train, cfg["steps"], ctx.config["batch_size"],
                                 ctx.config["lr"], ctx.seed, cfg["log_every"])
        runs[init] = {"history": history, "diverged_at_step": diverged,
                      "ratio_first_to_last_at_init": _summary(at_init)["ratio_first_to_last"],
                      "predicted_gain": predicted_gain("relu", init, cfg["width"]),
                      "first_loss": history[0]["train_loss"], "last_loss": history[-1]["train_loss"],
                      "test_accuracy": _test_accuracy(model, data.x_test, data.y_test)}
    return {"kind": "relu30", "config": cfg, "runs": runs}


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
    """Every depth of the preset for one (activation, init) pair, or one of the two extra experiments."""
    load = _load()  # at the start of this variant; the end of the run is in results["load_average_end"]
    if ctx.variant in EXTRAS:
        return {**(run_saturation(ctx) if ctx.variant == "saturation" else run_relu30(ctx)), "load_average": load}
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
            "block_table_depth": cfg["table_depth"],
            "test_accuracy": deepest["test_accuracy"], "test_accuracy_depth": max(cfg["depths"]),
            "history": deepest["history"], "load_average": load,
            "verdict_at_init": verdict(deepest["init"]), "verdict_trained": verdict(deepest["trained"])}


# ----------------------------------------------------------------------------------------
# Tables and figures
# ----------------------------------------------------------------------------------------


def _runs(results: dict, names: tuple = PAIRS) -> dict[str, dict]:
    """variant -> its first seed's run, in the chapter's variant order."""
    return {v: next(iter(results["variants"][v]["runs"].values())) for v in names if v in results["variants"]}


def _extra(results: dict, name: str) -> dict | None:
    runs = _runs(results, (name,))
    return runs.get(name)


def _identity(summary: dict) -> str:
    if summary["identity_holds"]:
        return "holds"
    return "n/a (a norm is 0)" if summary["note"] else "FAILS"


def _pct(value: float) -> str:
    return f"{value:.1%}"


def summary_rows(results: dict) -> list[dict]:
    """One row per (activation, init) pair at the largest depth."""
    cfg = results["config"]
    deepest, steps = str(max(cfg["depths"])), cfg["steps"]
    rows = []
    for run in _runs(results).values():
        d = run["depths"][deepest]
        i, t = d["init"], d["trained"]
        row = {"activation": run["activation"], "init": INIT_LABELS[run["init"]],
               "gain predicted": run["predicted_gain"], "gain measured": i["median_hidden_gain"],
               "ratio at init": i["ratio_first_to_last"], "verdict at init": run["verdict_at_init"],
               f"ratio after {steps} steps": t["ratio_first_to_last"], "verdict trained": run["verdict_trained"],
               "test acc": _pct(d["test_accuracy"])}
        if "perturbed" in d:
            row["ratio trained, inputs x(1+1e-14)"] = d["perturbed"]["ratio_first_to_last"]
            row["test acc, inputs x(1+1e-14)"] = _pct(d["perturbed"]["test_accuracy"])
        row["identity"] = _identity(i) if _identity(i) != "holds" else _identity(t)
        rows.append(row)
    return rows


def by_depth_rows(results: dict, key: str) -> list[dict]:
    cfg = results["config"]
    value = {"ratio": lambda d: d["init"]["ratio_first_to_last"],
             "accuracy": lambda d: _pct(d["test_accuracy"])}[key]
    return [{"activation, init": f"{r['activation']}, {INIT_LABELS[r['init']]}",
             **{f"depth {k}": value(r["depths"][k]) for k in map(str, cfg["depths"])}}
            for r in _runs(results).values()]


def block_rows(run: dict, depth: str) -> list[dict]:
    """The per-block table of one pair: block_report at init (and its rms after training) beside the theory."""
    blocks = run["depths"][depth].get("blocks") or {}
    init, trained = blocks.get("init", []), blocks.get("trained", [])
    rows = []
    for k, b in enumerate(init):
        rows.append({"block": b["name"], "‖dL/dh‖": b["grad_norm"], "on-gradient gain": b["on_gradient"],
                     "rms gain": b["rms"], "theory √(n Var(W) E[f′²])": b["predicted"], "top gain": b["top"],
                     "rms gain after training": trained[k]["rms"] if k < len(trained) else None,
                     "‖dL/dh‖ after training": trained[k]["grad_norm"] if k < len(trained) else None})
    return rows


def saturation_rows(results: dict) -> list[dict]:
    """Per activation and hidden layer: the mean activation at the start, its lowest point, and at the end."""
    run = _extra(results, "saturation")
    rows = []
    for activation, r in (run or {}).get("runs", {}).items():
        records = r["records"]
        for layer in range(len(records[0]["layers"])):
            means = [rec["layers"][layer]["mean"] for rec in records]
            low = int(np.argmin(means))
            rows.append({"activation": activation, "hidden layer": layer + 1, "mean at step 0": means[0],
                         "lowest mean": means[low], "at step": records[low]["step"],
                         f"mean at step {records[-1]['step']}": means[-1],
                         "std at the end": records[-1]["layers"][layer]["std"],
                         "98th percentile at the end": records[-1]["layers"][layer]["p98"]})
    return rows


def relu30_rows(results: dict) -> list[dict]:
    run = _extra(results, "relu30")
    if not run:
        return []
    cfg = run["config"]
    return [{"init": INIT_LABELS[init], "depth": cfg["depth"], "width": cfg["width"],
             "predicted gain per layer": r["predicted_gain"],
             "|dL/dh_1| / |dL/dh_L| at init": r["ratio_first_to_last_at_init"],
             "loss, first record": r["first_loss"], f"loss after {cfg['steps']} steps": r["last_loss"],
             "test acc": _pct(r["test_accuracy"])} for init, r in run["runs"].items()]


def tables(results: dict) -> dict[str, str]:
    """The page's Markdown tables, from results.json."""
    out = {}
    if _runs(results):
        out["summary"] = markdown_table(summary_rows(results))
        out["ratio_by_depth"] = markdown_table(by_depth_rows(results, "ratio"))
        out["accuracy_by_depth"] = markdown_table(by_depth_rows(results, "accuracy"))
        depth = str(results["config"]["table_depth"])
        for v, run in _runs(results, BLOCK_TABLE_VARIANTS).items():
            if run["depths"].get(depth, {}).get("blocks"):
                out[f"blocks_{v}"] = markdown_table(block_rows(run, depth))
    if saturation_rows(results):
        out["saturation"] = markdown_table(saturation_rows(results))
    if relu30_rows(results):
        out["relu30"] = markdown_table(relu30_rows(results))
    return out


def summarize(results: dict) -> str:
    runs = _runs(results)
    text = []
    if runs:
        cfg = results["config"]
        text.append(f"Depth {max(cfg['depths'])}, width {cfg['width']}, {results['dataset']['name']} data. "
                    f"ratio = |dL/dh_1| / |dL/dh_L| (first hidden layer over the logits); gain predicted = "
                    f"sqrt(n Var(W) E[f'(0)^2]), gain measured = median of the hidden layers' g_l at init; verdict: "
                    f"vanish below {VANISH:g}, explode above {EXPLODE:g}.\n" + format_table(summary_rows(results)))
        text.append("|dL/dh_1| / |dL/dh_L| at initialisation, by depth:\n" + format_table(by_depth_rows(results, "ratio")))
        text.append(f"test accuracy after {cfg['steps']} SGD steps, by depth:\n"
                    + format_table(by_depth_rows(results, "accuracy")))
    if saturation_rows(results):
        text.append("Activations of each hidden layer during training (Glorot & Bengio, Figure 2):\n"
                    + format_table(saturation_rows(results)))
    if relu30_rows(results):
        text.append("30-layer ReLU net, He vs Glorot init (He et al., Figure 3):\n" + format_table(relu30_rows(results)))
    return "\n\n".join(text) or "(no runs)"


def aggregate(results: dict) -> None:
    """What the numbers depend on beyond the code: the BLAS build (its kernels set the rounding) and the load."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # an older NumPy without mode="dicts"
        blas = None
    results["blas"] = blas
    results["load_average_end"] = _load()


def _load() -> list[float] | None:
    """The 1, 5 and 15-minute load averages: how shared the machine was."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


# ----------------------------------------------------------------------------------------
# The claims ledger
# ----------------------------------------------------------------------------------------

GB, HE = "Glorot & Bengio 2010", "He et al. 2015"


def _not_run(claim: str, source: str, paper: str, why: str) -> dict:
    return {"claim": claim, "source": source, "paper": paper, "ours": "-", "verdict": "not run", "evidence": why}


def claims(results: dict) -> list[dict]:
    """The papers' headline claims, each with the measured value read from ``results``."""
    cfg, runs, out = results["config"], _runs(results), []
    deepest = str(max(cfg["depths"])) if cfg.get("depths") else None

    def gain(v: str) -> float | None:
        return runs[v]["depths"][deepest]["init"]["median_hidden_gain"] if v in runs else None

    def ratio(v: str) -> float | None:
        return runs[v]["depths"][deepest]["init"]["ratio_first_to_last"] if v in runs else None

    claim = "With the standard init, sigmoid's back-propagated gradient vanishes with depth"
    if "sigmoid_standard" in runs:
        r = ratio("sigmoid_standard")
        out.append({"claim": claim, "source": f"{GB}, Sec. 4.2 and Fig. 7", "paper": "gradients shrink toward the input",
                    "ours": f"|dL/dh_1|/|dL/dh_L| = {r:.2g} at depth {deepest}",
                    "verdict": "reproduced" if r < VANISH else "differs",
                    "evidence": f"median hidden-layer gain {gain('sigmoid_standard'):.3g} "
                                f"(predicted {runs['sigmoid_standard']['predicted_gain']:.3g})"})
    else:
        out.append(_not_run(claim, f"{GB}, Sec. 4.2", "gradients shrink toward the input", "variant not run"))

    claim = "tanh: the standard init shrinks the gradient layer by layer, the normalized init keeps it (gain about 1)"
    if {"tanh_standard", "tanh_glorot"} <= set(runs):
        gs, gg = gain("tanh_standard"), gain("tanh_glorot")
        ok = gs < 0.8 and abs(gg - 1) < 0.1
        out.append({"claim": claim, "source": f"{GB}, Eq. 16 and Fig. 7",
                    "paper": "standard: Var shrinks toward the input; normalized: about constant",
                    "ours": f"median gain {gs:.3g} (standard) vs {gg:.3g} (Glorot)",
                    "verdict": "reproduced" if ok else "differs",
                    "evidence": f"predicted {runs['tanh_standard']['predicted_gain']:.3g} and "
                                f"{runs['tanh_glorot']['predicted_gain']:.3g}; depth {deepest}, width {cfg['width']}"})
    else:
        out.append(_not_run(claim, f"{GB}, Eq. 16", "normalized init keeps the gradient", "variants not run"))

    claim = "ReLU with He init keeps the gradient (gain 1); Glorot init loses a factor sqrt(2) per layer"
    if {"relu_he", "relu_glorot"} <= set(runs):
        gh, gg = gain("relu_he"), gain("relu_glorot")
        ok = abs(gh - 1) < 0.15 and abs(gg - 1 / np.sqrt(2)) < 0.15
        out.append({"claim": claim, "source": f"{HE}, Eq. 10-14", "paper": "gain 1 (He) vs 1/sqrt(2) = 0.707 (Glorot)",
                    "ours": f"median gain {gh:.3g} (He) vs {gg:.3g} (Glorot)",
                    "verdict": "reproduced" if ok else "differs",
                    "evidence": f"|dL/dh_1|/|dL/dh_L| at depth {deepest}: {ratio('relu_he'):.2g} (He), "
                                f"{ratio('relu_glorot'):.2g} (Glorot)"})
    else:
        out.append(_not_run(claim, f"{HE}, Eq. 10", "gain 1 vs 0.707", "variants not run"))

    sat = _extra(results, "saturation")
    where = f"{GB}, Sec. 3.1 and Fig. 2"
    claim_a = "The top hidden layer of a sigmoid net is driven toward 0 (saturation) while the lower layers stay near 0.5"
    claim_b = "The saturated top layer slowly leaves saturation later in training"
    if sat and "sigmoid" in sat["runs"]:
        records = sat["runs"]["sigmoid"]["records"]
        layers = len(records[0]["layers"])
        top = [rec["layers"][-1]["mean"] for rec in records]
        lower = [rec["layers"][k]["mean"] for rec in records for k in range(layers - 1)]
        low = int(np.argmin(top))
        setup = (f"{layers} hidden layers of {sat['config']['width']}, standard init, SGD lr {sat['config']['lr']:g}, "
                 f"batch {sat['config']['batch']}, {sat['config']['steps']} steps")
        out.append({"claim": claim_a, "source": where, "paper": "top layer mean falls to about 0 in the first epochs",
                    "ours": f"top layer mean {top[0]:.2f} at step 0, {top[low]:.3f} at step {records[low]['step']}; "
                            f"lower layers between {min(lower):.2f} and {max(lower):.2f}",
                    "verdict": "reproduced" if top[0] - top[low] > 0.25 and 0.4 < min(lower) and max(lower) < 0.7
                    else "differs", "evidence": setup + " (ours has not reached 0: the fall is slower)"})
        recovered = low < len(top) - 1 and top[-1] > top[low] + 0.05
        out.append({"claim": claim_b, "source": where, "paper": "the top layer recovers slowly (after about 100 epochs)",
                    "ours": (f"rises from {top[low]:.3f} (step {records[low]['step']}) to {top[-1]:.3f}" if recovered else
                             f"still falling at the last record (step {records[-1]['step']}: {top[-1]:.3f})"),
                    "verdict": "reproduced" if recovered else "differs",
                    "evidence": setup + "; the paper's recovery needs far more training than the quick preset gives"})
    else:
        out.append(_not_run(claim_a, where, "top layer mean near 0", "saturation not run"))
        out.append(_not_run(claim_b, where, "slow recovery", "saturation not run"))

    claim = "A 30-layer ReLU net converges from He init and stalls from Glorot init"
    r30 = _extra(results, "relu30")
    if r30 and {"he", "glorot"} <= set(r30["runs"]):
        he, gl = r30["runs"]["he"], r30["runs"]["glorot"]
        drop_he, drop_gl = he["first_loss"] - he["last_loss"], gl["first_loss"] - gl["last_loss"]
        ok = drop_he > 0.3 and drop_gl < 0.3 * drop_he
        out.append({"claim": claim, "source": f"{HE}, Fig. 3", "paper": "He: error falls; Xavier: no progress",
                    "ours": f"loss {he['first_loss']:.3f} -> {he['last_loss']:.3f} (He), "
                            f"{gl['first_loss']:.3f} -> {gl['last_loss']:.3f} (Glorot)",
                    "verdict": "reproduced" if ok else "differs",
                    "evidence": f"{r30['config']['depth']}-layer MLP of width {r30['config']['width']} "
                                f"(the paper: a conv net), {r30['config']['steps']} SGD steps; test acc "
                                f"{_pct(he['test_accuracy'])} vs {_pct(gl['test_accuracy'])}"})
    else:
        out.append(_not_run(claim, f"{HE}, Fig. 3", "He: error falls; Xavier: no progress", "relu30 not run"))

    claim = "The normalized init gives lower test error than the standard init (tanh, 5 hidden layers)"
    depth5 = "5" if "5" in map(str, cfg.get("depths", [])) else None
    if depth5 and {"tanh_standard", "tanh_glorot"} <= set(runs):
        a_s = runs["tanh_standard"]["depths"][depth5]["test_accuracy"]
        a_g = runs["tanh_glorot"]["depths"][depth5]["test_accuracy"]
        out.append({"claim": claim, "source": f"{GB}, Table 1", "paper": "normalized better on all four data sets",
                    "ours": f"test acc {_pct(a_s)} (standard) vs {_pct(a_g)} (Glorot)",
                    "verdict": "reproduced" if a_g > a_s else "differs",
                    "evidence": f"{cfg['steps']} SGD steps on {results['dataset']['name']} "
                                "(the paper: MNIST, CIFAR-10, Small-ImageNet, Shapeset, trained to convergence)"})
    else:
        out.append(_not_run(claim, f"{GB}, Table 1", "normalized better", "depth 5 not in this preset"))
    return out


# ----------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------


def _saturation_figure(run: dict, path: Path) -> Path:
    """Glorot & Bengio's Figure 2: mean and std of each hidden layer's activations against training steps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    activations = list(run["runs"])
    fig, axes = plt.subplots(2, len(activations), figsize=(6 * len(activations), 7), squeeze=False)
    for col, activation in enumerate(activations):
        r = run["runs"][activation]
        steps = [rec["step"] for rec in r["records"]]
        ax = axes[0][col]
        for layer in range(len(r["records"][0]["layers"])):
            mean = np.array([rec["layers"][layer]["mean"] for rec in r["records"]])
            std = np.array([rec["layers"][layer]["std"] for rec in r["records"]])
            line, = ax.plot(steps, mean, label=f"layer {layer + 1}")
            ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.15)
        ax.set_title(f"{activation}: mean ± std of each hidden layer's outputs")
        ax.set_xlabel("SGD step")
        ax.legend(fontsize=8)
        ax = axes[1][col]
        edges = np.array(r["histogram_edges"])
        centres = (edges[1:] + edges[:-1]) / 2
        for layer, counts in enumerate(r["histograms"]):
            counts = np.asarray(counts, dtype=float)
            ax.plot(centres, counts / counts.sum(), label=f"layer {layer + 1}")
        ax.set_title(f"{activation}: histogram of the outputs after {steps[-1]} steps")
        ax.set_xlabel("activation value")
        ax.set_ylabel("fraction")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def figures(results: dict, out: Path) -> list[Path]:
    runs = _runs(results)
    paths = []
    sat, r30 = _extra(results, "saturation"), _extra(results, "relu30")
    if sat:
        paths.append(_saturation_figure(sat, out / "saturation.png"))
    if r30:
        histories = {f"{r30['config']['depth']} layers, {INIT_LABELS[i]}": r["history"] for i, r in r30["runs"].items()}
        paths.append(plots.training_curves(histories, out / "relu30_training_loss.png", metrics=("loss",),
                                           splits=("train",), band=None,
                                           title=f"{r30['config']['depth']}-layer ReLU MLP: He vs Glorot init"))
    if not runs:
        return paths
    cfg = results["config"]
    deepest = str(max(cfg["depths"]))
    key = {v: (r["activation"], INIT_LABELS[r["init"]]) for v, r in runs.items()}
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
                "under the standard, Glorot and He init (and a fixed N(0, 0.01^2)), saturation over training, "
                "and a 30-layer ReLU net from He and Glorot init.",
    presets=PRESETS,
    variants=VARIANTS,
    run_variant=run_variant,
    load_data=load_data,
    summarize=summarize,
    figures=figures,
    claims=claims,
    tables=tables,
    aggregate=aggregate,
).script(__name__)
