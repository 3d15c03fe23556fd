"""Chapter 03: VGG38 does not learn, VGG08 does; BatchNorm and residual connections fix it.

Rebuilds the Edinburgh MLP coursework 2 experiment and every row of Pricope (2021), Table 1:

    python chapters/03_vgg38.py                       # quick preset: 5 variants, bundled data, one seed
    python chapters/03_vgg38.py --seeds 0 1 2         # three seeds: mean +- std, bands
    python chapters/03_vgg38.py --variants all        # every configuration (Table 1's 16 rows and 4 more)
    python chapters/03_vgg38.py --preset paper --device gpu    # CIFAR-100, 100 epochs, each row's settings
    python chapters/03_vgg38.py --from-results docs/figures/03/results.json --out DIR   # no training

Writes results.json, the claims ledger (claims.json, claims.md), the Markdown tables
(results.md, pricope_table1.md, chain_rule_*.md, curvature.md, timings.md), table.txt and
the figures into --out (default runs/03_vgg38). The "PyTorch twin" column reads
docs/figures/03/torch_twin.json, written by scripts/torch_twin_03.py.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np

import minideep as md
from minideep import plots
from minideep.data import chapter_data
from minideep.diagnostics import (
    block_report,
    curvature_along_gradient,
    first_last_ratio,
    largest_hessian_eigenvalue,
    report_table,
    residual_branch,
    residual_theory,
)
from minideep.experiment import Experiment, RunContext, format_table, markdown_table
from minideep.models.vgg import VGG
from minideep.ops.loss import cross_entropy
from minideep.plots.figures import _new_figure, _save, _style
from minideep.train import train_classifier

ROOT = Path(__file__).resolve().parents[1]

# Every network and its training settings, by name. Pricope (2021) Table 1 has sixteen rows;
# each is one configuration here: the architecture (processing blocks per stage, batch norm,
# residual with which shortcut, activation) and the row's batch size, learning rate and weight
# decay. Residual networks come in two kinds (models.VGG's ``shortcut``): ``"projection"``,
# Pricope's, also puts a strided 1x1 convolution shortcut around every reduction block;
# ``"coursework"``, the coursework framework's, puts shortcuts around processing blocks only.
# Names say what differs from batch 100, learning rate 1e-3, no weight decay.
def _config(blocks, batch_norm=False, residual=False, shortcut=None, activation="leaky_relu", batch_size=100,
            lr=1e-3, weight_decay=0.0, row=None):
    return dict(blocks=blocks, batch_norm=batch_norm, residual=residual, shortcut=shortcut if residual else None,
                activation=activation, batch_size=batch_size, lr=lr, weight_decay=weight_decay, pricope_row=row)


P = "projection"
VARIANTS = {
    # Pricope (2021) Table 1, in the table's order (row = its line number in the table, 1-16).
    "vgg08": _config(0, row=1),
    "vgg08_bn": _config(0, batch_norm=True, row=2),
    "vgg08_bn_res": _config(0, True, True, P, row=3),
    "vgg38": _config(5, row=4),
    "vgg38_bn": _config(5, True, row=5),
    "vgg38_bn_lr0.01": _config(5, True, lr=1e-2, row=6),
    "vgg38_bn_lr0.1": _config(5, True, lr=1e-1, row=7),
    "vgg38_bn_bs256": _config(5, True, batch_size=256, row=8),
    "vgg38_bn_bs512": _config(5, True, batch_size=512, row=9),
    "vgg38_sigmoid_bn_bs512": _config(5, True, activation="sigmoid", batch_size=512, row=10),
    "vgg38_res": _config(5, False, True, P, row=11),
    "vgg38_bn_res_bs512": _config(5, True, True, P, batch_size=512, row=12),
    "vgg38_bn_res_bs512_lr0.1_wd1e-4": _config(5, True, True, P, batch_size=512, lr=1e-1, weight_decay=1e-4, row=13),
    "vgg38_bn_res_bs256_lr0.01_wd6e-4": _config(5, True, True, P, batch_size=256, lr=1e-2, weight_decay=6e-4, row=14),
    "vgg38_bn_res_bs256_lr0.01_wd1e-4": _config(5, True, True, P, batch_size=256, lr=1e-2, weight_decay=1e-4, row=15),
    "vgg38_bn_res_bs256_wd1e-4": _config(5, True, True, P, batch_size=256, weight_decay=1e-4, row=16),
    # Not rows of Table 1: Pricope's BN + ResNet at the coursework's settings (batch 100), the
    # quick preset's fifth network, and the coursework framework's residual networks.
    "vgg38_bn_res": _config(5, True, True, P),
    "vgg38_res_coursework": _config(5, False, True, "coursework"),
    "vgg38_bn_res_coursework": _config(5, True, True, "coursework"),
    "vgg38_sigmoid_bn": _config(5, True, activation="sigmoid"),
}

# Pricope (2021) Table 1: (batch size, lr, weight decay, test %, train %), row by row.
PRICOPE = {
    1: (100, 1e-3, 0.0, 49.95, 55.24), 2: (100, 1e-3, 0.0, 53.89, 59.65), 3: (100, 1e-3, 0.0, 54.45, 60.74),
    4: (100, 1e-3, 0.0, 1.0, 1.0), 5: (100, 1e-3, 0.0, 46.78, 54.20), 6: (100, 1e-2, 0.0, 44.14, 48.33),
    7: (100, 1e-1, 0.0, 22.46, 24.86), 8: (256, 1e-3, 0.0, 47.22, 58.05), 9: (512, 1e-3, 0.0, 46.49, 60.43),
    10: (512, 1e-3, 0.0, 26.88, 28.29), 11: (100, 1e-3, 0.0, 44.77, 52.20), 12: (512, 1e-3, 0.0, 58.84, 78.65),
    13: (512, 1e-1, 1e-4, 30.22, 29.70), 14: (256, 1e-2, 6e-4, 57.67, 72.81), 15: (256, 1e-2, 1e-4, 58.25, 67.50),
    16: (256, 1e-3, 1e-4, 61.81, 85.21),
}
PRICOPE_ROW_OF = {"vgg38_bn_res": 12, "vgg38_sigmoid_bn": 10}  # nearest row, at other settings (shown with both)

# The coursework report's train / validation accuracies (%), batch 100, lr 1e-3, coursework shortcut,
# and the framework's own runs (test %): see shared/reference/vgg-coursework-framework.md.
COURSEWORK = {
    "vgg08": {"framework test %": 49.95, "coursework train/val %": "51.59 / 46.84"},
    "vgg38": {"framework test %": 1.00},
    "vgg38_bn": {"coursework train/val %": "47.13 / 42.76"},
    "vgg38_res_coursework": {"coursework train/val %": "61.52 / 52.32"},
    "vgg38_bn_res_coursework": {"coursework train/val %": "62.99 / 53.76"},
}


def published(name: str) -> dict:
    """The published numbers for a variant: Pricope's row (with its settings) and the coursework's."""
    cfg = VARIANTS[name]
    entry = dict(COURSEWORK.get(name, {}))
    row = cfg["pricope_row"] or PRICOPE_ROW_OF.get(name)
    if row is not None:
        bs, lr, wd, test, train = PRICOPE[row]
        same = (bs, lr, wd) == (cfg["batch_size"], cfg["lr"], cfg["weight_decay"]) and cfg["pricope_row"] == row
        entry.update({"Pricope row": row, "Pricope test %": test, "Pricope train %": train,
                      "Pricope settings": f"bs {bs}, lr {lr:g}, wd {wd:g}", "same settings": same})
    return entry


PAPER = {name: published(name) for name in VARIANTS}

# The networks of the curvature study (issue 18 §4), measured at initialisation and after every epoch.
CURVATURE_VARIANTS = ("vgg08", "vgg38", "vgg38_bn", "vgg38_bn_res")
QUICK_VARIANTS = ["vgg08", "vgg38", "vgg38_bn", "vgg38_res", "vgg38_bn_res"]

PRESETS = {
    # Seconds: every variant for two steps on a handful of 28x28 images (the test suite runs it).
    "smoke": dict(n_train=40, n_val=20, n_test=40, size=28, epochs=1, batch_size=20, augment=False,
                  probe_batch=4, probes=2, iterations=2, curvature_batch=4, eigen_iterations=2),
    # The CPU default: 2,000 bundled training images, 3 epochs, each variant's batch size and learning rate.
    "quick": dict(n_train=2000, n_val=500, n_test=1000, size=32, epochs=3, batch_size=None, augment=False,
                  probe_batch=8, probes=4, iterations=6, curvature_batch=16, eigen_iterations=8),
    # Pricope's and the coursework's setup: CIFAR-100, 47,500 / 2,500 split, crop + flip, 100 epochs, Adam with cosine.
    "paper": dict(n_train=None, n_val=None, n_test=None, size=32, epochs=100, batch_size=None, augment=True,
                  probe_batch=16, probes=8, iterations=10, curvature_batch=32, eigen_iterations=20),
}
for preset in PRESETS.values():
    preset.update(optimizer="adam", schedule="cosine", eta_min=2e-5)

#: Which variants ``python chapters/03_vgg38.py --preset P`` runs without ``--variants``.
DEFAULT_VARIANTS = {"smoke": list(VARIANTS), "quick": QUICK_VARIANTS,
                    "paper": [n for n, c in VARIANTS.items() if c["pricope_row"]] + ["vgg38_res_coursework",
                                                                                     "vgg38_bn_res_coursework"]}


def settings(variant: str, config: dict) -> dict:
    """The training settings of ``variant`` under a preset: the variant's batch size, lr and weight
    decay (its Table 1 row), except that the smoke preset's fixed batch size wins."""
    cfg = VARIANTS[variant]
    return {"batch_size": config["batch_size"] or cfg["batch_size"], "lr": cfg["lr"],
            "weight_decay": cfg["weight_decay"], "epochs": config["epochs"], "optimizer": config["optimizer"],
            "schedule": config["schedule"], "eta_min": config["eta_min"]}


def load_data(args, config):
    return chapter_data(
        args.dataset, "cifar100", args.preset, data_dir=args.data_dir, n_train=config["n_train"],
        n_val=config["n_val"], n_test=config["n_test"], shape=(3, config["size"]), augment=config["augment"], coursework=True,
    )


def build(variant: str, num_classes: int) -> VGG:
    cfg = VARIANTS[variant]
    return VGG(cfg["blocks"], num_classes=num_classes, batch_norm=cfg["batch_norm"], residual=cfg["residual"],
               shortcut=cfg["shortcut"] or "coursework", activation=cfg["activation"])


def chain_rule_table(model, x, y, config: dict, seed: int) -> list[dict]:
    """block_report's rows for every block (||dL/dh||, on_gradient, rms, top, the residual theory)."""
    return block_report(model, x, y, probes=config["probes"], iterations=config["iterations"], seed=seed,
                        theory=residual_theory, branch=residual_branch)


class CurvatureProbe:
    """Pricope's second-order argument, measured on one fixed small batch at init and after every epoch.

    f(w - eps g) ~ f(w) - eps g^T g + 1/2 eps^2 g^T H g: records g^T g, g^T H g, the curvature
    along g, the largest Hessian eigenvalue and the predicted and actual loss change of a plain
    gradient step of size eps (the run's learning rate) on the same batch.
    """

    def __init__(self, model, x, y, eps: float, eigen_iterations: int, seed: int) -> None:
        self.model, self.x, self.y = model, x, y
        self.eps, self.eigen_iterations, self.seed = eps, eigen_iterations, seed
        self.records: list[dict] = []

    def measure(self, epoch: int | None) -> dict:
        params = [p for p in self.model.parameters()]
        loss_fn = lambda: cross_entropy(self.model(self.x), self.y)
        record = {"epoch": epoch, **curvature_along_gradient(loss_fn, params, lr=self.eps, module=self.model)}
        top = largest_hessian_eigenvalue(loss_fn, params, iterations=self.eigen_iterations, seed=self.seed,
                                         module=self.model)
        record.update(top_eigenvalue=top["eigenvalue"], top_eigenvalue_change=top["change"])
        # The same along the first stage's parameters alone (entry block, stage 0): where the gradient vanishes.
        early = [p for n, p in self.model.named_parameters() if n.startswith(("input_conv.", "block_0_", "reduction_block_0."))]
        first = curvature_along_gradient(loss_fn, early, lr=self.eps, module=self.model)
        record["first_stage"] = {"parameters": int(sum(p.size for p in early)),
                                 **{k: first[k] for k in ("gTg", "gTHg", "curvature", "critical_lr", "predicted_change",
                                                          "actual_change")}}
        self.records.append(record)
        return record

    def on_epoch_end(self, state) -> None:
        self.measure(len(self.records))  # records[0] is at init, so this is the epoch's number


def _load() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # not on every platform
        return []


def run_variant(ctx: RunContext) -> dict:
    load_before = _load()
    md.manual_seed(ctx.seed)
    data, cfg = ctx.data, ctx.config
    train_cfg = settings(ctx.variant, cfg)
    model = build(ctx.variant, len(data.train.classes)).to(ctx.device)
    # A few training images, the same for every variant of a seed: the chain-rule and curvature probes' batches,
    # on the run's device (the probes run before, during and after training).
    x, y = next(iter(data.loaders(max(cfg["probe_batch"], cfg["curvature_batch"]), ctx.seed, ctx.device)[0]))
    xp, yp = x[:cfg["probe_batch"]], y[:cfg["probe_batch"]]
    xc, yc = x[:cfg["curvature_batch"]], y[:cfg["curvature_batch"]]
    t0 = time.perf_counter()
    chain_init = chain_rule_table(model, xp, yp, cfg, ctx.seed)
    probe_s = time.perf_counter() - t0
    callbacks, curvature = [], None
    if ctx.variant in CURVATURE_VARIANTS:
        curvature = CurvatureProbe(model, xc, yc, train_cfg["lr"], cfg["eigen_iterations"], ctx.seed)
        t0 = time.perf_counter()
        curvature.measure(0)  # epoch 0 = at initialisation; epoch k = after k epochs
        probe_s += time.perf_counter() - t0
        callbacks.append(curvature)
    run = train_classifier(
        model, data, epochs=train_cfg["epochs"], batch_size=train_cfg["batch_size"], seed=ctx.seed,
        optimizer=train_cfg["optimizer"], lr=train_cfg["lr"], weight_decay=train_cfg["weight_decay"],
        schedule=train_cfg["schedule"], eta_min=train_cfg["eta_min"], device=ctx.device,
        checkpoint_dir=ctx.checkpoint_dir, resume=ctx.resume, progress=cfg["progress"], callbacks=callbacks,
    )
    t0 = time.perf_counter()
    run["chain_rule_at_init"] = chain_init
    run["chain_rule_after_training"] = chain_rule_table(model, xp, yp, cfg, ctx.seed)
    run["training"] = train_cfg  # not "settings": the runner stores the run's identity there
    run["parameters"] = int(sum(p.size for p in model.parameters()))
    run["shortcut"] = VARIANTS[ctx.variant]["shortcut"]
    if curvature is not None:
        run["curvature"] = curvature.records
    flow = run["gradient_flow"][-1] if run["gradient_flow"] else {}
    run["first_over_last_grad"] = first_last_ratio(flow)
    run["probe_s"] = probe_s + time.perf_counter() - t0
    run["load_average"] = {"before": load_before, "after": _load()}
    print(f"  {ctx.variant}: test accuracy {run['test_accuracy']:.1%}, "
          f"first/last layer mean |grad| {run['first_over_last_grad']:.2g}, probes {run['probe_s']:.0f} s")
    return run


# ----------------------------------------------------------------------------------------
# Summaries, tables, the claims ledger and the figures: all read results.json (and the twin's file)
# ----------------------------------------------------------------------------------------

TWIN_FILE = ROOT / "docs" / "figures" / "03" / "torch_twin.json"


def twin_accuracies(results: dict, path: Path = TWIN_FILE) -> dict[str, list[float]]:
    """The PyTorch twin's test accuracies per variant (one per seed), when its file is from the same preset and data."""
    if not Path(path).is_file():
        return {}
    twin = json.loads(Path(path).read_text())
    if twin.get("preset") != results["preset"] or twin.get("dataset") != results.get("dataset"):
        return {}
    return {name: [run["test_accuracy"] for run in runs.values()] for name, runs in twin["variants"].items()}


LONGER_FILE = ROOT / "docs" / "figures" / "03" / "longer" / "results.json"


def longer_accuracies(results: dict, path: Path = LONGER_FILE) -> dict | None:
    """``scripts/longer_03.py``'s run (VGG08 and VGG38 BN over more epochs of the same preset and data):
    its epochs and test accuracies per variant, or None when there is none for this preset and data."""
    if not Path(path).is_file():
        return None
    longer = json.loads(Path(path).read_text())
    same = longer.get("preset") == results["preset"] and longer.get("dataset") == results.get("dataset")
    if not same or longer["config"]["epochs"] <= results["config"]["epochs"]:
        return None
    return {"epochs": longer["config"]["epochs"], "seeds": longer["seeds"],
            "test": {n: [r["test_accuracy"] for r in e["runs"].values()] for n, e in longer["variants"].items()}}


def twin_loss_gaps(results: dict, path: Path = TWIN_FILE) -> dict[str, float]:
    """Relative gap of the last epoch's training loss, twin vs minideep, per variant (seed 0 where both ran)."""
    if not twin_accuracies(results, path):
        return {}
    twin = json.loads(Path(path).read_text())["variants"]
    gaps = {}
    for name, entry in results["variants"].items():
        seed = next(iter(entry["runs"]))
        if name in twin and seed in twin[name]:
            ours, theirs = entry["runs"][seed]["history"][-1]["train_loss"], twin[name][seed]["history"][-1]["train_loss"]
            gaps[name] = (theirs - ours) / ours
    return gaps


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def _percent(values: list[float]) -> str:
    mean, std = _mean_std(values)
    return f"{100 * mean:.1f}" if len(values) == 1 else f"{100 * mean:.1f} ± {100 * std:.1f}"


def _runs(entry: dict) -> list[dict]:
    return list(entry["runs"].values())


def _first(entry: dict) -> dict:
    return _runs(entry)[0]


def aggregate(results: dict) -> None:
    """Per variant: parameters, shortcut, settings, the seeds' accuracies and the chain-rule summary."""
    for entry in results["variants"].values():
        first = _first(entry)
        entry["parameters"] = first.get("parameters")
        entry["shortcut"] = first.get("shortcut")
        entry["training"] = first.get("training")
        entry["test_accuracies"] = [r["test_accuracy"] for r in _runs(entry)]
        for key in ("chain_rule_at_init", "chain_rule_after_training"):
            rows = first.get(key) or []
            norms = [r["grad_norm"] for r in rows if r.get("grad_norm")]
            gains = [r["rms"] for r in rows if r.get("rms") and r["kind"] in ("ProcessingBlock", "ResidualBlock")]
            entry[key + "_summary"] = {
                "first_block_grad_norm": norms[0] if norms else None, "last_block_grad_norm": norms[-1] if norms else None,
                "orders_of_magnitude": math.log10(norms[-1] / norms[0]) if norms and norms[0] > 0 else None,
                "processing_block_rms_geomean": float(np.exp(np.mean(np.log(gains)))) if gains else None,
            }
    results["load_average"] = {name: _first(e).get("load_average") for name, e in results["variants"].items()}


def _ensure_aggregated(results: dict) -> None:
    """The per-variant summaries (an interrupted run's results.json may lack them)."""
    if any("test_accuracies" not in e for e in results["variants"].values()):
        aggregate(results)


def summarize(results: dict) -> str:
    _ensure_aggregated(results)
    rows = []
    twin = twin_accuracies(results)
    for name, entry in results["variants"].items():
        last = entry["history"][-1] if entry.get("history") else {}
        flow = entry["gradient_flow"][-1] if entry.get("gradient_flow") else {}
        values = list(flow.values())
        pub = PAPER.get(name, {})
        rows.append({"variant": name, "params": entry.get("parameters"), "test acc %": _percent(entry["test_accuracies"]),
                     "PyTorch twin %": _percent(twin[name]) if name in twin else None,
                     "train loss": last.get("train_loss"), "first |grad|": values[0] if values else None,
                     "last |grad|": values[-1] if values else None,
                     "Pricope test %": pub.get("Pricope test %"), "same settings": pub.get("same settings")})
    data = results["dataset"]
    header = (f"Chapter 03 ({results['preset']} preset, {data['name']}: {data['n_train']} train / "
              f"{data['n_test']} test images, device {results['device']}, seeds {results['seeds']})")
    return header + "\n" + format_table(rows, [c for c in rows[0] if any(r.get(c) is not None for r in rows)])


def _architecture(name: str) -> str:
    cfg = VARIANTS[name]
    parts = ["VGG08" if cfg["blocks"] == 0 else f"VGG{8 + 6 * cfg['blocks']}"]
    if cfg["activation"] == "sigmoid":
        parts.append("sigmoid")
    if cfg["batch_norm"]:
        parts.append("BN")
    if cfg["residual"]:
        parts.append(f"ResNet ({cfg['shortcut']})")
    return " + ".join(parts)


def results_table(results: dict) -> str:
    """Every variant run beside the published numbers; Pricope's settings shown where they differ from ours."""
    twin = twin_accuracies(results)
    rows = []
    for name, entry in results["variants"].items():
        s = entry["training"]
        pub = PAPER.get(name, {})
        pricope = None
        if "Pricope test %" in pub:
            pricope = f"{pub['Pricope test %']:.2f}"
            if not pub["same settings"] or results["preset"] != "paper":
                pricope += f" (row {pub['Pricope row']}: {pub['Pricope settings']}, CIFAR-100)"
        rows.append({
            "variant": f"`{name}`", "network": _architecture(name), "parameters": f"{entry['parameters']:,}",
            "bs / lr / wd": f"{s['batch_size']} / {s['lr']:g} / {s['weight_decay']:g}",
            "test acc %": _percent(entry["test_accuracies"]),
            "PyTorch twin %": _percent(twin[name]) if name in twin else "not run",
            "Pricope test %": pricope, "coursework train/val %": pub.get("coursework train/val %"),
            "framework test %": pub.get("framework test %"),
        })
    return markdown_table(rows)


def chain_rule_markdown(rows: list[dict]) -> str:
    columns = {"name": "block", "grad_norm": "‖dL/dh‖", "on_gradient": "on gradient", "rms": "rms", "top": "top",
               "branch_rms": "branch rms", "predicted": "theory √(1+branch rms²)"}
    return report_table(rows, columns, 3)


def curvature_rows(results: dict) -> list[dict]:
    rows = []
    for name in CURVATURE_VARIANTS:
        if name not in results["variants"]:
            continue
        for rec in _first(results["variants"][name]).get("curvature", []):
            rows.append({"variant": f"`{name}`", "epoch": rec["epoch"], "loss": rec["loss"], "gᵀg": rec["gTg"],
                         "gᵀHg": rec["gTHg"], "curvature gᵀHg/gᵀg": rec["curvature"],
                         "λ_max": rec["top_eigenvalue"], "ε": rec["lr"], "predicted ΔL": rec["predicted_change"],
                         "actual ΔL": rec["actual_change"], "first-stage gᵀg": rec["first_stage"]["gTg"],
                         "first-stage curvature": rec["first_stage"]["curvature"]})
    return rows


def table1(results: dict) -> str:
    """Pricope's Table 1, row by row: the variant that runs it, its settings, the published and (if run) our accuracy."""
    rows = []
    for name, cfg in VARIANTS.items():
        row = cfg["pricope_row"]
        if row is None:
            continue
        bs, lr, wd, test, train = PRICOPE[row]
        entry = results["variants"].get(name)
        ours = "not run"
        if entry is not None:
            s = entry["training"]
            ours = _percent(entry["test_accuracies"]) + f" ({results['preset']}: bs {s['batch_size']}, {results['dataset']['name']})"
        rows.append({"row": row, "variant": f"`{name}`", "network": _architecture(name), "batch": bs, "lr": f"{lr:g}",
                     "weight decay": f"{wd:g}", "Pricope test %": test, "Pricope train %": train, "ours test %": ours})
    return markdown_table(rows)


def tables(results: dict) -> dict[str, str]:
    _ensure_aggregated(results)
    out = {"results": results_table(results), "pricope_table1": table1(results)}
    for name in ("vgg38", "vgg38_bn", "vgg38_res", "vgg38_bn_res"):
        if name in results["variants"]:
            first = _first(results["variants"][name])
            out[f"chain_rule_{name}_init"] = chain_rule_markdown(first["chain_rule_at_init"])
            out[f"chain_rule_{name}_trained"] = chain_rule_markdown(first["chain_rule_after_training"])
    summary = []
    for name, entry in results["variants"].items():
        for when in ("at_init", "after_training"):
            s = entry[f"chain_rule_{when}_summary"]
            summary.append({"variant": f"`{name}`", "when": when.replace("_", " "),
                            "‖dL/dh‖ first block": s["first_block_grad_norm"],
                            "‖dL/dh‖ last block": s["last_block_grad_norm"],
                            "log10(last / first): orders of magnitude": s["orders_of_magnitude"],
                            "processing-block rms gain (geometric mean)": s["processing_block_rms_geomean"]})
    out["chain_rule_summary"] = markdown_table(summary)
    rows = curvature_rows(results)
    if rows:
        out["curvature"] = markdown_table(rows)
    timing = []
    for name, entry in results["variants"].items():
        for seed, run in entry["runs"].items():
            load = run.get("load_average") or {}
            timing.append({"variant": f"`{name}`", "seed": seed, "wall s": round(run.get("wall_time_s", 0.0)),
                           "of which probes s": round(run.get("probe_s", 0.0)),
                           "load average before (1/5/15 min)": " / ".join(map(str, load.get("before") or [])) or None,
                           "after": " / ".join(map(str, load.get("after") or [])) or None})
    timing.append({"variant": "all", "seed": "", "wall s": round(sum(r["wall s"] for r in timing)),
                   "of which probes s": round(sum(r["of which probes s"] for r in timing)),
                   "load average before (1/5/15 min)": None, "after": None})
    out["timings"] = markdown_table(timing)
    return out


def _acc(results: dict, name: str) -> float | None:
    entry = results["variants"].get(name)
    return None if entry is None else entry["test_accuracy"]


def _claim(claim: str, source: str, paper: str, ours: str, verdict: str, evidence: str) -> dict:
    return {"claim": claim, "source": source, "paper": paper, "ours": ours, "verdict": verdict, "evidence": evidence}


def _not_run(claim: str, source: str, paper: str, names: list[str]) -> dict:
    return _claim(claim, source, paper, "-", "not run",
                  f"needs {', '.join(f'`{n}`' for n in names)}: `--variants {' '.join(names)}` (the paper preset runs them)")


def claims(results: dict) -> list[dict]:
    """Every headline claim of Pricope (2021) and the coursework, judged on this run's numbers."""
    _ensure_aggregated(results)
    v = results["variants"]
    chance = 1.0 / results["dataset"]["classes"]
    seeds = len(results["seeds"])
    spread = max([e.get("test_accuracy_std", 0.0) for e in v.values()] + [0.0])
    noise = max(0.02, 2 * spread)  # what two runs of one setting differ by, at least 2 points
    regime = (f"{results['preset']} preset: {results['dataset']['name']}, {results['dataset']['n_train']} training images, "
              f"{results['config']['epochs']} epochs, {seeds} seed(s)")
    pct = lambda a: f"{100 * a:.1f}%"
    out = []

    def have(*names):
        return all(n in v for n in names)

    c, s = "Plain VGG38 stays at chance", "Pricope 2021, Table 1 row 4; coursework framework"
    if have("vgg38"):
        a = _acc(results, "vgg38")
        out.append(_claim(c, s, "1% (chance, 100 classes)", f"{pct(a)} (chance {pct(chance)})",
                          "reproduced" if abs(a - chance) <= 0.02 else "differs", f"test accuracy; {regime}"))
    else:
        out.append(_not_run(c, s, "1%", ["vgg38"]))

    c, s = "In plain VGG38 the gradient vanishes on the way to the input", "Pricope 2021, Fig. 2; coursework"
    if have("vgg38"):
        ratio = _first(v["vgg38"])["first_over_last_grad"]
        orders = v["vgg38"]["chain_rule_at_init_summary"]["orders_of_magnitude"]
        out.append(_claim(c, s, "O(1e-3) mean |grad|, vanishing", f"first/last layer mean |grad| {ratio:.2g}",
                          "reproduced" if ratio < 1e-2 else "differs",
                          f"after training; at init ‖dL/dh‖ grows {orders:.1f} orders of magnitude from the first block to the last"))
    else:
        out.append(_not_run(c, s, "vanishing", ["vgg38"]))

    c, s = "BN fixes the gradient and VGG38 BN learns", "Pricope 2021, Fig. 3 and Table 1 row 5"
    if have("vgg38_bn"):
        ratio, a = _first(v["vgg38_bn"])["first_over_last_grad"], _acc(results, "vgg38_bn")
        ok = ratio > 1e-2 and a > chance + 0.1
        out.append(_claim(c, s, "46.78%, gradients O(1e-1)", f"{pct(a)}, first/last mean |grad| {ratio:.2g}",
                          "reproduced" if ok else "differs", f"test accuracy and gradient flow; {regime}"))
    else:
        out.append(_not_run(c, s, "46.78%", ["vgg38_bn"]))

    c, s = "BN alone does not justify the deeper net (VGG38 BN about VGG08)", "Pricope 2021, Table 1 rows 1, 5"
    if have("vgg08", "vgg38_bn"):
        a8, a38 = _acc(results, "vgg08"), _acc(results, "vgg38_bn")
        ok = a38 - a8 <= noise
        twin, second = twin_accuracies(results), ""
        if "vgg08" in twin and "vgg38_bn" in twin:  # the same experiment in PyTorch: a second sample of the comparison
            second = (f"; the PyTorch twin of this run: {pct(float(np.mean(twin['vgg38_bn'])))} vs "
                      f"{pct(float(np.mean(twin['vgg08'])))}")
        longer, why = longer_accuracies(results), ""
        if longer and {"vgg08", "vgg38_bn"} <= set(longer["test"]):
            l8, l38 = (float(np.mean(longer["test"][n])) for n in ("vgg08", "vgg38_bn"))
            persists = l38 - l8 > noise
            second += (f"; run for {longer['epochs']} epochs ({len(longer['seeds'])} seed(s), scripts/longer_03.py): "
                       f"{pct(l38)} vs {pct(l8)}, so the gap {'persists' if persists else 'closes'} with training")
            times = longer["epochs"] / results["config"]["epochs"]
            why = (f"Not the epoch budget alone: the gap persists over {times:g}x the epochs. What is left is the data "
                   "(10 classes and 2,000 images here, CIFAR-100's 100 and 47,500 in the paper), which the paper "
                   "preset tests: " if persists else "The epoch budget: the gap closes with longer training: ")
        out.append(_claim(c, s, "46.78% vs 49.95% (-3.2 points)", f"{pct(a38)} vs {pct(a8)} ({100 * (a38 - a8):+.1f} points)",
                          "reproduced" if ok else "differs",
                          (f"VGG38 BN not ahead of VGG08 by more than {100 * noise:.0f} points; " if ok else
                           f"VGG38 BN ahead by more than {100 * noise:.0f} points. " + (
                               why if why else
                               "Likely the regime, where BN's faster early progress counts and neither net has reached "
                               "the accuracy where Pricope's 100 CIFAR-100 epochs compare them (see the training curves): "))
                          + regime + second))
    else:
        out.append(_not_run(c, s, "46.78% vs 49.95%", ["vgg08", "vgg38_bn"]))

    c, s = "Residual connections alone fix VGG38", "Pricope 2021, Table 1 row 11 (projection shortcut)"
    if have("vgg38_res"):
        a = _acc(results, "vgg38_res")
        out.append(_claim(c, s, "44.77%", pct(a), "reproduced" if a > chance + 0.1 else "differs",
                          f"`vgg38_res` (Pricope's projection shortcut, no BN) beats chance {pct(chance)} by more than 10 points; {regime}"))
    else:
        out.append(_not_run(c, s, "44.77%", ["vgg38_res"]))

    c, s = "BN + ResNet is the best network", "Pricope 2021, Table 1 rows 12-16; coursework report"
    bnres = [n for n in v if "_bn_res" in n and n.startswith("vgg38")]
    if bnres:
        best = max(v, key=lambda n: v[n]["test_accuracy"])
        top = max(bnres, key=lambda n: v[n]["test_accuracy"])
        ok = best in bnres or v[best]["test_accuracy"] - v[top]["test_accuracy"] <= noise
        out.append(_claim(c, s, "58.84-61.81% (best of Table 1)", f"`{top}` {pct(v[top]['test_accuracy'])}; best overall `{best}` {pct(v[best]['test_accuracy'])}",
                          "reproduced" if ok else "differs", f"best test accuracy of the {len(v)} variants run; {regime}"))
    else:
        out.append(_not_run(c, s, "58.84%", ["vgg38_bn_res"]))

    c, s = "Very deep beats shallow once BN + ResNet are in (over 7 points)", "Pricope 2021, Sec. 7"
    if bnres and have("vgg08"):
        top = max(bnres, key=lambda n: v[n]["test_accuracy"])
        shallow = max([n for n in v if n.startswith("vgg08")], key=lambda n: v[n]["test_accuracy"])
        gap = v[top]["test_accuracy"] - v[shallow]["test_accuracy"]
        out.append(_claim(c, s, "61.81% vs 54.45% (+7.4 points)", f"{pct(v[top]['test_accuracy'])} vs {pct(v[shallow]['test_accuracy'])} ({100 * gap:+.1f} points)",
                          "reproduced" if gap > noise else "differs", f"`{top}` vs the best VGG08 run (`{shallow}`); {regime}"))
    else:
        out.append(_not_run(c, s, "+7 points", ["vgg08", "vgg38_bn_res"]))

    c, s = "VGG08 BN + ResNet gains about 1 point over VGG08 BN", "Pricope 2021, Table 1 rows 2-3"
    if have("vgg08_bn", "vgg08_bn_res"):
        d = _acc(results, "vgg08_bn_res") - _acc(results, "vgg08_bn")
        out.append(_claim(c, s, "54.45% vs 53.89% (+0.6)", f"{100 * d:+.1f} points", "reproduced" if abs(d) <= noise else "differs",
                          f"parameters {v['vgg08_bn_res']['parameters']:,} vs {v['vgg08_bn']['parameters']:,} (projection shortcuts); {regime}"))
    else:
        out.append(_not_run(c, s, "+0.6 points", ["vgg08_bn", "vgg08_bn_res"]))

    c, s = "BN makes even a sigmoid VGG38 learn (a bit)", "Pricope 2021, Table 1 row 10"
    sig = [n for n in ("vgg38_sigmoid_bn_bs512", "vgg38_sigmoid_bn") if n in v]
    if sig:
        a = _acc(results, sig[0])
        out.append(_claim(c, s, "26.88%", f"`{sig[0]}` {pct(a)}", "reproduced" if a > chance + 0.05 else "differs",
                          f"above chance {pct(chance)} by more than 5 points; {regime}"))
    else:
        out.append(_not_run(c, s, "26.88%", ["vgg38_sigmoid_bn_bs512"]))

    c, s = "Learning rate 1e-3 beats 1e-2 and 1e-1 for VGG38 BN", "Pricope 2021, Table 1 rows 5-7"
    if have("vgg38_bn", "vgg38_bn_lr0.01", "vgg38_bn_lr0.1"):
        a = [_acc(results, n) for n in ("vgg38_bn", "vgg38_bn_lr0.01", "vgg38_bn_lr0.1")]
        out.append(_claim(c, s, "46.78 > 44.14 > 22.46", " > ".join(f"{100 * x:.1f}" for x in a),
                          "reproduced" if a[0] >= a[1] >= a[2] else "differs", regime))
    else:
        out.append(_not_run(c, s, "46.78 > 44.14 > 22.46", ["vgg38_bn", "vgg38_bn_lr0.01", "vgg38_bn_lr0.1"]))

    c, s = "Batch size 256 is best for VGG38 BN", "Pricope 2021, Table 1 rows 5, 8, 9"
    if have("vgg38_bn", "vgg38_bn_bs256", "vgg38_bn_bs512"):
        a = {n: _acc(results, n) for n in ("vgg38_bn", "vgg38_bn_bs256", "vgg38_bn_bs512")}
        best = max(a, key=a.get)
        out.append(_claim(c, s, "47.22% at 256 (46.78 at 100, 46.49 at 512)", ", ".join(f"{n} {100 * x:.1f}" for n, x in a.items()),
                          "reproduced" if best == "vgg38_bn_bs256" else "differs", regime))
    else:
        out.append(_not_run(c, s, "47.22% at 256", ["vgg38_bn", "vgg38_bn_bs256", "vgg38_bn_bs512"]))

    c, s = "Weight decay 1e-4 at batch 256 gives the best model", "Pricope 2021, Table 1 row 16"
    wd = [n for n in v if "wd" in n]
    if "vgg38_bn_res_bs256_wd1e-4" in v and len(wd) > 1:
        best = max(wd, key=lambda n: v[n]["test_accuracy"])
        out.append(_claim(c, s, "61.81%", f"best `{best}` {pct(v[best]['test_accuracy'])}",
                          "reproduced" if best == "vgg38_bn_res_bs256_wd1e-4" else "differs", regime))
    else:
        out.append(_not_run(c, s, "61.81%", [n for n in VARIANTS if "wd" in n]))

    c, s = "The coursework's residual VGG38s learn (shortcuts around processing blocks only)", "coursework report"
    cw = [n for n in ("vgg38_res_coursework", "vgg38_bn_res_coursework") if n in v]
    if cw:
        out.append(_claim(c, s, "52.32% / 53.76% validation", ", ".join(f"`{n}` {pct(_acc(results, n))}" for n in cw),
                          "reproduced" if all(_acc(results, n) > chance + 0.1 for n in cw) else "differs", regime))
    else:
        out.append(_not_run(c, s, "52.32% / 53.76%", ["vgg38_res_coursework", "vgg38_bn_res_coursework"]))

    out.append(curvature_claim(results))
    out.append(twin_claim(results))
    return out


def curvature_verdicts(results: dict) -> dict | None:
    """Which explanation the curvature study supports, computed at initialisation (epoch 0).

    Pricope's: a gradient step fails because the curvature term 1/2 eps^2 g^T H g outweighs
    eps g^T g, i.e. the learning rate is above the critical 2 g^T g / g^T H g. The vanishing
    gradient: g^T g itself is orders of magnitude smaller than the trainable networks', so the
    first-order decrease is negligible whatever the curvature.
    """
    v = results["variants"]
    if not all(n in v and _first(v[n]).get("curvature") for n in ("vgg38", "vgg08")):
        return None
    at = {n: _first(v[n])["curvature"][0] for n in CURVATURE_VARIANTS if n in v and _first(v[n]).get("curvature")}
    deep = at["vgg38"]
    others = {n: r for n, r in at.items() if n != "vgg38"}
    per_param = lambda r: r["first_stage"]["gTg"] / r["first_stage"]["parameters"]
    ratio = per_param(deep) / min(per_param(r) for r in others.values())
    return {"at_init": at, "first_stage_gTg_per_parameter_ratio": ratio,
            "vanishing": ratio < 1e-2, "curvature": deep["critical_lr"] < deep["lr"],
            "vgg38_critical_lr": deep["critical_lr"], "lr": deep["lr"]}


def curvature_claim(results: dict) -> dict:
    c = "Very deep plain nets fail because curvature (gᵀHg) outweighs the gradient step (gᵀg)"
    s = "Pricope 2021, Sec. 2 (second-order Taylor argument)"
    paper = "½ε²gᵀHg > ε gᵀg for VGG38"
    cv = curvature_verdicts(results)
    if cv is None:
        return _not_run(c, s, paper, list(CURVATURE_VARIANTS))
    deep = cv["at_init"]["vgg38"]
    ours = (f"VGG38 at init: gᵀg {deep['gTg']:.2g}, critical step 2gᵀg/gᵀHg {cv['vgg38_critical_lr']:.2g} "
            f"vs ε {cv['lr']:g}; first-stage gᵀg per parameter {cv['first_stage_gTg_per_parameter_ratio']:.2g}x "
            f"the smallest of {', '.join(n for n in cv['at_init'] if n != 'vgg38')}")
    which = ("both" if cv["curvature"] and cv["vanishing"] else "the curvature explanation" if cv["curvature"]
             else "the vanishing-gradient explanation" if cv["vanishing"] else "neither")
    return _claim(c, s, paper, ours, "reproduced" if cv["curvature"] else "differs",
                  f"on one fixed batch of {results['config']['curvature_batch']} training images, at initialisation; "
                  f"the data support {which}")


def twin_claim(results: dict) -> dict:
    c = "An independent PyTorch twin (same weights, batches, optimizer) gets the same accuracies"
    s = "this course (tests/test_vgg_torch.py: 20 float64 Adam steps agree to 1e-6)"
    twin = twin_accuracies(results)
    both = [n for n in results["variants"] if n in twin]
    if not both:
        seeds = " ".join(str(seed) for seed in results["seeds"])
        return _claim(c, s, "-", "-", "not run", f"run `python scripts/torch_twin_03.py --preset {results['preset']} "
                      f"--seeds {seeds} --out {TWIN_FILE.relative_to(ROOT)}` (the same seeds as this run)")
    seeds = len(results["seeds"])
    spread = max(results["variants"][n].get("test_accuracy_std", 0.0) for n in both)
    diffs = {n: float(np.mean(twin[n])) - results["variants"][n]["test_accuracy"] for n in both}
    worst = max(diffs, key=lambda n: abs(diffs[n]))
    tolerance = 2 * spread if seeds > 1 else 0.0
    ok = seeds > 1 and abs(diffs[worst]) <= max(tolerance, 1e-9)
    ours = ", ".join(f"`{n}` {100 * d:+.1f}" for n, d in diffs.items()) + " points (twin - minideep)"
    loss_gap = twin_loss_gaps(results)
    if loss_gap:
        worst_loss = max(loss_gap, key=lambda n: abs(loss_gap[n]))
        ours += f"; last-epoch training loss within {100 * abs(loss_gap[worst_loss]):.0f}% (`{worst_loss}`)"
    evidence = (f"largest gap `{worst}` {100 * diffs[worst]:+.1f} points; seed spread (2 std) {100 * tolerance:.1f} points"
                if seeds > 1 else
                f"one seed: the seed spread is not measured yet (run both with `--seeds 0 1 2`); largest gap "
                f"`{worst}` {100 * diffs[worst]:+.1f} points; float32 runs of one experiment drift apart after a few hundred steps")
    # One seed: no spread to compare within, so the comparison within the spread is not run yet.
    return _claim(c, s, "-", ours, ("reproduced" if ok else "differs") if seeds > 1 else "not run", evidence)


def curvature_figure(results: dict, path: Path) -> Path | None:
    rows = {n: _first(results["variants"][n]).get("curvature") for n in CURVATURE_VARIANTS if n in results["variants"]}
    rows = {n: r for n, r in rows.items() if r}
    if not rows:
        return None
    fig, grid = _new_figure(1, 4)
    axes = grid[0]
    panels = [("gTg", "gᵀg (gradient², log)"), ("curvature", "curvature gᵀHg / gᵀg"),
              ("top_eigenvalue", "largest Hessian eigenvalue"), (None, "ΔL for a step ε g: predicted vs actual")]
    for k, (key, label) in enumerate(panels):
        ax = axes[k]
        for i, (name, recs) in enumerate(rows.items()):
            epochs = [r["epoch"] for r in recs]
            style = _style(i)
            if key is None:
                ax.plot(epochs, [r["actual_change"] for r in recs], label=f"{name} actual", **style)
                ax.plot(epochs, [r["predicted_change"] for r in recs], linestyle=":", color=style.get("color"),
                        marker="x", label=f"{name} predicted")
            else:
                values = [abs(r[key]) if key == "gTg" else r[key] for r in recs]
                ax.plot(epochs, values, label=name, **style)
                if key == "gTg":
                    ax.plot(epochs, [r["first_stage"]["gTg"] for r in recs], linestyle="--", color=style.get("color"),
                            label=f"{name}, first stage")
        ax.set_xticks(sorted({r["epoch"] for recs in rows.values() for r in recs}))
        if key == "gTg":
            ax.set_yscale("log")
        elif key in ("curvature", "top_eigenvalue"):  # signed, spanning orders of magnitude
            ax.set_yscale("symlog", linthresh=1e-1)
        elif key is None:
            ax.set_yscale("symlog", linthresh=1e-8)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch (0 = init)")
    axes[0].legend(fontsize=7)
    axes[3].legend(fontsize=6)
    fig.suptitle("Curvature along the gradient, one fixed batch", fontsize=10)
    return _save(fig, path, "curvature_figure")


def figures(results: dict, out: Path) -> list[Path]:
    _ensure_aggregated(results)
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
            rows = _first(variants[name])["chain_rule_at_init"]
            norms = [r["grad_norm"] for r in rows]
            gains = [r["on_gradient"] for r in rows]
            made.append(plots.chain_rule_gains(gains, norms, out / f"chain_rule_at_init_{name}.png",
                                               [r["name"] for r in rows],
                                               title=f"{name} at initialisation: each block's gain on the gradient it gets "
                                                     "(‖Jᵀg‖/‖g‖) and ‖dL/dh‖"))
    histories = {n: [r["history"] for r in v["runs"].values()] for n, v in variants.items()}
    made.append(plots.training_curves(histories, out / "training_curves.png", band="std",
                                      title="Loss and accuracy of every variant (mean ± std over seeds)"))
    made.append(curvature_figure(results, out / "curvature.png"))
    return [m for m in made if m is not None]


EXPERIMENT = Experiment(
    chapter="03_vgg38",
    description=__doc__.split("\n\n")[0],
    presets=PRESETS,
    variants=list(VARIANTS),
    default_variants=DEFAULT_VARIANTS,
    load_data=load_data,
    run_variant=run_variant,
    summarize=summarize,
    figures=figures,
    aggregate=aggregate,
    paper=PAPER,
    claims=claims,
    tables=tables,
).script(__name__)
