"""Chapter 01: reverse-mode automatic differentiation, one node at a time.

Two small computations go through the engine:

* the expression  f(a, b) = (a*b + tanh(a) + a/b)^2  at a = 1.5, b = 0.5, where ``a`` is
  used three times, so its gradient is the sum over three paths;
* a small MLP, 3 -> 4 (tanh) -> 2, with a cross-entropy loss on five random points.

For each, the chapter draws the graph (DOT text always; SVG when Graphviz's ``dot`` is
installed), prints the backward pass step by step in the order ``backward()`` visits the
nodes (``minideep.autograd.topological_order``) with each op's rule and local derivative,
checks that the replay gives the engine's gradients, and checks those against central
finite differences and ``md.gradcheck`` (and against PyTorch's autograd when PyTorch is
installed). The mlp variant also checks that backward is the product of the layers' Jacobian
matrices, and times one forward against one backward pass.

Every printed listing, table and the claims ledger are also files (``--out``), regenerated from
results.json alone by ``--from-results`` (docs/figures/01/ holds the committed run's).

    python chapters/01_autodiff.py                 # prints everything, writes runs/01_autodiff/
    python chapters/01_autodiff.py --out /tmp/ch01 --variants expression
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import minideep as md
import minideep.nn.functional as F
from minideep import diagnostics, graph_picture, nn
from minideep.autograd import Tensor, topological_order
from minideep.backend import as_numpy, to_device
from minideep.experiment import Experiment, RunContext, format_table, markdown_table

EXPRESSION = "f(a, b) = (a*b + tanh(a) + a/b)^2"

# The chapter is tiny: the presets differ only in name (every flag is still accepted).
_CONFIG = {"a": 1.5, "b": 0.5, "mlp_sizes": [3, 4, 2], "mlp_batch": 5, "eps": 1e-6, "dtype": "float64",
           "product_depth": 6, "product_width": 8, "cost_width": 256, "cost_batch": 256, "cost_repeats": 15}
PRESETS = {"smoke": dict(_CONFIG), "quick": dict(_CONFIG), "paper": dict(_CONFIG)}
VARIANTS = ("expression", "mlp")


# ----------------------------------------------------------------------------------------
# The two computations
# ----------------------------------------------------------------------------------------


def named(t: Tensor, name: str) -> Tensor:
    """Give ``t`` a label (shown in the graph and in the printed steps) and return it."""
    t.name = name
    return t


# --8<-- [start:expression]
def expression(a: Tensor, b: Tensor) -> Tensor:
    """f(a, b) = (a*b + tanh(a) + a/b)^2, with every intermediate result named."""
    c = named(a * b, "c = a*b")
    d = named(md.tanh(a), "d = tanh(a)")
    e = named(a / b, "e = a/b")
    s = named(c + d, "s = c + d")
    u = named(s + e, "u = s + e")
    return named(u**2, "f = u^2")
# --8<-- [end:expression]


def make_mlp(sizes: Sequence[int], dtype: Any) -> nn.Sequential:
    """Linear(3, 4) -> Tanh -> Linear(4, 2), PyTorch's default init, in ``dtype``."""
    n_in, n_hidden, n_out = sizes
    return nn.Sequential(nn.Linear(n_in, n_hidden, dtype=dtype), nn.Tanh(), nn.Linear(n_hidden, n_out, dtype=dtype))


# ----------------------------------------------------------------------------------------
# The backward pass, replayed and printed
# ----------------------------------------------------------------------------------------


def _label(t: Tensor, numbers: dict[int, int]) -> str:
    """The tensor's name, or "t<k> (<Op> output)" numbered in the order first met."""
    if t.name:
        return t.name
    k = numbers.setdefault(id(t), len(numbers))
    what = type(t.grad_fn).__name__ + " output" if t.grad_fn is not None else "leaf"
    return f"t{k} ({what})"


def _rule(fn: md.Function) -> str:
    """The op's own rule from its class docstring: the first line, and the derivative if not on it."""
    lines = [" ".join(line.split()) for line in (type(fn).__doc__ or type(fn).__name__).strip().splitlines()]
    derivative = next((line for line in lines[1:] if "dL/" in line or "dy/" in line), None)
    has_derivative = "dL/" in lines[0] or "dy/" in lines[0]
    return lines[0] if has_derivative or derivative is None else f"{lines[0]} {derivative}"


def _value(array: Any) -> Any:
    """A scalar as a float, a small array as a nested list (for printing and JSON)."""
    array = as_numpy(array)
    return float(array) if array.size == 1 else array.tolist()


# --8<-- [start:replay_backward]
def replay_backward(root: Tensor, scalar: bool) -> tuple[list[dict], dict[int, Any]]:
    """Walk the graph as ``root.backward()`` does and record every step.

    The order is the engine's own (``topological_order``); each op's ``backward`` is
    called exactly as the engine calls it, with dL/d(output), and its answers are summed
    into the inputs' pending gradients. For a graph of scalars the local derivative
    d(output)/d(input) of each edge is also recorded: it is ``backward(1)``. Nothing is
    freed, so the engine can run ``root.backward()`` afterwards and be compared.

    Returns:
        (steps, gradients): one dict per visited node, and ``{id(leaf): dL/dleaf}``.
    """
    xp = md.backend.get_array_module(root.data)
    numbers: dict[int, int] = {}
    pending: dict[int, Any] = {id(root): xp.ones_like(root.data)}
    leaves: dict[int, Any] = {}
    steps = []
    for node in topological_order(root):
        g = pending.pop(id(node))
        fn = node.grad_fn
        step: dict[str, Any] = {"node": _label(node, numbers), "shape": list(node.shape),
                                "grad_norm": float(np.linalg.norm(as_numpy(g))), "edges": []}
        if scalar:
            step["value"], step["grad"] = _value(node.data), _value(g)
        if fn is None:
            step["op"] = "leaf"
            leaves[id(node)] = g
            steps.append(step)
            continue
        step["op"], step["rule"] = type(fn).__name__, _rule(fn)
        input_grads = fn.backward(g)
        input_grads = input_grads if isinstance(input_grads, tuple) else (input_grads,)
        local = fn.backward(xp.ones_like(g)) if scalar else None
        local = local if isinstance(local, tuple) or local is None else (local,)
        for i, (parent, pg) in enumerate(zip(fn.parents, input_grads)):
            if pg is None or not parent.requires_grad:
                continue
            pending[id(parent)] = pending[id(parent)] + pg if id(parent) in pending else pg
            edge = {"to": _label(parent, numbers), "grad_norm": float(np.linalg.norm(as_numpy(pg)))}
            if scalar:
                edge["local_derivative"], edge["contribution"] = _value(local[i]), _value(pg)
            step["edges"].append(edge)
        steps.append(step)
    return steps, leaves
# --8<-- [end:replay_backward]


def steps_text(steps: list[dict], scalar: bool) -> list[str]:
    """The replayed backward pass as text lines, one block per node (printed, and a file the page includes)."""
    lines = []
    for k, step in enumerate(steps, 1):
        if scalar:
            lines.append(f"step {k:2d}  {step['node']:<14} = {step['value']:+.6f}"
                         f"   dL/d({step['node'].split(' ')[0]}) = {step['grad']:+.6f}")
        else:
            lines.append(f"step {k:2d}  {step['node']:<28} shape {tuple(step['shape'])!s:<8}"
                         f" ||dL/d node|| = {step['grad_norm']:.6f}")
        if step["op"] == "leaf":
            lines.append("          leaf: its gradient is final")
            continue
        lines.append(f"          {step['op']}: {step['rule']}")
        for edge in step["edges"]:
            if scalar:
                lines.append(f"          -> {edge['to']:<14} local derivative {edge['local_derivative']:+.6f}"
                             f"   contributes {step['grad']:+.6f} * {edge['local_derivative']:+.6f}"
                             f" = {edge['contribution']:+.6f}")
            else:
                lines.append(f"          -> {edge['to']:<28} passes ||.|| = {edge['grad_norm']:.6f}")
    return lines


# ----------------------------------------------------------------------------------------
# Checks: central differences and md.gradcheck
# ----------------------------------------------------------------------------------------


# --8<-- [start:central_differences]
def central_differences(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float) -> list[np.ndarray]:
    """dfn/dx for every input element: (fn(x + eps e_k) - fn(x - eps e_k)) / (2 eps); fn is scalar.

    The error is of order eps^2 (the eps^2 terms of the two Taylor expansions cancel).
    """
    grads = []
    with md.no_grad():
        for x in inputs:
            flat = x.data.reshape(-1)  # a view: nudging it nudges x
            numeric = np.zeros(flat.size)
            for k in range(flat.size):
                original = float(flat[k])
                flat[k] = original + eps
                plus = fn(*inputs).item()
                flat[k] = original - eps
                minus = fn(*inputs).item()
                flat[k] = original
                numeric[k] = (plus - minus) / (2 * eps)
            grads.append(numeric.reshape(x.shape))
    return grads
# --8<-- [end:central_differences]


def compare(names: Sequence[str], analytic: Sequence[Any], numeric: Sequence[np.ndarray]) -> dict[str, dict]:
    """Per input: backward, finite differences, the largest absolute and relative difference."""
    out = {}
    for name, a, n in zip(names, analytic, numeric):
        a = as_numpy(a).astype(np.float64)
        diff = np.abs(a - n)
        out[name] = {"backward": _value(a), "finite_difference": _value(n), "max_abs_error": float(diff.max()),
                     "max_rel_error": float((diff / np.maximum(np.abs(n), 1e-12)).max())}
    return out


# ----------------------------------------------------------------------------------------
# PyTorch as an oracle (when it is installed) and the cost of a backward pass
# ----------------------------------------------------------------------------------------


def _torch() -> Any:
    """PyTorch if it is installed, else None (the chapter runs without it and says so)."""
    try:
        import torch  # optional, and slow to import
    except ImportError:
        return None
    return torch


def pytorch_expression(a: float, b: float) -> dict | None:
    """f and its gradient computed by PyTorch's autograd (float64), or None without PyTorch."""
    torch = _torch()
    if torch is None:
        return None
    ta = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    f = (ta * tb + torch.tanh(ta) + ta / tb) ** 2
    f.backward()
    return {"version": torch.__version__, "value": f.item(), "gradients": {"a": ta.grad.item(), "b": tb.grad.item()}}


def pytorch_mlp(params: Sequence[tuple[str, Any]], x: np.ndarray, y: np.ndarray) -> dict | None:
    """The same MLP in PyTorch with the same weights: its loss and dL/dW for every weight, or None."""
    torch = _torch()
    if torch is None:
        return None
    weights = {name: torch.tensor(as_numpy(p.data), dtype=torch.float64, requires_grad=True) for name, p in params}
    h = torch.tanh(torch.tensor(x, dtype=torch.float64) @ weights["0.weight"].T + weights["0.bias"])
    logits = h @ weights["2.weight"].T + weights["2.bias"]
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y, dtype=torch.int64))
    loss.backward()
    return {"version": torch.__version__, "loss": loss.item(),
            "gradients": {name: w.grad.numpy().tolist() for name, w in weights.items()}}


def _max_difference(ours: dict[str, Any], theirs: dict[str, Any]) -> float:
    """max over names and elements of |ours - theirs|."""
    return max(float(np.max(np.abs(np.asarray(ours[k], dtype=np.float64) - np.asarray(theirs[k], dtype=np.float64))))
               for k in ours)


# --8<-- [start:backward_cost]
def backward_cost(ctx: RunContext) -> dict:
    """Time one forward pass and one backward pass of a wider tanh MLP (median of repeats).

    Reverse mode promises a gradient for about the cost of the function: each Linear's
    backward is two matrix products (dL/dx = G W and dL/dW = G^T x) for its forward's one.
    """
    cfg = ctx.config
    width, batch, depth = cfg["cost_width"], cfg["cost_batch"], cfg["product_depth"]
    md.manual_seed(ctx.seed)
    net = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), nn.Tanh())]).to(ctx.device)
    x = md.tensor(np.random.default_rng(ctx.seed).standard_normal((batch, width)).astype(np.float32)).to(ctx.device)
    forward, backward = [], []
    for _ in range(cfg["cost_repeats"] + 1):  # the first round warms up and is dropped
        t0 = time.perf_counter()
        loss = net(x).sum()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        forward.append(t1 - t0)
        backward.append(t2 - t1)
    f, b = float(np.median(forward[1:])), float(np.median(backward[1:]))
    return {"width": width, "batch": batch, "depth": depth, "repeats": cfg["cost_repeats"], "dtype": "float32",
            "threads": md.get_num_threads(), "forward_s": f, "backward_s": b, "ratio": b / f}
# --8<-- [end:backward_cost]


# ----------------------------------------------------------------------------------------
# The two variants
# ----------------------------------------------------------------------------------------


def _graph_files(root: Tensor, params: Any, out: Path, stem: str, log: Callable[[str], None]) -> dict[str, str | None]:
    """Write ``stem.dot`` always and ``stem.svg`` when Graphviz's dot is installed."""
    dot_path = out / f"{stem}.dot"
    dot_path.write_text(graph_picture.graph(root, params, name=stem))
    svg = None
    if graph_picture.dot_available():
        svg = graph_picture.render(root, out / f"{stem}.svg", params, name=stem).name
        log(f"graph: {dot_path} and {out / svg}")
    else:
        log(f"graph: {dot_path} (install Graphviz for an SVG: apt-get install graphviz)")
    return {"dot": dot_path.name, "svg": svg}


def run_expression(ctx: RunContext) -> dict:
    """The expression: graph, replayed backward, engine backward, finite differences, gradcheck, PyTorch."""
    cfg, log = ctx.config, ctx.log
    dtype = np.dtype(cfg["dtype"])
    a = named(md.tensor(cfg["a"], dtype=dtype, requires_grad=True).to(ctx.device), "a")
    b = named(md.tensor(cfg["b"], dtype=dtype, requires_grad=True).to(ctx.device), "b")
    f = expression(a, b)
    graph = _graph_files(f, None, ctx.out, "expression_graph", log)
    steps, leaves = replay_backward(f, scalar=True)
    replay = {"a": _value(leaves[id(a)]), "b": _value(leaves[id(b)])}

    f.backward()  # the engine's own pass, to compare with the replay
    engine = {"a": _value(a.grad), "b": _value(b.grad)}
    difference = _max_difference(replay, engine)
    x_a, x_b = md.tensor(cfg["a"], dtype=dtype).to(ctx.device), md.tensor(cfg["b"], dtype=dtype).to(ctx.device)
    fd = compare(["a", "b"], [a.grad, b.grad], central_differences(expression, [x_a, x_b], cfg["eps"]))
    passed = md.gradcheck(expression, [md.tensor(cfg["a"], dtype=dtype, requires_grad=True).to(ctx.device),
                                       md.tensor(cfg["b"], dtype=dtype, requires_grad=True).to(ctx.device)])
    torch_run = pytorch_expression(cfg["a"], cfg["b"])
    if torch_run is not None:
        torch_run["max_abs_difference"] = _max_difference(engine, torch_run["gradients"])
    run = {"expression": EXPRESSION, "inputs": {"a": cfg["a"], "b": cfg["b"]}, "eps": cfg["eps"], "value": f.item(),
           "gradients": engine, "replay_gradients": replay, "replay_max_difference": difference,
           "replay_matches_engine": difference <= 1e-12, "steps": steps, "finite_differences": fd,
           "gradcheck": bool(passed), "graph": graph, "pytorch": torch_run}
    log("\n" + expression_transcript(run))
    return run


def expression_transcript(run: dict) -> str:
    """What the chapter prints for the expression, from its record (also ``expression_backward.txt``)."""
    a, b = run["inputs"]["a"], run["inputs"]["b"]
    engine, eps = run["gradients"], run["eps"]
    lines = [f"{run['expression']} at a = {a}, b = {b}", f"forward: f = {run['value']:.6f}", "",
             "backward, node by node (the engine's order; dL/df = 1 at the start):"]
    lines += steps_text(run["steps"], scalar=True)
    lines += ["", (f"engine:  dL/da = {engine['a']:+.10f}   dL/db = {engine['b']:+.10f}"
                   f"   (replay equal: {run['replay_matches_engine']})")]
    for name, row in run["finite_differences"].items():
        lines.append(f"finite differences (eps {eps:g}): dL/d{name} = {row['finite_difference']:+.10f}"
                     f"   |difference| {row['max_abs_error']:.1e}")
    lines.append(f"md.gradcheck: {'passed' if run['gradcheck'] else 'FAILED'}")
    torch_run = run.get("pytorch")
    if torch_run is None:
        lines.append("PyTorch: not installed, not compared")
    else:
        lines.append(f"PyTorch {torch_run['version']}: dL/da = {torch_run['gradients']['a']:+.10f}"
                     f"   dL/db = {torch_run['gradients']['b']:+.10f}   |difference| {torch_run['max_abs_difference']:.1e}")
    return "\n".join(lines)


def run_mlp(ctx: RunContext) -> dict:
    """The MLP: graph, replayed backward (norms per node), finite differences, gradcheck, PyTorch."""
    cfg, log = ctx.config, ctx.log
    dtype = np.dtype(cfg["dtype"])
    md.manual_seed(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    n_in, _, n_out = cfg["mlp_sizes"]
    x_data, y_data = rng.standard_normal((cfg["mlp_batch"], n_in)), rng.integers(0, n_out, cfg["mlp_batch"])
    x = named(md.tensor(x_data, dtype=dtype).to(ctx.device), "x")
    y = to_device(y_data, ctx.device)
    model = make_mlp(cfg["mlp_sizes"], dtype).to(ctx.device)
    params = list(model.named_parameters())
    for name, p in params:
        p.name = name

    def loss_fn(inputs: Tensor, *weights: Tensor) -> Tensor:
        return F.cross_entropy(model(inputs), y)  # ``weights`` are the model's own, nudged in place

    # Forward hooks label each layer's output, so the graph and the printed steps use the same names.
    labels = {"0": "z1 = x W1^T + b1", "1": "h1 = tanh(z1)", "2": "z2 = h1 W2^T + b2 (logits)"}
    handles = [module.register_forward_hook(lambda m, i, out, name=labels[key]: setattr(out, "name", name))
               for key, module in model.named_children()]
    loss = named(loss_fn(x), "loss")
    for handle in handles:
        handle.remove()
    graph = _graph_files(loss, params, ctx.out, "mlp_graph", log)
    steps, leaves = replay_backward(loss, scalar=False)
    loss.backward()
    gradients = {n: _value(p.grad) for n, p in params}
    difference = _max_difference({n: as_numpy(leaves[id(p)]) for n, p in params}, gradients)

    fd = compare([n for n, _ in params], [p.grad for _, p in params],
                 central_differences(lambda *_: loss_fn(x), [p for _, p in params], cfg["eps"]))
    x.requires_grad = True  # gradcheck checks dL/dx as well as every weight
    passed = md.gradcheck(loss_fn, [x] + [p for _, p in params])
    torch_run = pytorch_mlp(params, x_data, y_data)
    if torch_run is not None:
        torch_run["max_abs_difference"] = _max_difference(gradients, torch_run["gradients"])
        torch_run["loss_difference"] = abs(torch_run["loss"] - loss.item())
    run = {"sizes": cfg["mlp_sizes"], "batch": cfg["mlp_batch"], "eps": cfg["eps"], "loss": loss.item(),
           "shapes": {n: list(p.shape) for n, p in params}, "weights": sum(p.size for _, p in params),
           "gradients": gradients, "replay_max_difference": difference, "replay_matches_engine": difference <= 1e-12,
           "steps": steps, "finite_differences": fd, "gradcheck": bool(passed), "graph": graph, "pytorch": torch_run}
    log("\n" + mlp_transcript(run))
    log(format_table(finite_difference_rows(run)))
    run["jacobian_product"] = run_jacobian_product(ctx)
    run["backward_cost"] = cost = backward_cost(ctx)
    log(f"\nOne forward and one backward pass, {cost['depth']} x (Linear {cost['width']}x{cost['width']} -> tanh), "
        f"batch {cost['batch']}, float32: forward {1e3 * cost['forward_s']:.2f} ms, backward "
        f"{1e3 * cost['backward_s']:.2f} ms (median of {cost['repeats']}): backward / forward = {cost['ratio']:.2f}")
    return run


def mlp_transcript(run: dict) -> str:
    """What the chapter prints for the MLP, from its record (also ``mlp_backward.txt``)."""
    sizes = " -> ".join(map(str, run["sizes"]))
    lines = [f"MLP {sizes} (tanh), cross-entropy on {run['batch']} random points", f"forward: loss = {run['loss']:.6f}",
             "", "backward, node by node (the engine's order; norms of the gradient arrays):"]
    lines += steps_text(run["steps"], scalar=False)
    lines += ["", f"replay equals the engine's gradients: {run['replay_matches_engine']}",
              f"md.gradcheck (input and all {run['weights']} weights): {'passed' if run['gradcheck'] else 'FAILED'}"]
    torch_run = run.get("pytorch")
    if torch_run is None:
        lines.append("PyTorch: not installed, not compared")
    else:
        lines.append(f"PyTorch {torch_run['version']} with the same weights: max |dL/dW difference| "
                     f"{torch_run['max_abs_difference']:.1e}, |loss difference| {torch_run['loss_difference']:.1e}")
    return "\n".join(lines)


def finite_difference_rows(run: dict) -> list[dict]:
    """Per weight of the MLP: its shape and the largest |backward - central difference|."""
    return [{"parameter": name, "shape": str(tuple(run["shapes"][name])),
             "max abs(backward − finite difference)": f"{row['max_abs_error']:.2e}",
             "max relative": f"{row['max_rel_error']:.1e}"} for name, row in run["finite_differences"].items()]


# --8<-- [start:jacobian_product]
def run_jacobian_product(ctx: RunContext) -> dict:
    """Backprop is the chain rule of matrices: (J_L ... J_1)^T dL/dh_L against backward()'s dL/dx."""
    cfg, log = ctx.config, ctx.log
    depth, width = cfg["product_depth"], cfg["product_width"]
    md.manual_seed(ctx.seed)
    net = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), nn.Tanh())]).double()
    rng = np.random.default_rng(ctx.seed)
    x, y = rng.standard_normal((1, width)), rng.integers(0, width, 1)
    check = diagnostics.jacobian_product_check(net, x, y)
    log(f"\nThe chain rule as matrices: {depth} x (Linear {width}x{width} -> tanh), one sample, "
        "every layer's Jacobian written out (W, diag(1 - h^2)) and multiplied")
    log(f"|(J_L...J_1)^T dL/dh_L - dL/dx from backward()|: max {check['max_abs_difference']:.1e}, "
        f"relative {check['relative_difference']:.1e}")
    log(format_table([{"after layer": name, "largest sigma of J_l...J_1": sv[0], "smallest": sv[-1]}
                      for name, sv in zip(check["names"], check["singular_values"]) if name.isdigit()
                      and int(name) % 2 == 1]))
    return check
# --8<-- [end:jacobian_product]


def run_variant(ctx: RunContext) -> dict:
    load_before = os.getloadavg()
    run = {"expression": run_expression, "mlp": run_mlp}[ctx.variant](ctx)
    run["load_average"] = {"before": list(load_before), "after": list(os.getloadavg())}
    return run


# ----------------------------------------------------------------------------------------
# Tables, listings and the claims ledger, all from results.json
# ----------------------------------------------------------------------------------------


def _first_run(results: dict, variant: str) -> dict | None:
    runs = results["variants"].get(variant, {}).get("runs", {})
    return next(iter(runs.values()), None)


def summary_rows(results: dict) -> list[dict]:
    rows = []
    for variant, entry in results["variants"].items():
        for seed, run in entry["runs"].items():
            worst = max(row["max_abs_error"] for row in run["finite_differences"].values())
            torch_run = run.get("pytorch")
            rows.append({"variant": variant, "seed": seed, "nodes visited": len(run["steps"]),
                         "replay = engine": run["replay_matches_engine"],
                         "max abs(backward − finite differences)": worst, "gradcheck": "passed" if run["gradcheck"] else "FAILED",
                         "max abs(ours − PyTorch)": "not run" if torch_run is None else torch_run["max_abs_difference"]})
    return rows


def summarize(results: dict) -> str:
    return format_table(summary_rows(results))


def jacobian_product_page(check: dict) -> str:
    """The chain-rule-of-matrices result as Markdown: the agreement, then sigma of J_l...J_1 per layer."""
    rows = [{"layer": f"{int(name) // 2 + 1} ({'Linear' if int(name) % 2 == 0 else 'tanh'})",
             "largest": sv[0], "median": float(np.median(sv)), "smallest": sv[-1]}
            for name, sv in zip(check["names"], check["singular_values"])]
    table = diagnostics.report_table(rows, {"layer": "after layer l", "largest": "largest σ of J_l⋯J_1",
                                            "median": "median σ", "smallest": "smallest σ"})
    return (f"max |(J_L⋯J_1)ᵀ ∂L/∂h_L − ∂L/∂x (backward)| = {check['max_abs_difference']:.1e}, "
            f"relative {check['relative_difference']:.1e}; ‖∂L/∂h_L‖ = {check['output_grad_norm']:.3g}, "
            f"‖∂L/∂x‖ = {check['input_grad_norm']:.3g}\n\n{table}\n")


def run_page(results: dict) -> str:
    """Where the numbers come from: preset, seeds, versions, machine, load and wall time of the run."""
    machine, versions = results.get("machine", {}), results.get("versions", {})
    loads = [run["load_average"] for entry in results["variants"].values() for run in entry["runs"].values()
             if "load_average" in run]
    cost = (_first_run(results, "mlp") or {}).get("backward_cost")
    torch_run = next((r["pytorch"] for r in (_first_run(results, v) for v in results["variants"]) if r and r.get("pytorch")),
                     None)
    rows = {"preset": results["preset"], "seeds": ", ".join(map(str, results.get("seeds", []))),
            "device": results.get("device", "cpu"), "data set": "none (fixed inputs; the MLP's points drawn from the seed)",
            "versions": ", ".join(f"{k} {v}" for k, v in versions.items())
            + (f", PyTorch {torch_run['version']}" if torch_run else " (no PyTorch)"),
            "machine": f"{machine.get('cpu', machine.get('processor', '?'))}, {machine.get('cpus', '?')} CPUs, {machine.get('platform', '?')}",
            "threads": cost["threads"] if cost else "-",
            "load average (1 min), first run's start / last run's end":
                f"{loads[0]['before'][0]:.2f} / {loads[-1]['after'][0]:.2f}" if loads else "-",
            "wall time of the runs": f"{results.get('wall_time_s', 0.0):.2f} s"}
    return markdown_table([{"run": k, "value": v} for k, v in rows.items()], align={"run": "left", "value": "left"})


def tables(results: dict) -> dict[str, str]:
    """The page's tables as Markdown: checks, the MLP's finite differences, the Jacobian product, the run."""
    out = {"checks": markdown_table(summary_rows(results)), "run": run_page(results)}
    mlp = _first_run(results, "mlp")
    if mlp is not None:
        out["mlp_finite_differences"] = markdown_table(finite_difference_rows(mlp))
        out["jacobian_product"] = jacobian_product_page(mlp["jacobian_product"]).rstrip("\n")
    return out


def figures(results: dict, out: Path) -> list[Path]:
    """The graph files the runs wrote (DOT always, SVG with Graphviz), and the printed listings as text files."""
    found = []
    for variant, entry in results["variants"].items():
        for run in entry["runs"].values():
            found += [out / name for name in run["graph"].values() if name and (out / name).exists()]
        run = _first_run(results, variant)
        if run is not None:
            text = expression_transcript(run) if variant == "expression" else mlp_transcript(run)
            path = out / f"{variant}_backward.txt"
            path.write_text(text + "\n")
            found.append(path)
    return found


# The rounding error of a central difference is about eps_mach |f| / eps (two values of f, each
# good to eps_mach |f|, subtracted and divided by 2 eps); the truncation error, eps^2 |f'''| / 6,
# is far smaller at eps = 1e-6. A gradient agrees when it is within ten times that scale.
ROUNDING_FACTOR = 10.0


def _verdict(ok: bool) -> str:
    return "reproduced" if ok else "differs"


def _not_run(claim: str, source: str, paper: str, why: str) -> dict:
    return {"claim": claim, "source": source, "paper": paper, "ours": "-", "verdict": "not run", "evidence": why}


def claims(results: dict) -> list[dict]:
    """The engine's claims, each checked from results.json (``not run`` when its variant did not run)."""
    expr, mlp = _first_run(results, "expression"), _first_run(results, "mlp")
    runs = [(n, r) for n, r in (("expression", expr), ("MLP", mlp)) if r is not None]
    entries = []

    claim = "The chain rule sums the paths: dL/da adds a's three uses, 2u (b + 1 − tanh²a + 1/b)"
    source, paper = "the multivariable chain rule (this page)", "the formula's value"
    if expr is None:
        entries.append(_not_run(claim, source, paper, "the expression variant did not run"))
    else:
        a, b = expr["inputs"]["a"], expr["inputs"]["b"]
        u = a * b + np.tanh(a) + a / b
        exact = {"a": 2 * u * (b + 1 - np.tanh(a) ** 2 + 1 / b), "b": 2 * u * (a - a / b**2)}
        rel = max(abs(expr["gradients"][k] - exact[k]) / abs(exact[k]) for k in exact)
        into_a = [e["contribution"] for s in expr["steps"] for e in s["edges"] if e["to"] == "a"]
        entries.append({"claim": claim, "source": source,
                        "paper": f"dL/da = {exact['a']:.6f}, dL/db = {exact['b']:.6f}",
                        "ours": f"dL/da = {expr['gradients']['a']:.6f}, dL/db = {expr['gradients']['b']:.6f}",
                        "verdict": _verdict(rel <= 1e-12 and len(into_a) == 3),
                        "evidence": f"largest relative difference {rel:.1e}; {len(into_a)} contributions into a"})

    claim = "One backward sweep in the engine's order gives every gradient: the node-by-node replay equals backward()"
    source, paper = "reverse-mode autodiff (this page)", "equal (to 1e-12)"
    if not runs:
        entries.append(_not_run(claim, source, paper, "no variant ran"))
    else:
        worst = max(r["replay_max_difference"] for _, r in runs)
        entries.append({"claim": claim, "source": source, "paper": paper, "ours": f"max difference {worst:.1e}",
                        "verdict": _verdict(worst <= 1e-12),
                        "evidence": "; ".join(f"{n}: {len(r['steps'])} nodes" for n, r in runs)})

    claim = "backward() equals the product of the layers' Jacobians, (J_L⋯J_1)ᵀ ∂L/∂h_L"
    source, paper = "the chain rule of matrices (this page)", "equal to rounding (relative difference ≤ 1e-10)"
    jvp_claim = "Each layer's Jacobian from its formula matches central-difference Jacobian-vector products"
    jvp_source, jvp_paper = "the Jacobian-product check (this page)", "agree (relative error ≤ 1e-6)"
    if mlp is None:
        entries.append(_not_run(claim, source, paper, "the mlp variant did not run"))
        entries.append(_not_run(jvp_claim, jvp_source, jvp_paper, "the mlp variant did not run"))
    else:
        check = mlp["jacobian_product"]
        entries.append({"claim": claim, "source": source, "paper": paper,
                        "ours": f"relative difference {check['relative_difference']:.1e}",
                        "verdict": _verdict(check["relative_difference"] <= 1e-10),
                        "evidence": f"{len(check['names'])} Jacobians written from their formulas and multiplied; "
                                    f"max abs difference {check['max_abs_difference']:.1e}"})
        worst_jvp = max(check["jvp_max_relative_errors"])
        entries.append({"claim": jvp_claim, "source": jvp_source, "paper": jvp_paper,
                        "ours": f"largest relative error {worst_jvp:.1e}", "verdict": _verdict(worst_jvp <= 1e-6),
                        "evidence": f"{len(check['names'])} layers, every column of each J_l"})

    eps_mach = float(np.finfo(np.float64).eps)
    for name, run, value_key in (("expression", expr, "value"), ("MLP", mlp, "loss")):
        claim = f"Backward agrees with central finite differences ({name}, float64)"
        source = "Taylor: error ≈ ε²·|f‴|/6 + ε_mach·|f|/ε"
        if run is None:
            entries.append(_not_run(claim, source, "within 10x the rounding scale", f"the {name} variant did not run"))
            continue
        scale = eps_mach * max(abs(run[value_key]), 1.0) / run["eps"]
        worst = max(row["max_abs_error"] for row in run["finite_differences"].values())
        elements = sum(np.size(row["backward"]) for row in run["finite_differences"].values())
        entries.append({"claim": claim, "source": source,
                        "paper": f"≤ {ROUNDING_FACTOR * scale:.1e} (10 ε_mach·max(|f|, 1)/ε, ε = {run['eps']:g})",
                        "ours": f"max abs(backward − finite difference) {worst:.1e}",
                        "verdict": _verdict(worst <= ROUNDING_FACTOR * scale),
                        "evidence": f"{elements} gradient elements; |f| = {abs(run[value_key]):.3g}"})

    claim = "md.gradcheck passes: a random vector-Jacobian product against central differences, every input element"
    source, paper = "md.gradcheck (this page)", "passes (|analytic − numeric| ≤ 1e-5 + 1e-3·|numeric|)"
    if not runs:
        entries.append(_not_run(claim, source, paper, "no variant ran"))
    else:
        entries.append({"claim": claim, "source": source, "paper": paper,
                        "ours": ", ".join(f"{n}: {'passed' if r['gradcheck'] else 'FAILED'}" for n, r in runs),
                        "verdict": _verdict(all(r["gradcheck"] for _, r in runs)),
                        "evidence": f"MLP: input and all {mlp['weights']} weights" if mlp else "expression: a and b"})

    claim = "PyTorch's autograd gives the same gradients (same inputs, same weights, float64)"
    source, paper = "PyTorch as the oracle", "equal to rounding (≤ 1e-12)"
    compared = [(n, r["pytorch"]) for n, r in runs if r.get("pytorch") is not None]
    if not compared:
        entries.append(_not_run(claim, source, paper, "PyTorch is not installed where this run was made"))
    else:
        worst = max(t["max_abs_difference"] for _, t in compared)
        entries.append({"claim": claim, "source": source, "paper": paper, "ours": f"max difference {worst:.1e}",
                        "verdict": _verdict(worst <= 1e-12),
                        "evidence": f"PyTorch {compared[0][1]['version']}: " + ", ".join(n for n, _ in compared)})

    claim = "The gradient shrinks through a product of tanh layers' Jacobians (the vanishing gradient)"
    source, paper = "Glorot & Bengio 2010 (chapter 02)", "‖∂L/∂x‖ < ‖∂L/∂h_L‖; the largest σ of J_l⋯J_1 falls with l"
    if mlp is None:
        entries.append(_not_run(claim, source, paper, "the mlp variant did not run"))
    else:
        check = mlp["jacobian_product"]
        largest = [sv[0] for sv in check["singular_values"]]
        ratio = check["input_grad_norm"] / check["output_grad_norm"]
        entries.append({"claim": claim, "source": source, "paper": paper,
                        "ours": f"‖∂L/∂x‖ / ‖∂L/∂h_L‖ = {ratio:.3g}; largest σ {largest[0]:.3g} → {largest[-1]:.3g}",
                        "verdict": _verdict(ratio < 1 and largest[-1] < largest[0]),
                        "evidence": f"{len(largest) // 2} x (Linear, tanh), PyTorch's default init, one sample"})

    claim = "A backward pass costs about as much as the forward pass (a small constant factor)"
    source, paper = "the cheap-gradient principle (Griewank & Walther 2008)", "backward / forward ≤ 3 (a Linear: 2 products for 1)"
    cost = mlp.get("backward_cost") if mlp else None
    if cost is None:
        entries.append(_not_run(claim, source, paper, "the mlp variant did not run"))
    else:
        entries.append({"claim": claim, "source": source, "paper": paper,
                        "ours": f"backward / forward = {cost['ratio']:.2f}", "verdict": _verdict(cost["ratio"] <= 3),
                        "evidence": f"{cost['depth']} x (Linear {cost['width']}x{cost['width']}, tanh), batch "
                                    f"{cost['batch']}, float32, {cost['threads']} thread(s), median of {cost['repeats']}: "
                                    f"{1e3 * cost['forward_s']:.2f} ms forward, {1e3 * cost['backward_s']:.2f} ms backward"})
    return entries


EXPERIMENT = Experiment(
    chapter="01_autodiff",
    description="Reverse-mode autodiff on an expression and a small MLP: graph, backward step by step, gradient checks.",
    presets=PRESETS,
    variants=VARIANTS,
    run_variant=run_variant,
    summarize=summarize,
    figures=figures,
    tables=tables,
    claims=claims,
).script(__name__)
