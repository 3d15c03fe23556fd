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
from minideep import nn
from minideep.diagnostics import block_report, first_last_ratio, gradient_flow
from minideep.diagnostics.layers import preserved_buffers
from minideep.experiment import Experiment, RunContext, format_table, markdown_table
from minideep.nn.init import calculate_fans
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
    # The per-block chain-rule table at initialisation (first seed): a batch of 8, 4 probes, 5 power iterations.
    preset.update(block_batch=8, block_probes=4, block_iterations=5)
PRESETS["smoke"].update(block_batch=2, block_probes=2, block_iterations=2)


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


#: the seed whose network gets the per-block chain-rule table at initialisation
BLOCK_SEED = 0

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


def _weight_variance(init: str, weight) -> float:
    """Var(W) of He (2 / fan_in) or Glorot (2 / (fan_in + fan_out)); the truncated normals have exactly that."""
    fan_in, fan_out = calculate_fans(tuple(weight.shape))
    return 2 / fan_in if init == "he" else 2 / (fan_in + fan_out)


def predicted_gain(module, init: str) -> float | None:
    """The variance argument's gain of one block without BN: the product over its layers of

    * a convolution or Linear: sqrt(fan_in Var(W)) (sqrt(2) under He, sqrt(2 fan_in / (fan_in + fan_out)) under Glorot);
    * a (leaky) ReLU of slope a: sqrt((1 + a^2) / 2), half the units on for symmetric inputs;
    * a max pool or flatten: 1 (the gradient is routed, not scaled).

    None for a block with batch norm (its gain is set by the batch statistics, not by the init)
    or with a shortcut (the sum of two paths).
    """
    layers = [module] if not list(module.children()) else list(module.children())
    gain = 1.0
    for layer in layers:
        if isinstance(layer, nn.BatchNorm2d) or list(layer.children()):
            return None
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            fan_in, _ = calculate_fans(tuple(layer.weight.shape))
            gain *= float(np.sqrt(fan_in * _weight_variance(init, layer.weight)))
        elif isinstance(layer, (nn.ReLU, nn.LeakyReLU)):
            slope = float(getattr(layer, "negative_slope", 0.0))
            gain *= float(np.sqrt((1 + slope**2) / 2))
    return gain


def block_table(model, x, y, init: str, cfg: dict, seed: int) -> list[dict]:
    """``diagnostics.block_report`` of every top-level block at initialisation, the variance argument as theory."""
    names = [name for name, _ in model.named_children()]
    n = cfg["block_batch"]
    with preserved_buffers(model):
        return block_report(model, x[:n], y[:n], blocks=names, probes=cfg["block_probes"],
                            iterations=cfg["block_iterations"], seed=seed,
                            theory=lambda name, module, row: predicted_gain(module, init))


def run_variant(ctx: RunContext) -> dict:
    arch, batch_norm, init = VARIANTS[ctx.variant]
    cpu_start = time.process_time()  # CPU seconds of all threads: a cost that other jobs on the machine do not inflate
    md.manual_seed(ctx.seed)
    data, cfg = ctx.data, ctx.config
    model = build(arch, batch_norm, init, len(data.train.classes), cfg["size"], cfg["width"])
    x, y = next(iter(data.loaders(cfg["batch_size"], ctx.seed)[0]))
    flow_at_init = weight_flow(model, x, y)
    # The chain-rule table for the first seed only (the seeds differ only in the draw).
    blocks = block_table(model, x, y, init, cfg, ctx.seed) if ctx.seed == BLOCK_SEED else None
    run = train_classifier(
        model, data, epochs=cfg["epochs"], batch_size=cfg["batch_size"], seed=ctx.seed, optimizer=cfg["optimizer"],
        lr=cfg["lr"], schedule=cfg["schedule"], device=ctx.device, checkpoint_dir=ctx.checkpoint_dir,
        resume=ctx.resume, progress=cfg["progress"],
    )
    run["gradient_flow_at_init"] = flow_at_init
    if blocks is not None:
        run["blocks_at_init"] = blocks
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


def _label(name: str) -> str:
    arch, batch_norm, init = VARIANTS[name]
    return f"{ARCHITECTURES[arch]}, {'BN' if batch_norm else 'no BN'}, {INITS[init][0]}"


def block_rows(rows: list[dict]) -> list[dict]:
    return [{"block": r["name"], "kind": r["kind"], "‖dL/dh‖": r["grad_norm"], "on-gradient gain": r["on_gradient"],
             "rms gain": r["rms"], "theory (no BN) rms": r["predicted"], "top gain": r["top"]} for r in rows]


def block_summary_rows(results: dict) -> list[dict]:
    """Per combination, at initialisation: the product of the blocks' gains and the gradient reaching the first block."""
    rows = []
    for name, entry in results["variants"].items():
        run = entry["runs"].get(str(BLOCK_SEED))
        blocks = (run or {}).get("blocks_at_init")
        if not blocks:
            continue
        on = np.array([b["on_gradient"] for b in blocks], dtype=float)
        rms = np.array([b["rms"] for b in blocks], dtype=float)
        predicted = [b["predicted"] for b in blocks]
        rows.append({"combination": _label(name),
                     "‖dL/dh‖ first block / last": blocks[0]["grad_norm"] / blocks[-1]["grad_norm"],
                     "product of on-gradient gains": float(np.prod(on)),
                     "product of rms gains": float(np.prod(rms)),
                     "theory: product (no BN)": float(np.prod(predicted)) if None not in predicted else None,
                     "largest top gain": float(np.max([b["top"] for b in blocks]))})
    return rows


def accuracy_rows(results: dict) -> list[dict]:
    rows = []
    for name, entry in results["variants"].items():
        arch, batch_norm, _ = VARIANTS[name]
        acc, tests = final_values(entry, "train_acc"), [r["test_accuracy"] for r in entry["runs"].values()]
        rows.append({"combination": _label(name), "runs": len(entry["runs"]),
                     "final train acc % (min-max)": f"{100 * np.mean(acc):.1f} ({100 * min(acc):.1f}-{100 * max(acc):.1f})",
                     "test acc %": round(100 * float(np.mean(tests)), 1),
                     "first/last mean |dL/dW| at init": float(np.exp(np.mean(np.log(
                         [r["first_over_last_grad_at_init"] for r in entry["runs"].values()])))),
                     "paper (Fig. 1, no numbers)": PAPER_FINDING[arch, batch_norm]})
    return rows


def tables(results: dict) -> dict[str, str]:
    """The page's Markdown tables from results.json."""
    out = {"accuracy": markdown_table(accuracy_rows(results)), "parameters": markdown_table(parameter_counts())}
    if block_summary_rows(results):
        out["blocks_summary"] = markdown_table(block_summary_rows(results))
    for name, entry in results["variants"].items():
        blocks = (entry["runs"].get(str(BLOCK_SEED)) or {}).get("blocks_at_init")
        if blocks:
            out[f"blocks_{name}"] = markdown_table(block_rows(blocks))
    return out


def _train_acc(results: dict, arch: str, bn: bool, init: str) -> list[float]:
    entry = results["variants"].get(f"{arch}_{'bn' if bn else 'nobn'}_{init}", {"runs": {}})
    return [run["history"][-1]["train_acc"] for run in entry["runs"].values()]


def _pct(values: list[float]) -> str:
    return f"{100 * np.mean(values):.1f}% ({100 * min(values):.1f}-{100 * max(values):.1f})" if values else "-"


def claims(results: dict) -> list[dict]:
    """McInroe's findings (Figure 1 and "Analysis of Results", no numbers given) beside ours, verdicts from results."""
    src = "McInroe 2020"
    out = []
    spreads = {f"{ARCHITECTURES[a]}/{INITS[i][0]}": _train_acc(results, a, True, i) for a in ARCHITECTURES for i in INITS}
    have = all(spreads.values())
    spread_text = ", ".join(f"{k} {100 * (max(v) - min(v)):.1f}" for k, v in spreads.items() if v)
    out.append({"claim": "With BN, training is consistent and near-perfect for both networks and inits",
                "source": f"{src}, Fig. 1", "paper": "consistent, near-perfect training accuracy",
                "ours": f"final train acc spread over seeds (points): {spread_text}" if have else "-",
                "verdict": ("reproduced" if all(max(v) - min(v) <= 0.05 for v in spreads.values()) else "differs")
                if have else "not run",
                "evidence": "; ".join(f"{k}: {_pct(v)}" for k, v in spreads.items())})
    for init in INITS:
        yolo, res = _train_acc(results, "tinyyolo", False, init), _train_acc(results, "resnet26", False, init)
        ok = bool(yolo and res) and np.mean(yolo) < np.mean(res)
        out.append({"claim": f"Without BN, Tiny-YOLO trains worse than ResNet26 ({INITS[init][0]} init)",
                    "source": f"{src}, Fig. 1", "paper": "Tiny-YOLO without BN poor and inconsistent",
                    "ours": f"Tiny-YOLO {_pct(yolo)}, ResNet26 {_pct(res)}" if yolo and res else "-",
                    "verdict": ("reproduced" if ok else "differs") if yolo and res else "not run",
                    "evidence": "final training accuracy, mean (min-max) over seeds"})
    for init in INITS:
        bn, nobn = _train_acc(results, "resnet26", True, init), _train_acc(results, "resnet26", False, init)
        ok = bool(bn and nobn) and np.mean(bn) - np.mean(nobn) <= 0.10
        out.append({"claim": f"ResNet26 trains nearly as well without BN as with it ({INITS[init][0]} init)",
                    "source": f"{src}, Fig. 1", "paper": "nearly as good as with BN",
                    "ours": f"BN {_pct(bn)}, no BN {_pct(nobn)}" if bn and nobn else "-",
                    "verdict": ("reproduced" if ok else "differs") if bn and nobn else "not run",
                    "evidence": "within 10 points counted as nearly as good"})
    he = {r["combination"]: r for r in block_summary_rows(results)}
    a, b = he.get("Tiny-YOLO, no BN, He"), he.get("Tiny-YOLO, no BN, Glorot")
    if a and b:
        out.append({"claim": "He init keeps the gradient's size through a plain ReLU network, Glorot shrinks it",
                    "source": f"{src}, Sec. 2 (after He et al. 2015)", "paper": "He suits ReLU networks",
                    "ours": f"Tiny-YOLO without BN: product of rms gains {a['product of rms gains']:.3g} (He) vs "
                            f"{b['product of rms gains']:.3g} (Glorot)",
                    "verdict": "reproduced" if a["product of rms gains"] > b["product of rms gains"] else "differs",
                    "evidence": f"theory {a['theory: product (no BN)']:.3g} vs {b['theory: product (no BN)']:.3g}; "
                                "block_report at initialisation, first seed"})
    else:
        out.append({"claim": "He init keeps the gradient's size through a plain ReLU network, Glorot shrinks it",
                    "source": f"{src}, Sec. 2", "paper": "He suits ReLU networks", "ours": "-", "verdict": "not run",
                    "evidence": "no block table in this run"})
    counts = [int(r["ours"].replace(",", "")) for r in parameter_counts()]
    paper = list(PAPER_PARAMETERS.values())
    out.append({"claim": "Parameter counts of the four paper-size networks (128x128, 101 classes)",
                "source": f"{src}, Models", "paper": ", ".join(f"{p:,}" for p in paper),
                "ours": ", ".join(f"{c:,}" for c in counts),
                "verdict": "reproduced" if counts[:3] == paper[:3] and abs(counts[3] - paper[3]) <= 128 else "differs",
                "evidence": "ResNet26 without BN: the paper keeps 2 x 64 BN parameters (see the table)"})
    data = results["dataset"]
    food = data["name"] == "food101" and results["config"]["epochs"] >= 50
    out.append({"claim": "The grid on Food-101 at 128x128 for 50 epochs",
                "source": f"{src}, Experiments", "paper": "Fig. 1 curves",
                "ours": "this run" if food else f"{data['name']}, {results['config']['epochs']} epochs",
                "verdict": "reproduced" if food else "not run",
                "evidence": "the quick preset is a small stand-in; the paper preset has not been run here" if not food
                else "paper preset"})
    return out


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
    claims=claims,
    tables=tables,
).script(__name__)
