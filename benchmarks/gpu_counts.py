"""What one VGG38 training step would cost a GPU, counted on the CPU under the CuPy stand-in.

    python benchmarks/gpu_counts.py            # prints the table; --json FILE writes it too

No GPU is needed and none is used: the stand-in (``tests/fake_cupy``) is put in front of any
real CuPy for this process, and it counts

- kernel launches: array operations that produce a new device array (views launch nothing);
- host-device synchronisations: reads from the device (``.get()``, ``float()``, ``.item()``...),
  each of which makes the host wait for the GPU;
- uploads: host-to-device copies.

The step is the benchmarks' one (``benchmarks/run.py``): VGG38 (``minideep.models.vgg``, 5
blocks per stage, 32 channels, 100 classes), a batch of 100 images of 3x32x32, cross-entropy,
backward, Adam; the second step is counted (the first one allocates Adam's moments). Then the
same step inside ``fit``'s loop (its metrics add a few kernels; their read-back comes every
``GPU_FETCH_EVERY`` steps). These are counts, not times: a GPU measures the time.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fake_cupy"))
import fakegpu  # noqa: E402

fakegpu.install()  # before minideep: its backend then finds the stand-in as ``cupy``

import numpy as np  # noqa: E402

import minideep as md  # noqa: E402
import minideep.nn.functional as F  # noqa: E402
from minideep import optim, train  # noqa: E402
from minideep.backend import to_device  # noqa: E402
from minideep.models.vgg import vgg38  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_step_time import im2col_everywhere  # noqa: E402

PRODUCTS = ("matmul", "dot", "tensordot", "einsum", "inner")


def _count(run: Callable[[], Any]) -> dict[str, Any]:
    fakegpu.by_name.clear()
    with fakegpu.counting() as c:
        run()
    products = sum(fakegpu.by_name[name] for name in PRODUCTS)
    return {**c, "matrix_products": products, "top": dict(fakegpu.by_name.most_common(8))}


def vgg38_step(batch: int = 100) -> tuple[Callable[[], None], Callable[[], None]]:
    """(one bare training step, one step of fit's loop body with its metrics), both on the stand-in's GPU."""
    md.manual_seed(0)
    model = vgg38().to("gpu")
    opt = optim.Adam(model.named_parameters())
    rng = np.random.default_rng(0)
    x = md.tensor(to_device(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32), "gpu"))
    y = md.Tensor(to_device(rng.integers(0, 100, batch), "gpu"))  # int64 labels, as the DataLoader gives them

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    metrics = train._BatchMetrics("gpu")

    def fit_step() -> None:  # what fit's loop adds around the same step (see minideep/train.py)
        outputs = model(x)
        loss = F.cross_entropy(outputs, y)
        metrics.add(len(metrics.pending), loss.data, train._hit_rate(outputs, y))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step, fit_step


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None, help="also write the counts here")
    parser.add_argument("--markdown", type=Path, default=None, help="also write them as a Markdown table here")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"counted_under": "the CuPy stand-in tests/fake_cupy (CPU); no GPU timing",
                               "model": "VGG38 (5 blocks per stage, 32 channels, 100 classes)",
                               "batch": [args.batch, 3, 32, 32], "fetch_every": train.GPU_FETCH_EVERY, "rows": {}}
    for label, setup in (("as dispatched", None), ("conv as im2col", im2col_everywhere)):
        undo = setup() if setup else None
        if setup and undo is None:
            continue  # the convolution op no longer has the two paths
        try:
            step, fit_step = vgg38_step(args.batch)
            step()  # the first step allocates Adam's moments
            results["rows"][f"training step, {label}"] = _count(step)
            fit_step()
            results["rows"][f"fit loop step, {label}"] = _count(fit_step)
        finally:
            if undo:
                undo()

    print(f"VGG38 training step, batch {args.batch}x3x32x32, Adam; counted under the CuPy stand-in (no GPU):")
    print(f"{'':40s} {'kernels':>8s} {'products':>8s} {'syncs':>6s} {'uploads':>7s}")
    for label, row in results["rows"].items():
        print(f"{label:40s} {row['launches']:8d} {row['matrix_products']:8d} {row['syncs']:6d} {row['uploads']:7d}")
    print(f"fit also reads its metrics back once every {train.GPU_FETCH_EVERY} steps (and at each epoch's end).")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.markdown:  # the table the benchmarks page includes
        lines = ["| VGG38 step, counted under the stand-in | kernel launches | of which matrix products | "
                 "host-device synchronisations | uploads |", "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {label} | {row['launches']:,} | {row['matrix_products']:,} | {row['syncs']} | {row['uploads']} |"
                  for label, row in results["rows"].items()]
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(lines) + "\n")
    return results


if __name__ == "__main__":
    main()
