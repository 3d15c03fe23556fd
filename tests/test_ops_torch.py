"""PyTorch as the oracle: every op agrees with torch forward and backward in float64.

Each case runs the same inputs through minideep and through PyTorch, sends the same random
upstream gradient back through both, and compares the outputs and every input gradient:
|ours - torch| <= 1e-7 |torch| + 1e-10 max|torch| elementwise (a relative error under 1e-7;
the small absolute term only forgives round-off on elements that cancel to ~0).
Skipped cleanly where torch is not installed.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F
from minideep.backend import as_numpy, to_device

torch = pytest.importorskip("torch")
TF = torch.nn.functional

RTOL = 1e-7


def assert_close(ours: Any, theirs: Any, what: str) -> None:
    ours, theirs = as_numpy(ours), theirs.detach().numpy()
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    scale = float(np.abs(theirs).max()) if theirs.size else 0.0
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=1e-10 * scale, err_msg=what)


@dataclass
class Case:
    """One op call: ``ours(*tensors, **constants)`` vs ``theirs(*torch_tensors, **torch_constants)``."""

    name: str
    shapes: list[tuple[int, ...]]
    ours: Callable[..., Any]
    theirs: Callable[..., Any]
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    positive: bool = False  # inputs in [0.5, 1.5) (log, sqrt, fractional powers, division)

    def __str__(self) -> str:
        return self.name


def run_case(case: Case, device: str) -> None:
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    arrays = [0.5 + rng.random(s) if case.positive else rng.standard_normal(s) for s in case.shapes]
    ours_in = [md.tensor(to_device(a, device), requires_grad=True) for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    ours_const = {k: to_device(v, device) for k, v in case.constants.items()}
    theirs_const = {k: torch.from_numpy(v) for k, v in case.constants.items()}

    y = case.ours(*ours_in, **ours_const)
    t = case.theirs(*theirs_in, **theirs_const)
    assert_close(y.data, t, f"{case.name}: forward")

    v = rng.standard_normal(t.shape)
    y.backward(to_device(v, device))
    t.backward(torch.from_numpy(v))
    for i, (a, b) in enumerate(zip(ours_in, theirs_in)):
        if b.grad is None:  # torch says the output does not depend on this input
            assert a.grad is None or not np.any(as_numpy(a.grad)), f"{case.name}: gradient of input {i}"
        else:
            assert a.grad is not None, f"{case.name}: no gradient for input {i}"
            assert_close(a.grad, b.grad, f"{case.name}: gradient of input {i}")


def _dims(axis, ndim):
    """PyTorch's dim for NumPy's axis (None means every axis)."""
    return tuple(range(ndim)) if axis is None else axis


# --------------------------------------------------------------------------- arithmetic and elementwise

CASES: list[Case] = []
for sa, sb in [((2, 3), (2, 3)), ((2, 3, 4), (3, 1)), ((4,), (2, 1, 4)), ((2, 1), ())]:
    CASES += [
        Case(f"add {sa} {sb}", [sa, sb], lambda a, b: a + b, lambda a, b: a + b),
        Case(f"sub {sa} {sb}", [sa, sb], lambda a, b: a - b, lambda a, b: a - b),
        Case(f"mul {sa} {sb}", [sa, sb], lambda a, b: a * b, lambda a, b: a * b),
        Case(f"div {sa} {sb}", [sa, sb], lambda a, b: a / b, lambda a, b: a / b, positive=True),
        Case(f"maximum {sa} {sb}", [sa, sb], md.maximum, torch.maximum),
    ]
CASES += [
    Case("scalars", [(3, 2)], lambda x: (2 - x) * 3 + 1 / (x + 4) - x / 2, lambda x: (2 - x) * 3 + 1 / (x + 4) - x / 2, positive=True),
    Case("neg", [(3, 2)], lambda x: -x, lambda x: -x),
]
for p in [2, 3, 0.5, -1.5, 0]:
    CASES.append(Case(f"pow {p}", [(2, 3)], lambda x, p=p: x**p, lambda x, p=p: x**p, positive=True))
for sa, sb in [((3, 4), (4, 2)), ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2))]:
    CASES.append(Case(f"matmul {sa} {sb}", [sa, sb], lambda a, b: a @ b, lambda a, b: a @ b))
for name, positive in [("exp", False), ("log", True), ("sqrt", True), ("tanh", False), ("abs", False)]:
    CASES.append(Case(name, [(3, 4)], getattr(md, name), getattr(torch, name), positive=positive))
CASES += [
    Case("clip", [(4, 5)], lambda x: md.clip(x, -0.5, 0.7), lambda x: torch.clamp(x, -0.5, 0.7)),
    Case("clip lo", [(4, 5)], lambda x: md.clip(x, lo=0.1), lambda x: torch.clamp(x, min=0.1)),
    Case(
        "where", [(2, 3), (3,)], lambda a, b, c: md.where(c, a, b), lambda a, b, c: torch.where(c, a, b),
        constants={"c": np.random.default_rng(1).random((2, 3)) > 0.5},
    ),
]

# --------------------------------------------------------------------------- reductions

for axis in [None, 0, -1, (0, 2)]:
    for keepdims in [False, True]:
        tag = f"axis={axis} keepdims={keepdims}"
        CASES += [
            Case(f"sum {tag}", [(2, 3, 4)], lambda x, a=axis, k=keepdims: x.sum(axis=a, keepdims=k),
                 lambda x, a=axis, k=keepdims: x.sum(dim=_dims(a, 3), keepdim=k)),
            Case(f"mean {tag}", [(2, 3, 4)], lambda x, a=axis, k=keepdims: x.mean(axis=a, keepdims=k),
                 lambda x, a=axis, k=keepdims: x.mean(dim=_dims(a, 3), keepdim=k)),
            Case(f"max {tag}", [(2, 3, 4)], lambda x, a=axis, k=keepdims: x.max(axis=a, keepdims=k),
                 lambda x, a=axis, k=keepdims: torch.amax(x, dim=_dims(a, 3), keepdim=k)),
            Case(f"var {tag}", [(2, 3, 4)], lambda x, a=axis, k=keepdims: x.var(axis=a, keepdims=k),
                 lambda x, a=axis, k=keepdims: torch.var(x, dim=_dims(a, 3), correction=0, keepdim=k)),
        ]
CASES.append(Case("var ddof=1", [(5, 3)], lambda x: x.var(axis=0, ddof=1), lambda x: torch.var(x, dim=0, correction=1)))

# --------------------------------------------------------------------------- shapes

CASES += [
    Case("reshape", [(2, 3, 4)], lambda x: x.reshape(4, -1), lambda x: x.reshape(4, -1)),
    Case("transpose", [(2, 3, 4)], lambda x: x.transpose(2, 0, 1), lambda x: x.permute(2, 0, 1)),
    Case("T", [(2, 3, 4)], lambda x: x.T, lambda x: x.permute(2, 1, 0)),
    Case("flatten", [(2, 3, 2, 2)], lambda x: x.flatten(), lambda x: torch.flatten(x)),
    Case("flatten 1", [(2, 3, 2, 2)], lambda x: x.flatten(1), lambda x: torch.flatten(x, start_dim=1)),
    Case("flatten 1..2", [(2, 3, 2, 2)], lambda x: x.flatten(1, 2), lambda x: torch.flatten(x, 1, 2)),
    Case("flatten 0", [(2, 3, 2)], lambda x: x.flatten(0), lambda x: torch.flatten(x, start_dim=0)),
    Case("getitem int", [(3, 4)], lambda x: x[1], lambda x: x[1]),
    Case("getitem slices", [(5, 6)], lambda x: x[1:4, ::2], lambda x: x[1:4, ::2]),
    Case("getitem negative step", [(5, 6)], lambda x: x[::-1, 4:0:-2], lambda x: x.flip(0)[:, [4, 2]]),
    Case("getitem ellipsis", [(2, 3, 4)], lambda x: x[..., -1], lambda x: x[..., -1]),
    Case("getitem repeats", [(4, 3)], lambda x, i: x[i], lambda x, i: x[i], constants={"i": np.array([0, 3, 0, 0, 2])}),
    Case(
        "getitem two arrays", [(4, 3)], lambda x, i, j: x[i, j], lambda x, i, j: x[i, j],
        constants={"i": np.array([1, 1, 3]), "j": np.array([2, 2, 0])},
    ),
    Case("getitem mask", [(4, 3)], lambda x, m: x[m], lambda x, m: x[m], constants={"m": np.random.default_rng(2).random((4, 3)) > 0.4}),
    Case("getitem row mask", [(4, 3)], lambda x, m: x[m], lambda x, m: x[m], constants={"m": np.array([True, False, True, True])}),
    Case("cat", [(2, 3), (2, 1), (2, 2)], lambda *xs: md.cat(list(xs), axis=1), lambda *xs: torch.cat(xs, dim=1)),
    Case("cat 0", [(1, 3), (2, 3)], lambda *xs: md.cat(list(xs), axis=0), lambda *xs: torch.cat(xs, dim=0)),
    Case("stack", [(2, 3), (2, 3), (2, 3)], lambda *xs: md.stack(list(xs), axis=1), lambda *xs: torch.stack(xs, dim=1)),
    Case("stack -1", [(2, 3), (2, 3)], lambda *xs: md.stack(list(xs), axis=-1), lambda *xs: torch.stack(xs, dim=-1)),
    # torch's pad lists the last axis first.
    Case("pad", [(2, 3, 4)], lambda x: md.pad(x, [(0, 0), (1, 2), (3, 0)], value=0.5), lambda x: TF.pad(x, (3, 0, 1, 2), value=0.5)),
]

# --------------------------------------------------------------------------- activations and losses

for shape, axis in [((3, 5), -1), ((3, 5), 0), ((2, 3, 4), 1)]:
    CASES += [
        Case(f"softmax {shape} axis={axis}", [shape], lambda x, a=axis: F.softmax(x, axis=a), lambda x, a=axis: TF.softmax(x, dim=a)),
        Case(f"log_softmax {shape} axis={axis}", [shape], lambda x, a=axis: F.log_softmax(x, axis=a), lambda x, a=axis: TF.log_softmax(x, dim=a)),
    ]
CASES += [
    Case("relu", [(4, 5)], F.relu, TF.relu),
    Case("leaky_relu", [(4, 5)], F.leaky_relu, TF.leaky_relu),
    Case("leaky_relu 0.2", [(4, 5)], lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    Case("sigmoid", [(4, 5)], F.sigmoid, torch.sigmoid),
    Case("F.tanh", [(4, 5)], F.tanh, torch.tanh),
]
TARGET = np.array([2, 0, 4, 4, 1, 3])
for reduction in ["mean", "sum", "none"]:
    CASES += [
        Case(f"cross_entropy {reduction}", [(6, 5)], lambda x, t, r=reduction: F.cross_entropy(x, t, reduction=r),
             lambda x, t, r=reduction: TF.cross_entropy(x, t, reduction=r), constants={"t": TARGET}),
        Case(f"nll_loss {reduction}", [(6, 5)], lambda x, t, r=reduction: F.nll_loss(x, t, reduction=r),
             lambda x, t, r=reduction: TF.nll_loss(x, t, reduction=r), constants={"t": TARGET}),
        Case(f"mse_loss {reduction}", [(3, 4), (3, 4)], lambda a, b, r=reduction: F.mse_loss(a, b, reduction=r),
             lambda a, b, r=reduction: TF.mse_loss(a, b, reduction=r)),
    ]

# --------------------------------------------------------------------------- layers

for x_shape in [(4, 3), (2, 5, 3)]:
    CASES += [
        Case(f"linear {x_shape}", [x_shape, (2, 3), (2,)], F.linear, TF.linear),
        Case(f"linear {x_shape} no bias", [x_shape, (2, 3)], F.linear, TF.linear),
    ]
CONV = [
    ((2, 3, 6, 6), (4, 3, 3, 3), 1, 0),
    ((2, 3, 6, 6), (4, 3, 3, 3), 1, 1),
    ((1, 2, 7, 6), (3, 2, 3, 3), 2, 1),
    ((1, 2, 5, 6), (3, 2, 2, 3), (2, 1), (1, 0)),
    ((2, 2, 5, 5), (3, 2, 1, 1), 2, 0),
    ((1, 1, 8, 8), (2, 1, 5, 5), 3, 2),
]
for x_shape, w_shape, stride, padding in CONV:
    tag = f"conv2d {x_shape} {w_shape} s={stride} p={padding}"
    CASES += [
        Case(tag, [x_shape, w_shape, w_shape[:1]], lambda x, w, b, s=stride, p=padding: F.conv2d(x, w, b, stride=s, padding=p),
             lambda x, w, b, s=stride, p=padding: TF.conv2d(x, w, b, stride=s, padding=p)),
        Case(tag + " no bias", [x_shape, w_shape], lambda x, w, s=stride, p=padding: F.conv2d(x, w, stride=s, padding=p),
             lambda x, w, s=stride, p=padding: TF.conv2d(x, w, stride=s, padding=p)),
    ]
POOL = [((2, 2, 4, 4), 2, None, 0), ((1, 2, 5, 5), 3, 1, 0), ((2, 1, 6, 7), 3, 2, 1), ((1, 2, 5, 7), (2, 3), (1, 2), (1, 1))]
for x_shape, kernel, stride, padding in POOL:
    tag = f"{x_shape} k={kernel} s={stride} p={padding}"
    CASES += [
        Case(f"max_pool2d {tag}", [x_shape], lambda x, k=kernel, s=stride, p=padding: F.max_pool2d(x, k, s, p),
             lambda x, k=kernel, s=stride, p=padding: TF.max_pool2d(x, k, s, p)),
        Case(f"avg_pool2d {tag}", [x_shape], lambda x, k=kernel, s=stride, p=padding: F.avg_pool2d(x, k, s, p),
             lambda x, k=kernel, s=stride, p=padding: TF.avg_pool2d(x, k, s, p)),
    ]
CASES.append(Case("adaptive_avg_pool2d", [(2, 3, 4, 5)], lambda x: F.adaptive_avg_pool2d(x, 1), lambda x: TF.adaptive_avg_pool2d(x, 1)))
for shape in [(6, 3), (4, 3, 2, 3)]:
    c = shape[1]
    stats = {"rm": np.linspace(-1, 1, c), "rv": np.linspace(0.5, 2, c)}
    CASES += [
        Case(f"batch_norm train {shape}", [shape, (c,), (c,)], lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
             lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True)),
        Case(f"batch_norm train {shape} no weight", [shape], lambda x: F.batch_norm(x, None, None, training=True),
             lambda x: TF.batch_norm(x, None, None, training=True)),
        Case(f"batch_norm train {shape} weight only", [shape, (c,)], lambda x, w: F.batch_norm(x, None, None, w, training=True),
             lambda x, w: TF.batch_norm(x, None, None, w, training=True)),
        Case(f"batch_norm eval {shape}", [shape, (c,), (c,)], lambda x, w, b, rm, rv: F.batch_norm(x, rm, rv, w, b),
             lambda x, w, b, rm, rv: TF.batch_norm(x, rm, rv, w, b), constants=stats),
        Case(f"batch_norm eval {shape} no weight", [shape], lambda x, rm, rv: F.batch_norm(x, rm, rv),
             lambda x, rm, rv: TF.batch_norm(x, rm, rv), constants=stats),
    ]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_agrees_with_pytorch(case, device):
    run_case(case, device)


@pytest.mark.parametrize("momentum", [0.1, 0.3])
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 3, 2)], ids=str)
def test_batch_norm_running_statistics_agree_with_pytorch(device, shape, momentum):
    c = shape[1]
    ours_mean, ours_var = to_device(np.zeros(c), device), to_device(np.ones(c), device)
    torch_mean, torch_var = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    for _ in range(4):
        x = rng.standard_normal(shape) * 3 + 2
        ours = F.batch_norm(md.tensor(to_device(x, device)), ours_mean, ours_var, md.tensor(to_device(w, device)),
                            md.tensor(to_device(b, device)), training=True, momentum=momentum)
        theirs = TF.batch_norm(torch.from_numpy(x), torch_mean, torch_var, torch.from_numpy(w), torch.from_numpy(b),
                               training=True, momentum=momentum)
        assert_close(ours.data, theirs, "batch_norm output")
    assert_close(ours_mean, torch_mean, "running_mean")
    assert_close(ours_var, torch_var, "running_var")
    # Evaluation with the statistics both have gathered.
    x = rng.standard_normal(shape)
    assert_close(F.batch_norm(md.tensor(to_device(x, device)), ours_mean, ours_var).data,
                 TF.batch_norm(torch.from_numpy(x), torch_mean, torch_var), "batch_norm eval after training")


def test_a_small_network_agrees_with_pytorch(device):
    """conv -> bn -> relu -> pool -> residual add -> linear -> cross_entropy, end to end."""
    rng = np.random.default_rng(0)
    arrays = {
        "x": rng.standard_normal((4, 2, 6, 6)), "w1": rng.standard_normal((3, 2, 3, 3)) * 0.3,
        "g": 1 + 0.1 * rng.standard_normal(3), "beta": 0.1 * rng.standard_normal(3),
        "w2": rng.standard_normal((3, 3, 3, 3)) * 0.3, "wl": rng.standard_normal((5, 27)) * 0.2, "bl": rng.standard_normal(5),
    }
    target = np.array([0, 4, 2, 2])

    def net(lib, t, target):
        f = F if lib is md else TF
        h = f.relu(f.batch_norm(f.conv2d(t["x"], t["w1"], padding=1), None, None, t["g"], t["beta"], training=True))
        h = f.max_pool2d(h, 2)
        h = h + f.conv2d(h, t["w2"], padding=1)  # a residual shortcut
        h = h.flatten(1) if lib is md else torch.flatten(h, 1)
        return f.cross_entropy(f.linear(h, t["wl"], t["bl"]), target)

    ours = {k: md.tensor(to_device(v, device), requires_grad=True) for k, v in arrays.items()}
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    loss, tloss = net(md, ours, to_device(target, device)), net(torch, theirs, torch.from_numpy(target))
    assert_close(loss.data, tloss, "loss")
    loss.backward()
    tloss.backward()
    for k in arrays:
        assert_close(ours[k].grad, theirs[k].grad, f"gradient of {k}")


def _random_geometry(seed: int, pool: bool):
    """A random (input shape, kernel, stride, padding) that fits: padding at most half the kernel for pooling."""
    rng = np.random.default_rng(seed)
    kernel = tuple(int(k) for k in rng.integers(1, 5, size=2))
    stride = tuple(int(s) for s in rng.integers(1, 4, size=2))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) if pool else int(rng.integers(0, 3)) for k in kernel)
    size = tuple(int(k + rng.integers(0, 6)) for k in kernel)
    return (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + size, kernel, stride, padding


@pytest.mark.parametrize("seed", range(12))
def test_conv2d_random_geometry_agrees_with_pytorch(device, seed):
    x_shape, kernel, stride, padding = _random_geometry(seed, pool=False)
    c_out = 1 + seed % 3
    run_case(Case(f"conv2d random {seed}", [x_shape, (c_out, x_shape[1]) + kernel, (c_out,)],
                  lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding),
                  lambda x, w, b: TF.conv2d(x, w, b, stride=stride, padding=padding)), device)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_pool_random_geometry_agrees_with_pytorch(device, name, seed):
    x_shape, kernel, stride, padding = _random_geometry(seed, pool=True)
    run_case(Case(f"{name} random {seed}", [x_shape], lambda x: getattr(F, name)(x, kernel, stride, padding),
                  lambda x: getattr(TF, name)(x, kernel, stride, padding)), device)
