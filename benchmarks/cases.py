"""The op micro-benchmarks: forward + backward of one op, in minideep and in PyTorch.

Each case builds the same inputs for both frameworks and returns two closures that run the
op forward, then backward with a fixed upstream gradient, and drop the gradients again, plus
the largest difference between the two frameworks' results (a fast op that is wrong should
not win a benchmark).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

import minideep as md
import minideep.nn.functional as F
from minideep.backend import as_numpy, to_device

# The VGG38 shapes: batch 100, 32 channels at the three resolutions, and the first layer 3 -> 32.
SHAPES = [(100, 32, 32, 32), (100, 32, 16, 16), (100, 32, 8, 8)]
FIRST_LAYER = (100, 3, 32, 32)


def _arrays(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def op_case(op: str, shape: tuple[int, ...], device: str = "cpu") -> tuple[Callable, Callable, Callable[[], float]]:
    """(minideep closure, torch closure, max |difference| of outputs and input gradients)."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as TF  # noqa: PLC0415

    dev = "cuda" if device == "gpu" else "cpu"
    n, c, h, w = shape
    x_np = _arrays(shape, 0)
    x_needs_grad = c != 3  # the first layer's input is the image: no gradient wanted
    weights: list[np.ndarray] = []
    if op == "conv2d":
        weights = [_arrays((32, c, 3, 3), 1) / np.float32(np.sqrt(9 * c))]
    elif op == "batch_norm":
        weights = [1 + 0.1 * _arrays((c,), 1), 0.1 * _arrays((c,), 2)]

    def md_op(x: md.Tensor, ws: list[md.Tensor]) -> md.Tensor:
        if op == "conv2d":
            return F.conv2d(x, ws[0], padding=1)
        if op == "max_pool2d":
            return F.max_pool2d(x, 2)
        if op == "avg_pool2d":
            return F.avg_pool2d(x, 2)
        mean, var = md_stats
        return F.batch_norm(x, mean, var, ws[0], ws[1], training=True)

    def torch_op(x: Any, ws: list[Any]) -> Any:
        if op == "conv2d":
            return TF.conv2d(x, ws[0], padding=1)
        if op == "max_pool2d":
            return TF.max_pool2d(x, 2)
        if op == "avg_pool2d":
            return TF.avg_pool2d(x, 2)
        return TF.batch_norm(x, torch.zeros(c, device=dev), torch.ones(c, device=dev), ws[0], ws[1], training=True)

    md_stats = (to_device(np.zeros(c, np.float32), device), to_device(np.ones(c, np.float32), device))
    md_x = md.tensor(to_device(x_np, device), requires_grad=x_needs_grad)
    md_ws = [md.tensor(to_device(w, device), requires_grad=True) for w in weights]
    t_x = torch.from_numpy(x_np).to(dev).requires_grad_(x_needs_grad)
    t_ws = [torch.from_numpy(w).to(dev).requires_grad_() for w in weights]
    out_shape = tuple(torch_op(t_x.detach(), [w.detach() for w in t_ws]).shape)
    g_np = _arrays(out_shape, 3)
    md_g, t_g = to_device(g_np, device), torch.from_numpy(g_np).to(dev)
    leaves_md, leaves_t = [md_x, *md_ws], [t_x, *t_ws]

    def run_md() -> Any:
        y = md_op(md_x, md_ws)
        y.backward(md_g)
        for t in leaves_md:
            t.grad = None
        return y

    def run_torch() -> Any:
        y = torch_op(t_x, t_ws)
        y.backward(t_g)
        for t in leaves_t:
            t.grad = None
        return y

    def max_diff() -> float:
        y_md, y_t = md_op(md_x, md_ws), torch_op(t_x, t_ws)
        y_md.backward(md_g)
        y_t.backward(t_g)
        diffs = [np.abs(as_numpy(y_md.data) - y_t.detach().cpu().numpy()).max()]
        for a, b in zip(leaves_md, leaves_t):
            if a.requires_grad:
                diffs.append(np.abs(as_numpy(a.grad) - b.grad.cpu().numpy()).max())
                a.grad, b.grad = None, None
        return float(max(diffs))

    return run_md, run_torch, max_diff
