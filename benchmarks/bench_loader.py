"""Loader throughput: one epoch over 50,000 CIFAR-sized images with crop, flip and normalise.

    python benchmarks/bench_loader.py [--n 50000] [--batch-size 100] [--device cpu]

Prints the loader time of one epoch (the issue's target: under 2 s on a 2-core laptop-class
machine), the time per batch, and how much of it the background thread hides behind a
simulated training step (``--step-ms``, a sleep, which releases the GIL as NumPy's large
matrix products do).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minideep.data import DataLoader, Dataset  # noqa: E402
from minideep.data.transforms import cifar_train_transform  # noqa: E402


def epoch_time(loader: DataLoader, work_s: float = 0.0) -> float:
    """Seconds for one epoch; ``work_s`` of simulated training sleep per batch."""
    start = time.perf_counter()
    for images, labels in loader:
        if work_s:
            time.sleep(work_s)  # releases the GIL, as NumPy's matrix products do
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--step-ms", type=float, default=10.0, help="simulated training step per batch")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=args.n)
    data = Dataset(images, labels, [str(k) for k in range(10)], "random", "train", "benchmark")
    make = lambda prefetch: DataLoader(  # noqa: E731
        data, args.batch_size, shuffle=True, seed=0, transform=cifar_train_transform(),
        device=args.device, prefetch=prefetch,
    )
    epoch_time(make(0))  # warm-up: first-touch page faults, imports
    loader_s = min(epoch_time(make(0)) for _ in range(2))
    per_batch = loader_s / len(make(0))
    print(f"loader, one epoch of {args.n} images 3x32x32, batch {args.batch_size}, crop+flip+normalize, "
          f"device {args.device}: {loader_s:.2f} s ({per_batch * 1e3:.2f} ms/batch)")
    work = args.step_ms / 1e3
    start = time.perf_counter()
    for _ in range(len(make(0))):
        time.sleep(work)
    step_only = time.perf_counter() - start
    overlapped = epoch_time(make(2), work)
    print(f"with a simulated {work * 1e3:.1f} ms training step: {overlapped:.2f} s per epoch "
          f"vs {step_only:.2f} s of training alone -> loader hidden {100 * (1 - (overlapped - step_only) / loader_s):.0f}%")


if __name__ == "__main__":
    main()
