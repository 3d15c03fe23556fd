"""Chapter 07: tuning a deep residual network, every cell mean +- std over seeds (MLP coursework 2 report, section 5).

Rebuilds the report's hyperparameter search on its residual VGG38 (37 convolutions, a
shortcut around every block): learning rate, weight decay and batch size one at a time
(Tables 2-4), then weight decay x batch size (Table 5) and the best configuration (Table 6).
Every cell is a configuration of the chapter runner's grid (``Experiment.configurations``),
run once per seed: finished runs are skipped with ``--resume``, and the runs can go to a
pool of processes or to a Ray cluster (``--workers``, ``--backend ray``), where a failed run
is reported and the others go on.

    python chapters/07_resnet_tuning.py                      # quick preset: bundled data, ~10 min on 2 cores
    python chapters/07_resnet_tuning.py --preset smoke       # seconds
    python chapters/07_resnet_tuning.py --preset paper --device gpu --backend ray --address HEAD:6379

Writes results.json, tables.txt and the figures into --out
(default runs/07_resnet_tuning).
"""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import minideep as md
from minideep import plots, sweep
from minideep.data import chapter_data
from minideep.experiment import Experiment, RunContext, format_table
from minideep.models import ResidualVGG
from minideep.train import TrainingDiverged, train_classifier

CHAPTER = "07_resnet_tuning"
HYPERPARAMETERS = ("lr", "weight_decay", "batch_size")
SHORT = {"weight_decay": "wd", "batch_size": "bs"}
# The report's five seeds (section 5; "02122020" is 2122020).
PAPER_SEEDS = [0, 2045458, 186285, 2122020, 11132]

# The report's Tables 1-5: (train accuracy %, validation accuracy %) as mean ± std over its five seeds.
PAPER_TABLES = {
    "learning_rate": {1e-2: ("1.0 ± 0", "1.1 ± 0.2"), 1e-3: ("77.2 ± 0.6", "56.1 ± 0.5"),
                      1e-4: ("50.1 ± 0.2", "44.9 ± 0.2"), 1e-5: ("22.2 ± 0.4", "22.1 ± 0.8")},
    "weight_decay": {1e-2: ("33.4 ± 1.2", "32.8 ± 1.4"), 1e-3: ("70.4 ± 0.8", "58.9 ± 0.6"),
                     1e-4: ("80.3 ± 0.5", "58.4 ± 0.7"), 1e-5: ("78.2 ± 0.6", "57.1 ± 0.2"),
                     0.0: ("77.2 ± 0.6", "56.1 ± 0.5")},
    "batch_size": {25: ("66.6 ± 1.7", "55.0 ± 1.0"), 50: ("73.0 ± 0.8", "56.9 ± 0.9"), 100: ("77.2 ± 0.6", "56.1 ± 0.5"),
                   200: ("78.1 ± 0.7", "55.7 ± 0.9"), 500: ("72.7 ± 0.5", "53.2 ± 1.0")},
    # (weight decay, batch size), learning rate 1e-3
    "combinations": {(1e-3, 50): ("1.0 ± 0", "0.6 ± 0"), (1e-3, 100): ("70.4 ± 0.8", "58.9 ± 0.6"),
                     (5e-4, 50): ("73.1 ± 1.4", "60.0 ± 1.0"), (5e-4, 100): ("76.0 ± 0.9", "59.6 ± 0.6"),
                     (1e-4, 50): ("78.5 ± 0.6", "58.8 ± 1.1"), (1e-4, 100): ("80.3 ± 0.5", "58.4 ± 0.7")},
}
# Table 6: the best configuration and its test accuracy.
PAPER_BEST = {"lr": 1e-3, "weight_decay": 5e-4, "batch_size": 50,
              "train": "73.1 ± 1.4", "val": "60.0 ± 1.0", "test": "59.8 ± 1.1"}
TABLES = ("learning_rate", "weight_decay", "batch_size", "combinations")
TABLE_TITLES = {
    "learning_rate": "Table 2: learning rate (weight decay {weight_decay:g}, batch {batch_size})",
    "weight_decay": "Table 3: weight decay (learning rate {lr:g}, batch {batch_size})",
    "batch_size": "Table 4: batch size (learning rate {lr:g}, weight decay {weight_decay:g})",
    "combinations": "Table 5: weight decay x batch size (learning rate {lr:g})",
}

PRESETS: dict[str, dict[str, Any]] = {
    # Seconds, for the tests: a 13-convolution residual VGG on 8x8 images, one epoch of two steps.
    "smoke": dict(
        n_train=40, n_val=20, n_test=40, size=8, blocks=1, filters=8, epochs=1, augment=False, workers=1,
        seeds=[0, 1], default=dict(lr=1e-3, weight_decay=0.0, batch_size=20), moderate_weight_decay=1e-3,
        learning_rate=[1e-2, 1e-3], weight_decay=[0.0, 1e-3], batch_size=[10, 20],
        combinations=dict(weight_decay=[1e-3], batch_size=[10, 20]),
    ),
    # The CPU default (about 10 minutes on 2 busy cores, two runs at a time): the report's network
    # (37 convolutions, 32 channels) on 200 bundled Fashion-MNIST images shrunk to 8x8, 50 epochs,
    # two seeds. Runs ~200 times shorter than the report's need ~10 times its weight decays for the
    # same pull on the weights (see the chapter's page), and batch 50 keeps four steps per epoch.
    "quick": dict(
        n_train=200, n_val=200, n_test=1000, size=8, blocks=5, filters=32, epochs=50, augment=False, workers=2,
        seeds=[0, 1], default=dict(lr=1e-3, weight_decay=0.0, batch_size=50), moderate_weight_decay=1e-2,
        learning_rate=[1e-2, 1e-3, 1e-4], weight_decay=[0.0, 1e-2, 3e-2, 1e-1], batch_size=[25, 50, 100],
        combinations=dict(weight_decay=[1e-2, 3e-2], batch_size=[50, 100]),
    ),
    # The report exactly: CIFAR-100 (47,500 / 2,500 / 10,000), 32x32 with crop + flip, 32 channels,
    # 100 epochs of Adam with the coursework's cosine schedule, its five seeds: 80 training runs.
    "paper": dict(
        n_train=None, n_val=None, n_test=None, size=32, blocks=5, filters=32, epochs=100, augment=True, workers=1,
        seeds=PAPER_SEEDS, default=dict(lr=1e-3, weight_decay=0.0, batch_size=100), moderate_weight_decay=1e-3,
        learning_rate=[1e-2, 1e-3, 1e-4, 1e-5], weight_decay=[1e-2, 1e-3, 1e-4, 1e-5, 0.0],
        batch_size=[25, 50, 100, 200, 500],
        combinations=dict(weight_decay=[1e-3, 5e-4, 1e-4], batch_size=[50, 100]),
    ),
}
for _preset in PRESETS.values():
    # The coursework framework's optimiser and schedule: Adam (coupled L2 weight decay), cosine to 2e-5.
    _preset.update(optimizer="adam", schedule="cosine", eta_min=2e-5)


# ----------------------------------------------------------------------------------------
# The cells of the tables
# ----------------------------------------------------------------------------------------


def table_cells(preset: dict, table: str) -> list[tuple[Any, dict]]:
    """(the value shown in the table's first column, the full hyperparameters) for each cell of ``table``."""
    default = preset["default"]
    if table == "combinations":
        combos = preset["combinations"]
        return [((wd, bs), {**default, "weight_decay": wd, "batch_size": bs})
                for wd in combos["weight_decay"] for bs in combos["batch_size"]]
    key = {"learning_rate": "lr", "weight_decay": "weight_decay", "batch_size": "batch_size"}[table]
    return [(value, {**default, key: value}) for value in preset[table]]


def cell_name(hyper: dict) -> str:
    """``"lr=0.001,wd=0,bs=100"``: one configuration of the sweep (cells of several tables may share it)."""
    return sweep.config_name(hyper, HYPERPARAMETERS, SHORT)


def configurations(preset_name: str, preset: dict, tables: Sequence[str]) -> dict[str, dict]:
    """Every distinct configuration the chosen tables need, in table order: ``{name: hyperparameters}``."""
    configs: dict[str, dict] = {}
    for table in tables:
        for _, hyper in table_cells(preset, table):
            configs.setdefault(cell_name(hyper), hyper)
    return configs


# ----------------------------------------------------------------------------------------
# Data and one run
# ----------------------------------------------------------------------------------------


def load_data(args, config):
    """The splits at ``config["size"]`` (28x28 average-pooled to 7x7 and padded to 8x8 for the quick
    preset: a convolution's cost grows with the pixels), loaded once per process."""
    def make():
        return chapter_data(args.dataset, "cifar100", args.preset, data_dir=args.data_dir, n_train=config["n_train"],
                            n_val=config["n_val"], n_test=config["n_test"], shape=(None, config["size"]),
                            augment=config["augment"], coursework=True)

    key = (CHAPTER, args.dataset, args.preset, str(args.data_dir), config["n_train"], config["n_val"],
           config["n_test"], config["size"], config["augment"])
    return sweep.per_process(key, make)


def run_variant(ctx: RunContext) -> dict:
    """Train the residual VGG with one configuration and seed; the report's accuracies and the history."""
    cfg, hyper, data = ctx.config, ctx.configuration, ctx.data
    md.manual_seed(ctx.seed)
    model = ResidualVGG(cfg["blocks"], num_filters=cfg["filters"], num_classes=len(data.train.classes),
                        in_channels=data.train.images.shape[1])
    try:
        out = train_classifier(
            model, data, epochs=cfg["epochs"], batch_size=hyper["batch_size"], seed=ctx.seed, optimizer=cfg["optimizer"],
            lr=hyper["lr"], weight_decay=hyper["weight_decay"], schedule=cfg["schedule"], eta_min=cfg["eta_min"],
            device=ctx.device, checkpoint_dir=ctx.checkpoint_dir, resume=ctx.resume, progress=cfg["progress"], log=None,
        )
    except TrainingDiverged as e:
        # The report's "cannot converge": no accuracy to average, the run is counted as diverged.
        return {"diverged": True, "message": str(e).split(";")[0], "epoch": e.epoch, "history": [],
                "gradient_flow": [], "chance": 1.0 / len(data.train.classes)}
    shutil.rmtree(ctx.checkpoint_dir, ignore_errors=True)  # the run is in results.json; its checkpoints are spent
    history = out["history"]
    best = next((h for h in history if h["epoch"] == out.get("best_epoch")), history[-1])
    last = history[-3:]
    out.update(
        diverged=False,
        train_accuracy=best["train_acc"], val_accuracy=best["val_acc"],
        final_train_accuracy=history[-1]["train_acc"], final_val_accuracy=history[-1]["val_acc"],
        # The train/validation gap at the end of training, over the last three epochs (less noisy than one).
        gap=float(np.mean([h["train_acc"] - h["val_acc"] for h in last])),
        chance=1.0 / len(data.train.classes),
    )
    out.pop("gradient_max", None)
    return out


# ----------------------------------------------------------------------------------------
# Tables and figures from the records
# ----------------------------------------------------------------------------------------

METRICS = ("train_accuracy", "val_accuracy", "test_accuracy", "gap")


def table_rows(results: dict, table: str) -> list[dict]:
    """One row per cell of ``table``: the summary over seeds of the cell's configuration."""
    summary = {row["name"]: row for row in results["summary"]}
    preset = results["config"]
    rows = []
    for value, hyper in table_cells(preset, table):
        row = summary.get(cell_name(hyper))
        if row is not None:
            rows.append({"value": value, "hyper": hyper, **row})
    return rows


def _value_label(table: str, value: Any) -> str:
    if table == "combinations":
        return f"wd {value[0]:g}, bs {value[1]}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_tables(results: dict) -> str:
    """The tables, each cell mean ± std over seeds beside the report's numbers."""
    data, preset = results["dataset"], results["config"]
    lines = [f"Chapter 07 ({results['preset']} preset, {data['name']}: {data['n_train']} train / {data['n_val']} "
             f"validation / {data['n_test']} test images of {'x'.join(map(str, data['image_shape']))}, "
             f"{preset['blocks']} residual blocks per stage, {preset['filters']} channels, {preset['epochs']} epochs, "
             f"seeds {results['seeds']}, device {results['device']}).",
             "Accuracies in %, mean ± sample std over seeds [min, max]; train and validation at the "
             "best-validation epoch, test from its checkpoint; gap = train - validation, last 3 epochs."]
    for table in results["tables"]:
        rows = table_rows(results, table)
        paper = PAPER_TABLES[table]
        lines += ["", TABLE_TITLES[table].format(**preset["default"])]
        body = []
        for row in rows:
            key = row["value"] if table != "combinations" else tuple(row["value"])
            paper_train, paper_val = paper.get(key, ("-", "-"))
            body.append({
                table.replace("_", " "): _value_label(table, row["value"]),
                "train": sweep.mean_std(row["train_accuracy"]),
                "validation": sweep.mean_std(row["val_accuracy"]),
                "val [min, max]": sweep.min_max(row["val_accuracy"]),
                "test": sweep.mean_std(row["test_accuracy"]),
                "gap": sweep.mean_std(row["gap"]),
                "runs": _runs_cell(row),
                "report train": paper_train, "report val": paper_val,
            })
        lines.append(format_table(body))
    best = best_configuration(results)
    if best is not None:
        lines += ["", "Table 6: the best configuration (highest mean validation accuracy)",
                  format_table([
                      {"": "this run", "lr": f"{best['hyper']['lr']:g}", "weight decay": f"{best['hyper']['weight_decay']:g}",
                       "batch": best["hyper"]["batch_size"], "train": sweep.mean_std(best["train_accuracy"]),
                       "validation": sweep.mean_std(best["val_accuracy"]), "test": sweep.mean_std(best["test_accuracy"])},
                      {"": "report", "lr": f"{PAPER_BEST['lr']:g}", "weight decay": f"{PAPER_BEST['weight_decay']:g}",
                       "batch": PAPER_BEST["batch_size"], "train": PAPER_BEST["train"], "validation": PAPER_BEST["val"],
                       "test": PAPER_BEST["test"]},
                  ])]
    if results["sweep"]["failed"]:
        lines += ["", "Failed runs:"] + [f"  {f['name']} seed {f['seed']}: {f['error']}" for f in results["sweep"]["failed"]]
    return "\n".join(lines)


def _runs_cell(row: dict) -> str:
    text = str(row["n"])
    if row.get("diverged"):
        text += f" ({row['diverged']} diverged)"
    if row["failed"]:
        text += f" (+{row['failed']} failed)"
    return text


def best_configuration(results: dict) -> dict | None:
    """The table cell with the highest mean validation accuracy (first found on a tie)."""
    candidates = [r for t in results["tables"] for r in table_rows(results, t)
                  if math.isfinite(r["val_accuracy"]["mean"])]
    return max(candidates, key=lambda r: r["val_accuracy"]["mean"]) if candidates else None


XLABELS = {"learning_rate": "learning rate", "weight_decay": "weight decay coefficient", "batch_size": "batch size",
           "combinations": "weight decay, batch size (learning rate 1e-3)"}


def figures(results: dict, out: Path) -> list[Path]:
    made = []
    variants, n_seeds = results["variants"], len(results["seeds"])
    for table in results["tables"]:
        rows = table_rows(results, table)
        if not rows:
            continue
        values = [(_value_label(table, r["value"]) if table == "combinations" else r["value"]) for r in rows]

        def series(metric: str) -> tuple[list[float], list[float]]:
            # A cell whose runs all diverged is drawn at chance with no bar: it did not train.
            means = [r[metric]["mean"] if math.isfinite(r[metric]["mean"]) else r_chance(results) for r in rows]
            stds = [r[metric]["std"] if math.isfinite(r[metric]["std"]) else 0.0 for r in rows]
            return means, stds

        (train_m, train_s), (val_m, val_s) = series("train_accuracy"), series("val_accuracy")
        made.append(plots.errorbar_sweep(
            values, {"train": train_m, "validation": val_m}, {"train": train_s, "validation": val_s},
            out / f"sweep_{table}.png", XLABELS[table], ylabel="accuracy at the best-validation epoch (%)",
            title=f"{XLABELS[table]} (mean ± 1 std over {n_seeds} seeds)"))
        if table == "weight_decay":
            gap_m, gap_s = series("gap")
            made.append(plots.errorbar_sweep(  # a gap can be negative: drawn in points, not as a fraction
                values, {"train - validation": [100 * g for g in gap_m]}, {"train - validation": [100 * g for g in gap_s]},
                out / "sweep_weight_decay_gap.png", XLABELS[table], percent=False,
                ylabel="accuracy gap, last 3 epochs (percentage points)",
                title=f"The train/validation gap against weight decay (mean ± 1 std over {n_seeds} seeds)"))
    # The report's Figure 6: default against best (and against a moderate weight decay), per epoch, band over seeds.
    preset = results["config"]
    default_name = cell_name(preset["default"])
    best = best_configuration(results)
    moderate_name = cell_name({**preset["default"], "weight_decay": preset["moderate_weight_decay"]})
    picks = [(f"default ({default_name})", default_name)]
    if best is not None and best["name"] != default_name:
        picks.append((f"best ({best['name']})", best["name"]))
    if moderate_name not in (default_name, best["name"] if best else None):
        picks.append((f"moderate weight decay ({moderate_name})", moderate_name))
    curves = {label: _histories(variants[name]) for label, name in picks if name in variants}
    curves = {k: v for k, v in curves.items() if v}
    if curves:
        made.append(plots.training_curves(curves, out / "curves_default_vs_best.png", band="std",
                                          title="Default, best and moderate weight decay (band: mean ± 1 std over seeds)"))
    if "learning_rate" in results["tables"]:
        by_lr = {}
        for value, hyper in table_cells(preset, "learning_rate"):
            histories = _histories(variants.get(cell_name(hyper), {}))
            if histories:
                by_lr[f"lr {value:g}"] = histories
        if by_lr:
            made.append(plots.training_curves(by_lr, out / "curves_learning_rate.png", band="std",
                                              title="Learning rate: loss and accuracy per epoch (band: ± 1 std over seeds)"))
    return made


def r_chance(results: dict) -> float:
    return 1.0 / results["dataset"]["classes"]


def _histories(entry: dict) -> list:
    return [r["history"] for r in entry.get("runs", {}).values() if r.get("history")]


# ----------------------------------------------------------------------------------------
# The summary over seeds, and the experiment
# ----------------------------------------------------------------------------------------


def aggregate(results: dict) -> None:
    """Per configuration: test accuracy over the seeds that trained, and the summary rows (diverged counted)."""
    variants = results["variants"]
    records = [{"name": name, "config": entry["config"], "seed": int(seed), "status": "ok", "result": run}
               for name, entry in variants.items() for seed, run in entry["runs"].items()]
    records += [{"name": f["name"], "config": {}, "seed": f["seed"], "status": "failed"} for f in results["sweep"]["failed"]]
    for entry in variants.values():
        trained = [r for r in entry["runs"].values() if not r.get("diverged")]
        accuracies = [r["test_accuracy"] for r in trained]
        entry["test_accuracy"] = float(np.mean(accuracies)) if accuracies else None
        entry["test_accuracy_std"] = float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else None
        entry["history"] = trained[0]["history"] if trained else []
        entry["gradient_flow"] = trained[0]["gradient_flow"] if trained else []
    summary = sweep.summarize(records, METRICS)
    for row in summary:
        row["diverged"] = sum(bool(r.get("diverged")) for r in variants.get(row["name"], {}).get("runs", {}).values())
    results["tables"], results["summary"] = results["selected"], summary
    results["load_average"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None


EXPERIMENT = Experiment(
    chapter=CHAPTER,
    description=__doc__.split("\n\n")[0],
    presets=PRESETS,
    variants=TABLES,
    variant_flags=("--tables",),
    configurations=configurations,
    default_seeds={name: preset["seeds"] for name, preset in PRESETS.items()},
    # Two runs at a time on a 2-core CPU for quick, sharing the cores out (one conv thread each).
    default_workers={name: preset["workers"] for name, preset in PRESETS.items()},
    threads_per_run="auto",
    load_data=load_data,
    run_variant=run_variant,
    aggregate=aggregate,
    summarize=format_tables,
    figures=figures,
    table_file="tables.txt",
).script(__name__)
