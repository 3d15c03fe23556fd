"""Chapter 05: a path from every layer to the head lets a 69-layer plain network train (Gil).

Rebuilds Gil, "Addressing issues with training deep networks", Table 1 and Figures 4-7:
baseline, concatenation and summation networks of 12, 69 and 120 layers (99 for the
baseline) with 3, 16 or 64 kernels per layer.

    python chapters/05_skip_to_head.py --threads 1              # quick preset: 18 networks x 3 seeds on 8x8 images
    python chapters/05_skip_to_head.py --variants all --preset paper --device gpu    # the whole grid on CIFAR-10

Writes results.json, table.txt, the claims ledger (claims.json, claims.md), the Markdown tables
(*.md) and the figures into --out (default runs/05_skip_to_head); --from-results RESULTS_JSON
regenerates all of them from a finished run without training.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

import minideep as md
from minideep import plots
from minideep.callbacks import EvaluateEachEpoch
from minideep.data import chapter_data
from minideep.data.transforms import ToFloat
from minideep.diagnostics import block_report, chain_rule_gains, first_last_ratio
from minideep.experiment import Experiment, RunContext, format_table, markdown_table
from minideep.models.skip_to_head import ConvReLU, SkipToHeadNet
from minideep.train import train_classifier

CONNECTION_NAMES = {"baseline": "Baseline", "concat": "Concatenation", "sum": "Summation",
                    "sum2k": "Summation, 2K reading"}
DEPTHS = {"baseline": (12, 69, 99), "concat": (12, 69, 120), "sum": (12, 69, 120)}
KERNELS = (3, 16, 64)
# name ("concat_69x3") -> (connection, depth, kernels): Gil's grid, 27 networks.
VARIANTS = {f"{c}_{d}x{k}": (c, d, k) for c in DEPTHS for d in DEPTHS[c] for k in KERNELS}
# The other reading of "only 1 additional map" (the summed map beside z_L, 2K channels): a choice, off the grid.
VARIANTS.update({f"sum2k_{d}x{k}": ("sum2k", d, k) for d in DEPTHS["sum"] for k in KERNELS})

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
    "smoke": dict(n_train=40, n_test=20, size=32, epochs=1, batch_size=20, bn_momentum=0.1, report_batch=4,
                  report_probes=2, report_iterations=2),
    # The CPU default: Gil's depths 12/69/120 (99 for the baseline) at 3 kernels and 12 at 16 kernels, three
    # seeds each, on 2,000 bundled training images narrowed to 16x16 pixels (the head sees 2x2 maps), 5 epochs of
    # 20 steps. (At 8x8 the head sees 1x1 maps, 3 numbers for the 3-kernel baseline and sum:
    # in a trial run they stayed within 15 points of chance.)
    "quick": dict(n_train=2000, n_test=1000, size=16, epochs=5, batch_size=100, bn_momentum=0.1, report_batch=8,
                  report_probes=4, report_iterations=5),
    # Gil exactly: all of CIFAR-10, batch 500, 200 epochs, Keras's BN momentum (0.99, i.e. 0.01 here).
    "paper": dict(n_train=None, n_test=None, size=32, epochs=200, batch_size=500, bn_momentum=0.01, report_batch=16,
                  report_probes=8, report_iterations=10),
}
for preset in PRESETS.values():
    # Keras SGD as Gil used it: lr 0.01, no momentum, no schedule; pixels / 255, no augmentation.
    preset.update(optimizer="sgd", lr=0.01, momentum=0.0, schedule=None)

SMOKE_VARIANTS = [f"{c}_{d}x3" for d in (12, 69) for c in ("baseline", "concat", "sum")]
# The 3-kernel networks first (depth 12, 69 and 120; the baseline's deepest is 99), then the 16-kernel ones at 12
# layers (a 69-layer 16-kernel net takes about 5x the 12-layer one, a 120-layer one 9x: the paper preset's, or
# --variants concat_69x16 ...).
QUICK_VARIANTS = [f"{c}_{99 if (c, d) == ('baseline', 120) else d}x{k}" for k, depths in ((3, (12, 69, 120)), (16, (12,)))
                  for d in depths for c in ("baseline", "concat", "sum")]


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


def block_table(model: SkipToHeadNet, x, y, cfg: dict, seed: int) -> list[dict]:
    """The chain rule block by block (``diagnostics.block_report``) on a few training images.

    Every body layer (conv+ReLU, max pool, BN) and head layer is a block; a tapped layer's
    output also goes to the head, so its gradient is split into the part that came back
    through the next layer (``chain_grad_norm``) and the skip path's part (``skip_grad_norm``);
    the gains are the block's own Jacobian, never mixed with the skip.
    """
    n = cfg["report_batch"]
    rows = block_report(model, x[:n], y[:n], probes=cfg["report_probes"], iterations=cfg["report_iterations"],
                        seed=seed)
    keep = ("name", "kind", "grad_norm", "on_gradient", "rms", "top", "chain_grad_norm", "skip_grad_norm")
    return [{k: row[k] for k in keep} for row in rows]


def run_variant(ctx: RunContext) -> dict:
    load_before = os.getloadavg()[0]
    md.manual_seed(ctx.seed)
    data, cfg = ctx.data, ctx.config
    model = build(ctx.variant, len(data.train.classes), cfg["size"], cfg["bn_momentum"]).to(ctx.device)  # before the probe
    train_loader, _, test_loader = data.loaders(cfg["batch_size"], ctx.seed, ctx.device)
    # The chain rule at initialisation and after training, on the same training batch.
    x, y = next(iter(train_loader))
    at_init = chain_rule(model, x, y)
    report = ctx.seed == ctx.config.get("report_seed", 0)  # the block tables: one seed per network
    blocks_at_init = block_table(model, x, y, cfg, ctx.seed) if report else None
    run = train_classifier(
        model, data, epochs=cfg["epochs"], batch_size=cfg["batch_size"], seed=ctx.seed, optimizer=cfg["optimizer"],
        lr=cfg["lr"], momentum=cfg["momentum"], schedule=cfg["schedule"], device=ctx.device,
        checkpoint_dir=ctx.checkpoint_dir, resume=ctx.resume, progress=cfg["progress"],
        callbacks=[EvaluateEachEpoch(test_loader)],
    )
    connection, depth, kernels = VARIANTS[ctx.variant]
    run.update(connection=connection, depth=depth, kernels=kernels, head_features=model.head_features,
               end_train_accuracy=run["history"][-1]["train_acc"], chain_rule_at_init=at_init,
               chain_rule_trained=chain_rule(model, x, y), image_size=cfg["size"])
    if report:
        run["blocks_at_init"] = blocks_at_init
        run["blocks_trained"] = block_table(model, x, y, cfg, ctx.seed)
    run["load_average"] = [load_before, os.getloadavg()[0]]
    flow = run["gradient_flow"][-1] if run["gradient_flow"] else {}
    run["first_over_last_grad"] = first_last_ratio(flow)
    print(f"  {ctx.variant}: end train accuracy {run['end_train_accuracy']:.1%}, test accuracy "
          f"{run['test_accuracy']:.1%}, ||dL/dh|| at conv1 / at logits (init) "
          f"{at_init['grad_norms'][1] / at_init['grad_norms'][-1]:.2g}, conv layers silent (all outputs 0) "
          f"after training: {silent_convs(run['chain_rule_trained'])} of {depth}")
    return run


def _pct(value) -> float | None:
    return None if value is None else round(100 * value, 1)


def _stats(values: list[float]) -> dict:
    """Mean, sample standard deviation (ddof 1; 0 for one value) and count."""
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": int(len(a))}


def compare(a: dict, b: dict) -> dict:
    """a - b in mean test accuracy, its standard error over seeds and what it says.

    ``verdict``: ``"a > b"`` or ``"b > a"`` when the difference is more than twice its
    standard error sqrt(s_a^2/n_a + s_b^2/n_b) (Welch's, roughly 95% with many seeds; with
    three seeds a rough screen), else ``"within noise"``.
    """
    diff = a["mean"] - b["mean"]
    se = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    verdict = "within noise" if abs(diff) <= 2 * se or a["n"] < 2 or b["n"] < 2 else ("a > b" if diff > 0 else "b > a")
    return {"difference": diff, "stderr": se, "verdict": verdict}


def aggregate(results: dict) -> None:
    """Per network: train/test accuracy over seeds; per (depth, kernels): the three wirings compared."""
    for entry in results["variants"].values():
        runs = list(entry["runs"].values())
        entry["test"] = _stats([r["test_accuracy"] for r in runs])
        entry["train"] = _stats([r["end_train_accuracy"] for r in runs])
        entry["gap"] = _stats([r["end_train_accuracy"] - r["test_accuracy"] for r in runs])
    comparisons = []
    for name, entry in results["variants"].items():
        connection, depth, kernels = VARIANTS[name]
        if connection != "concat":
            continue
        others = {c: results["variants"].get(f"{c}_{d}x{kernels}")
                  for c, d in (("sum", depth), ("baseline", 99 if depth == 120 else depth))}
        pairs = [("concat", "sum"), ("sum", "baseline"), ("concat", "baseline")]
        found = {"concat": entry, **others}
        for a, b in pairs:
            if found.get(a) and found.get(b):
                comparisons.append({"depth": depth, "kernels": kernels, "a": a, "b": b,
                                    "a_depth": grid_depth(a, depth), "b_depth": grid_depth(b, depth),
                                    **compare(found[a]["test"], found[b]["test"])})
    results["comparisons"] = comparisons


def grid_depth(connection: str, depth: int) -> int:
    """The depth of a wiring's network in the grid row of ``depth``: the baseline's deepest has 99 layers, not 120."""
    return 99 if (connection, depth) == ("baseline", 120) else depth


def _pm(stats: dict | None, scale: float = 100.0) -> str:
    if not stats:
        return ""
    return f"{scale * stats['mean']:.1f} ± {scale * stats['std']:.1f}" if stats["n"] > 1 else f"{scale * stats['mean']:.1f}"


def _paper_pct(name: str, i: int) -> str:
    return f"{100 * PAPER[name][i]:.1f}" if name in PAPER else "–"


def tables(results: dict) -> dict[str, str]:
    """Markdown tables for the page: the grid beside Table 1, the wirings compared, the block tables."""
    variants = results["variants"]
    rows = []
    for name, entry in variants.items():
        connection, depth, kernels = VARIANTS[name]
        rows.append({"network": CONNECTION_NAMES[connection], "layers": depth, "kernels": kernels,
                     "seeds": entry["test"]["n"], "train %": _pm(entry["train"]), "test %": _pm(entry["test"]),
                     "train − test": _pm(entry["gap"]), "Gil train %": _paper_pct(name, 0),
                     "Gil test %": _paper_pct(name, 1)})
    out = {"grid": markdown_table(rows, list(rows[0]))} if rows else {}
    verdicts = {"a > b": "first higher", "b > a": "second higher", "within noise": "within noise"}
    comp = [{"layers, kernels": f"{c['a_depth']}/{c['b_depth']} x {c['kernels']}",
             "comparison": f"{CONNECTION_NAMES[c['a']]} − {CONNECTION_NAMES[c['b']]}",
             "test difference (points)": f"{100 * c['difference']:+.1f}", "± s.e.": f"{100 * c['stderr']:.1f}",
             "verdict (2 s.e.)": verdicts[c["verdict"]]} for c in results.get("comparisons", [])]
    if comp:
        out["comparisons"] = markdown_table(comp, list(comp[0]))
    for name in ("baseline_69x3", "concat_69x3", "sum_69x3"):
        run = variants.get(name, {}).get("runs", {}).get("0", {})
        for when in ("at_init", "trained"):
            rows_b = run.get(f"blocks_{when}")
            if rows_b:
                out[f"blocks_{name}_{when}"] = block_markdown(rows_b)
    return out


def block_markdown(rows: list[dict], every: int = 8) -> str:
    """The conv layers' rows (every ``every``-th one, and the first and last), the BN rows and the head's."""
    convs = [i for i, r in enumerate(rows) if r["kind"] == "ConvReLU"]
    shown = set(convs[::every]) | {convs[0], convs[-1]} if convs else set()
    shown |= {i for i, r in enumerate(rows) if r["kind"] in ("BatchNorm2d", "Linear")}
    table = []
    for i in sorted(shown):
        r = rows[i]
        label = f"conv{convs.index(i) + 1}" if i in convs else r["name"]
        table.append({"block": label, "kind": r["kind"], "‖dL/dh‖": _g(r["grad_norm"]),
                      "on gradient": _g(r["on_gradient"]), "rms": _g(r["rms"]), "top": _g(r["top"]),
                      "‖via next layer‖": _g(r["chain_grad_norm"]), "‖via skip‖": _g(r["skip_grad_norm"])})
    return markdown_table(table, list(table[0]))


def _g(value) -> str:
    return "" if value is None else f"{value:.3g}"


def _mean(results: dict, name: str, key: str = "test") -> float | None:
    entry = results["variants"].get(name)
    return None if entry is None or key not in entry else entry[key]["mean"]


def _comparison(results: dict, depth: int, kernels: int, a: str, b: str) -> dict | None:
    for c in results.get("comparisons", []):
        if (c["depth"], c["kernels"], c["a"], c["b"]) == (depth, kernels, a, b):
            return c
    return None


def claims(results: dict) -> list[dict]:
    """Gil's headline claims, each with our number beside his and a verdict computed from the run."""
    chance = 1.0 / results["dataset"]["classes"]
    setup = (f"{results['dataset']['name']}, {results['dataset']['n_train']} train images at "
             f"{results['config']['size']}x{results['config']['size']}, {results['config']['epochs']} epochs, "
             f"{len(results.get('seeds', []))} seeds")
    out = []

    def add(claim, source, paper, ours, verdict, evidence):
        out.append({"claim": claim, "source": source, "paper": paper, "ours": ours, "verdict": verdict,
                    "evidence": evidence})

    def pct(name, key="test"):
        v = _mean(results, name, key)
        return "not run" if v is None else _pm(results["variants"][name][key]) + "%"

    base = _mean(results, "baseline_69x3")
    add("The 69-layer 3-kernel baseline does not train (chance)", "Gil, Table 1", "9.9% test (10.1% train)",
        pct("baseline_69x3"), "not run" if base is None else ("reproduced" if abs(base - chance) <= 0.03 else "differs"),
        f"mean test accuracy over seeds; chance {chance:.0%}; {setup}")
    for name, paper in (("concat_69x3", "62.5% test"), ("sum_69x3", "49.9% test"), ("concat_120x3", "66.6% test")):
        v = _mean(results, name)
        connection, depth, kernels = VARIANTS[name]
        add(f"The {depth}-layer {kernels}-kernel {CONNECTION_NAMES[connection].lower()} network trains",
            "Gil, Table 1", paper, pct(name),
            "not run" if v is None else ("reproduced" if v >= chance + 0.15 else "differs"),
            f"'trains' = mean test accuracy at least 15 points above chance; {setup}")
    for depth in (12, 69):
        for a, b, paper in (("concat", "sum", {12: "58.8 vs 51.1% test", 69: "62.5 vs 49.9% test"}[depth]),
                            ("sum", "baseline", {12: "51.1 vs 48.5% test", 69: "49.9 vs 9.9% test"}[depth])):
            c = _comparison(results, depth, 3, a, b)
            ours = "not run" if c is None else f"{100 * c['difference']:+.1f} ± {100 * c['stderr']:.1f} points"
            verdict = "not run" if c is None else ("reproduced" if c["verdict"] == "a > b" else "differs")
            add(f"{CONNECTION_NAMES[a]} beats {CONNECTION_NAMES[b].lower()} at {depth} layers, 3 kernels",
                "Gil, Results (Table 1)", paper, ours, verdict,
                "test-accuracy difference of the means, ± its standard error over seeds; reproduced only when "
                "more than 2 s.e. in Gil's direction" + ("" if c is None else f" (here: {c['verdict']})"))
    gaps = {k: results["variants"].get(f"concat_12x{k}", {}).get("gap") for k in (3, 16)}
    if all(gaps.values()):
        c = compare(gaps[16], gaps[3])
        # Overfitting is training accuracy above test accuracy: a gap that grows but stays negative is not it.
        grows = c["verdict"] == "a > b" and gaps[16]["mean"] > 0
        ours = (f"train − test {_pm(gaps[3])} (3 kernels) vs {_pm(gaps[16])} points (16 kernels): "
                f"{100 * c['difference']:+.1f} ± {100 * c['stderr']:.1f}")
    else:
        grows, c, ours = None, None, "not run"
    add("More kernels, more overfitting (concat, 12 layers)", "Gil, Results and Figure 4",
        "train − test 0.7 (3) vs 14.8 (16) points", ours,
        "not run" if grows is None else ("reproduced" if grows else "differs"),
        "end-of-training gap (the training accuracy is the last epoch's running mean with dropout on), mean ± sd "
        "over seeds; reproduced only when the 16-kernel gap is positive (training above test) and larger by more "
        "than 2 s.e." + ("" if c is None else f" (here: {c['verdict']}, 16-kernel gap "
                                             f"{'positive' if gaps[16]['mean'] > 0 else 'negative'})") + f"; {setup}")
    best16 = _mean(results, "concat_69x16")
    add("The 69-layer 16-kernel concatenation net is the best deep network (74.0% test)", "Gil, Table 1",
        "74.0% test", pct("concat_69x16"), "not run" if best16 is None else (
            "reproduced" if best16 >= max(_mean(results, n) or 0 for n in results["variants"]
                                          if VARIANTS[n][1] >= 69) - 1e-12 else "differs"),
        "highest mean test accuracy among the 69- to 120-layer networks of the run")
    add("The 64-kernel networks (best 12-layer test accuracy, strong overfitting)", "Gil, Table 1",
        "74.0% test (concat 12x64), 99.9% train", pct("concat_12x64"),
        "not run" if _mean(results, "concat_12x64") is None else "differs",
        "the quick preset stops at 16 kernels (the 64-kernel nets are the paper preset's)")
    add("Absolute accuracies after 200 epochs of CIFAR-10 at 32x32", "Gil, Table 1", "48.5-74.0% test",
        f"{results['preset']} preset: {setup}",
        "reproduced" if results["preset"] == "paper" and results["dataset"]["name"] == "cifar10" else "not run",
        "the quick preset's images, epochs and data differ; only the orderings and the chance-level failure compare")
    return out


def summarize(results: dict) -> str:
    rows = []
    for name, entry in results["variants"].items():
        run = next(iter(entry["runs"].values()))
        init = run["chain_rule_at_init"]["grad_norms"]
        paper = PAPER.get(name)
        rows.append({
            "network": CONNECTION_NAMES[run["connection"]], "layers": run["depth"], "kernels": run["kernels"],
            "train %": _pct(entry.get("train", {}).get("mean", run["end_train_accuracy"])), "test %": _pct(entry["test_accuracy"]),
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
    default_variants={"smoke": SMOKE_VARIANTS, "quick": QUICK_VARIANTS,
                      "paper": [v for v in VARIANTS if not v.startswith("sum2k")]},
    default_seeds={"quick": [0, 1, 2], "paper": [0, 1, 2]},
    # 36 independent small runs: two at a time on a 2-core CPU, one conv thread each (per-op
    # overhead, not the matrix products, bounds these narrow networks, so a second thread helps little).
    default_workers={"quick": 2},
    threads_per_run="auto",
    aggregate=aggregate,
    claims=claims,
    tables=tables,
    load_data=load_data,
    run_variant=run_variant,
    summarize=summarize,
    figures=figures,
).script(__name__)
