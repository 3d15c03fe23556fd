"""minideep's VGG08 and VGG38 training steps timed on the GPU (CuPy), PyTorch not needed.

    python3 benchmarks/gpu_step_time.py --json OUT/gpu_step_time.json [--rounds 20]

One step: forward, cross-entropy, backward and Adam, batch 100 of 3x32x32, 100 classes; the
device is synchronised before and after each timed step, so a step's time is the GPU's and
the host's together. The first steps (kernel compilation, Adam's moments, CuPy's memory pool)
are a warm-up and not timed. Each model runs twice: with the convolution the op dispatch
chooses, and with every convolution forced onto im2col + one matrix product per direction.
``benchmarks/gpu_check.sh`` runs it; ``benchmarks/run.py --device gpu`` is the comparison with
PyTorch CUDA where PyTorch has CUDA.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import minideep as md  # noqa: E402
import minideep.nn.functional as F  # noqa: E402
from minideep import optim  # noqa: E402
from minideep.backend import check_device, get_array_module, to_device  # noqa: E402
from minideep.models.vgg import vgg08, vgg38  # noqa: E402
from minideep.ops import conv as conv_ops  # noqa: E402


def im2col_everywhere() -> Callable[[], None] | None:
    """Make stride-1 convolutions take the im2col path (one product per direction); returns the undo.

    None when the convolution op has no such two paths any more (then the variant is skipped).
    """
    cls = getattr(conv_ops, "Conv2d", None)  # gone since the dispatch gives CuPy the plain im2col op itself
    names = ("_forward_shifted", "_backward_shifted", "_forward_im2col", "_backward_im2col")
    if cls is None or not all(hasattr(cls, name) for name in names):
        return None
    saved = {name: getattr(cls, name) for name in names[:2]}
    cls._forward_shifted = cls._forward_im2col  # type: ignore[method-assign]
    cls._backward_shifted = cls._backward_im2col  # type: ignore[method-assign]

    def undo() -> None:
        for name, method in saved.items():
            setattr(cls, name, method)
    return undo


def training_step(build: Callable[..., Any], batch: int = 100) -> tuple[Callable[[], None], Callable[[], None]]:
    """(one training step on the GPU, a device synchronisation)."""
    md.manual_seed(0)
    model = build().to("gpu")
    opt = optim.Adam(model.named_parameters())
    rng = np.random.default_rng(0)
    x = md.tensor(to_device(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32), "gpu"))
    y = md.Tensor(to_device(rng.integers(0, 100, batch), "gpu"))
    xp = get_array_module(x.data)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step, xp.cuda.Device().synchronize


def time_step(step: Callable[[], None], sync: Callable[[], None], rounds: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(rounds):
        sync()
        started = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - started)
    return {"median_s": statistics.median(times), "min_s": min(times), "rounds": rounds}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    check_device("gpu")
    import cupy  # noqa: PLC0415 - present: check_device passed

    device = cupy.cuda.runtime.getDeviceProperties(0)["name"] if hasattr(cupy.cuda.runtime, "getDeviceProperties") else "?"
    results: dict[str, Any] = {"cupy": cupy.__version__, "gpu": device.decode() if isinstance(device, bytes) else device,
                               "batch": [args.batch, 3, 32, 32], "rows": {}}
    for label, build in (("VGG08", vgg08), ("VGG38", vgg38)):
        for variant, setup in (("as dispatched", None), ("conv as im2col", im2col_everywhere)):
            undo = setup() if setup else None
            if setup and undo is None:
                continue
            try:
                row = time_step(*training_step(build, args.batch), rounds=args.rounds)
            finally:
                if undo:
                    undo()
            row["cifar100_epoch_estimate_s"] = 50000 / args.batch * row["median_s"]
            results["rows"][f"{label} training step, {variant}"] = row
            print(f"{label} training step ({variant}): median {row['median_s'] * 1e3:.1f} ms, "
                  f"min {row['min_s'] * 1e3:.1f} ms; a CIFAR-100 epoch about {row['cifar100_epoch_estimate_s']:.0f} s",
                  flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
