"""Where the time of one training step goes: wall time per op and direction, beside the FLOP floor.

    python benchmarks/profile_step.py                 # VGG38, batch 100, 2 threads, 5 steps
    python benchmarks/profile_step.py --blocks 0      # VGG08
    python benchmarks/profile_step.py --threads 1 --out benchmarks/results

Every ``Function`` subclass's ``forward`` and ``backward`` is wrapped with a wall-clock timer
(class by class, so the engine itself is untouched); inside the convolution's backward the
input-gradient and weight-gradient products are timed apart. The optimizer's ``step`` is
timed as a whole. What is left of the step's wall time is the engine's own Python: building
the graph, the topological sort, summing gradients, hooks. The FLOP floor counts the
multiply-adds of every convolution and linear layer (forward, input gradient, weight
gradient) and divides by the machine's measured single-precision matrix-product rate.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minideep as md  # noqa: E402
from minideep import blas_env  # noqa: E402
from minideep.autograd import Function  # noqa: E402
from minideep.ops.fast import shifted_conv  # noqa: E402
from harness import machine_info  # noqa: E402
from models import md_vgg_step  # noqa: E402

TIMES: dict[str, float] = defaultdict(float)

# Which row of the breakdown each Function class belongs to.
GROUPS = {  # matched against the lower-cased class name, first match wins
    "convolution": "conv",
    "batchnorm": "batch norm",
    "relu": "activations",
    "sigmoid": "activations",
    "tanh": "activations",
    "pool": "pooling",
    "linear": "linear + loss",
    "matmul": "linear + loss",
    "crossentropy": "linear + loss",
    "softmax": "linear + loss",
}


def group_of(name: str) -> str:
    lowered = name.lower()
    for key, group in GROUPS.items():
        if key in lowered:
            return group
    return "other ops (additions, reshapes, sums)"


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def _timed(label: str, fn: Callable) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[label] += time.perf_counter() - start

    wrapper.__wrapped__ = fn
    return wrapper


def instrument() -> None:
    """Wrap every op's forward/backward, the conv backward's two products, and nothing else."""
    for cls in _subclasses(Function):
        for direction in ("forward", "backward"):
            if direction in cls.__dict__:
                setattr(cls, direction, _timed(f"{group_of(cls.__name__)}|{direction}|{cls.__name__}", cls.__dict__[direction]))
    # Inside ShiftedConvolutionBackward.backward: the input gradient is a shifted_matmul, the
    # weight gradient a shifted_weight_grad (the forward's own shifted_matmul is counted under
    # forward already, so only calls made during backward are split out).
    inner = shifted_conv.shifted_matmul
    in_backward = {"on": False}

    def matmul(*args: Any, **kwargs: Any) -> Any:
        if not in_backward["on"]:
            return inner(*args, **kwargs)
        return _timed("conv|backward-input products", inner)(*args, **kwargs)

    shifted_conv.shifted_matmul = matmul
    shifted_conv.shifted_weight_grad = _timed("conv|backward-weight products", shifted_conv.shifted_weight_grad)
    backward = shifted_conv.ShiftedConvolutionBackward.backward

    def conv_backward(self: Any, grad: Any) -> Any:
        in_backward["on"] = True
        try:
            return backward(self, grad)
        finally:
            in_backward["on"] = False

    shifted_conv.ShiftedConvolutionBackward.backward = conv_backward


def gemm_rate(threads: int, n: int = 1024, repeats: int = 5) -> float:
    """Measured float32 matrix-product rate in GFLOP/s (the best of ``repeats``)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    best = float("inf")
    with threadpool_limits(threads, user_api="blas"):
        a @ a
        for _ in range(repeats):
            start = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def vgg_flops(blocks: int, batch: int = 100, width: int = 32, size: int = 32, classes: int = 100) -> float:
    """Floating-point operations of one training step's convolutions and linear layer.

    A 3x3 convolution at H x W with C_in -> C_out does 2*9*C_in*C_out*H*W*N FLOPs forward and
    the same again for each of the input and weight gradients (the entry layer has no input gradient).
    """
    flops, side = 0.0, size
    forward = lambda c_in, c_out, s: 2 * 9 * c_in * c_out * s * s * batch  # noqa: E731
    flops += 2 * forward(3, width, side)  # entry conv: forward + weight gradient
    for _ in range(3):
        convs = 2 * blocks + 1  # processing convs and the reduction's first conv at this size
        flops += 3 * convs * forward(width, width, side)
        side //= 2
        flops += 3 * forward(width, width, side)  # the reduction's second conv, after the pool
    flops += 3 * 2 * width * classes * batch
    return flops


def profile(blocks: int, threads: int, steps: int) -> dict[str, Any]:
    md.set_num_threads(threads)
    step = md_vgg_step(blocks)
    from minideep.optim.adam import Adam  # noqa: PLC0415

    Adam.step = _timed("optimizer|step|Adam", Adam.step)
    for _ in range(2):
        step()  # warm-up: pools, caches, first allocations
    instrument()
    TIMES.clear()
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    for _ in range(steps):
        step()
    wall = (time.perf_counter() - start) / steps
    load_after = os.getloadavg()[0]
    rows: dict[str, float] = defaultdict(float)
    per_class: dict[str, float] = {}
    conv_backward_total = 0.0
    for label, seconds in TIMES.items():
        group, direction, name = label.split("|") if label.count("|") == 2 else (*label.split("|"), "")
        seconds /= steps
        if group == "conv" and direction.startswith("backward-"):
            rows[f"conv {direction}"] += seconds
            continue
        if group == "conv" and direction == "backward":
            conv_backward_total += seconds
            continue
        rows[f"{group} {direction}" if group not in ("optimizer",) else "optimizer (Adam)"] += seconds
        per_class[f"{name}.{direction}"] = seconds
    rows["conv backward, the rest (padding, layout copies, bias)"] = conv_backward_total - rows["conv backward-input products"] - rows["conv backward-weight products"]
    rows["engine Python (graph, sort, gradient sums)"] = wall - sum(rows.values())
    rate = gemm_rate(threads)
    flops = vgg_flops(blocks)
    return {
        "network": f"VGG{8 + 6 * blocks:02d}",
        "blocks": blocks,
        "threads": threads,
        "steps": steps,
        "step_s": wall,
        "rows_s": dict(rows),
        "per_class_s": per_class,
        "gflop": flops / 1e9,
        "gemm_gflops": rate,
        "floor_s": flops / (rate * 1e9),
        "load_before": load_before,
        "load_after": load_after,
        "machine": machine_info("cpu"),
        "openblas_pins_dropped": blas_env.dropped(),
        "openblas_pins": blas_env.pinned(),
        "openblas_kernel": blas_env.openblas_kernel(),
    }


def markdown(report: dict[str, Any]) -> str:
    wall = report["step_s"]
    lines = [
        f"## Where the time of one {report['network']} training step goes ({report['threads']} thread{'s' if report['threads'] > 1 else ''}"
        f"{', OpenBLAS pinned to ' + str(report['openblas_kernel']) if report['openblas_pins'] else ''})",
        "",
        f"Batch 100, 3x32x32, 32 filters, 100 classes, Adam; mean of {report['steps']} steps, "
        f"load average {report['load_before']:.2f} before and {report['load_after']:.2f} after.",
        "",
        "| part | ms per step | share |",
        "| --- | ---: | ---: |",
    ]
    for name, seconds in sorted(report["rows_s"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {seconds * 1e3:.1f} | {seconds / wall:.0%} |")
    lines += [
        f"| **whole step** | **{wall * 1e3:.1f}** | 100% |",
        "",
        f"FLOP floor: the convolutions and the linear layer do {report['gflop']:.1f} GFLOP per step; "
        f"at this machine's measured float32 matrix-product rate ({report['gemm_gflops']:.0f} GFLOP/s, "
        f"1024x1024 products, {report['threads']} thread{'s' if report['threads'] > 1 else ''}) that is "
        f"{report['floor_s'] * 1e3:.0f} ms, {report['floor_s'] / wall:.0%} of the measured step.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=5, help="processing blocks per stage: 5 is VGG38, 0 is VGG08")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--keep-openblas-env", action="store_true", help="do not restart without OPENBLAS_CORETYPE/L2_SIZE")
    parser.add_argument("--out", type=Path, default=None, help="folder for profile-<network>-<threads>t.json and .md")
    args = parser.parse_args(argv)
    if argv is None and not args.keep_openblas_env:
        blas_env.restart_without_pins("profile_step")
    report = profile(args.blocks, args.threads, args.steps)
    text = markdown(report)
    print(text)
    if args.out is not None:
        from minideep.results import write_atomic, write_json_atomic  # noqa: PLC0415

        stem = f"profile-{report['network'].lower()}-{args.threads}thread"
        if blas_env.pinned():  # kept with --keep-openblas-env: a file of its own, never the headline
            stem += f"-{(blas_env.openblas_kernel() or 'pinned').lower()}-pinned"
        write_json_atomic(args.out / f"{stem}.json", report)
        write_atomic(args.out / f"{stem}.md", lambda f: f.write(text.encode()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
