"""Chapter 01: reverse-mode automatic differentiation, one node at a time.

Two small computations go through the engine:

* the expression  f(a, b) = (a*b + tanh(a) + a/b)^2  at a = 1.5, b = 0.5, where ``a`` is
  used three times, so its gradient is the sum over three paths;
* a small MLP, 3 -> 4 (tanh) -> 2, with a cross-entropy loss on five random points.

For each, the chapter draws the graph (DOT text always; SVG when Graphviz's ``dot`` is
installed), prints the backward pass step by step in the order ``backward()`` visits the
nodes (``minideep.autograd.topological_order``) with each op's rule and local derivative,
checks that the replay gives the engine's gradients, and checks those against central
finite differences and ``md.gradcheck``.

    python chapters/01_autodiff.py                 # prints everything, writes runs/01_autodiff/
    python chapters/01_autodiff.py --out /tmp/ch01 --variants expression
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import minideep as md
import minideep.nn.functional as F
from minideep import diagnostics, graph_picture, nn
from minideep.autograd import Tensor, topological_order
from minideep.backend import as_numpy, to_device
from minideep.experiment import Experiment, RunContext, format_table

EXPRESSION = "f(a, b) = (a*b + tanh(a) + a/b)^2"

# The chapter is tiny: the presets differ only in name (every flag is still accepted).
_CONFIG = {"a": 1.5, "b": 0.5, "mlp_sizes": [3, 4, 2], "mlp_batch": 5, "eps": 1e-6, "dtype": "float64",
           "product_depth": 6, "product_width": 8}
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


def print_steps(steps: list[dict], scalar: bool, log: Callable[[str], None] = print) -> None:
    """The replayed backward pass as text, one block per node."""
    for k, step in enumerate(steps, 1):
        if scalar:
            head = f"step {k:2d}  {step['node']:<14} = {step['value']:+.6f}   dL/d({step['node'].split(' ')[0]}) = {step['grad']:+.6f}"
        else:
            head = f"step {k:2d}  {step['node']:<28} shape {tuple(step['shape'])!s:<8} ||dL/d node|| = {step['grad_norm']:.6f}"
        log(head)
        if step["op"] == "leaf":
            log("          leaf: its gradient is final")
            continue
        log(f"          {step['op']}: {step['rule']}")
        for edge in step["edges"]:
            if scalar:
                log(f"          -> {edge['to']:<14} local derivative {edge['local_derivative']:+.6f}"
                    f"   contributes {step['grad']:+.6f} * {edge['local_derivative']:+.6f} = {edge['contribution']:+.6f}")
            else:
                log(f"          -> {edge['to']:<28} passes ||.|| = {edge['grad_norm']:.6f}")


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
    """The expression: graph, replayed backward, engine backward, finite differences, gradcheck."""
    cfg, log = ctx.config, ctx.log
    dtype = np.dtype(cfg["dtype"])
    a = named(md.tensor(cfg["a"], dtype=dtype, requires_grad=True).to(ctx.device), "a")
    b = named(md.tensor(cfg["b"], dtype=dtype, requires_grad=True).to(ctx.device), "b")
    log(f"\n{EXPRESSION} at a = {cfg['a']}, b = {cfg['b']}")
    f = expression(a, b)
    log(f"forward: f = {f.item():.6f}")
    graph = _graph_files(f, None, ctx.out, "expression_graph", log)

    log("\nbackward, node by node (the engine's order; dL/df = 1 at the start):")
    steps, leaves = replay_backward(f, scalar=True)
    print_steps(steps, scalar=True, log=log)
    replay = {"a": _value(leaves[id(a)]), "b": _value(leaves[id(b)])}

    f.backward()  # the engine's own pass, to compare with the replay
    engine = {"a": _value(a.grad), "b": _value(b.grad)}
    matches = bool(np.allclose([replay["a"], replay["b"]], [engine["a"], engine["b"]], rtol=0, atol=1e-12))
    log(f"\nengine:  dL/da = {engine['a']:+.10f}   dL/db = {engine['b']:+.10f}   (replay equal: {matches})")

    x_a, x_b = md.tensor(cfg["a"], dtype=dtype).to(ctx.device), md.tensor(cfg["b"], dtype=dtype).to(ctx.device)
    numeric = central_differences(expression, [x_a, x_b], cfg["eps"])
    fd = compare(["a", "b"], [a.grad, b.grad], numeric)
    for name, row in fd.items():
        log(f"finite differences (eps {cfg['eps']:g}): dL/d{name} = {row['finite_difference']:+.10f}"
            f"   |difference| {row['max_abs_error']:.1e}")
    passed = md.gradcheck(expression, [md.tensor(cfg["a"], dtype=dtype, requires_grad=True).to(ctx.device),
                                       md.tensor(cfg["b"], dtype=dtype, requires_grad=True).to(ctx.device)])
    log(f"md.gradcheck: {'passed' if passed else 'FAILED'}")
    return {"expression": EXPRESSION, "inputs": {"a": cfg["a"], "b": cfg["b"]}, "value": f.item(),
            "gradients": engine, "replay_gradients": replay, "replay_matches_engine": matches,
            "steps": steps, "finite_differences": fd, "gradcheck": bool(passed), "graph": graph}


def run_mlp(ctx: RunContext) -> dict:
    """The MLP: graph, replayed backward (norms per node), finite differences, gradcheck."""
    cfg, log = ctx.config, ctx.log
    dtype = np.dtype(cfg["dtype"])
    md.manual_seed(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    n_in, _, n_out = cfg["mlp_sizes"]
    x = named(md.tensor(rng.standard_normal((cfg["mlp_batch"], n_in)), dtype=dtype).to(ctx.device), "x")
    y = to_device(rng.integers(0, n_out, cfg["mlp_batch"]), ctx.device)
    model = make_mlp(cfg["mlp_sizes"], dtype).to(ctx.device)
    params = list(model.named_parameters())
    for name, p in params:
        p.name = name

    def loss_fn(inputs: Tensor, *weights: Tensor) -> Tensor:
        return F.cross_entropy(model(inputs), y)  # ``weights`` are the model's own, nudged in place

    log(f"\nMLP {' -> '.join(map(str, cfg['mlp_sizes']))} (tanh), cross-entropy on {cfg['mlp_batch']} random points")
    # Forward hooks label each layer's output, so the graph and the printed steps use the same names.
    labels = {"0": "z1 = x W1^T + b1", "1": "h1 = tanh(z1)", "2": "z2 = h1 W2^T + b2 (logits)"}
    handles = [module.register_forward_hook(lambda m, i, out, name=labels[key]: setattr(out, "name", name))
               for key, module in model.named_children()]
    loss = named(loss_fn(x), "loss")
    for handle in handles:
        handle.remove()
    log(f"forward: loss = {loss.item():.6f}")
    graph = _graph_files(loss, params, ctx.out, "mlp_graph", log)

    log("\nbackward, node by node (the engine's order; norms of the gradient arrays):")
    steps, leaves = replay_backward(loss, scalar=False)
    print_steps(steps, scalar=False, log=log)
    loss.backward()
    matches = all(np.allclose(as_numpy(leaves[id(p)]), as_numpy(p.grad), rtol=0, atol=1e-12) for _, p in params)
    log(f"\nreplay equals the engine's gradients: {matches}")

    numeric = central_differences(lambda *_: loss_fn(x), [p for _, p in params], cfg["eps"])
    fd = compare([n for n, _ in params], [p.grad for _, p in params], numeric)
    log(format_table([{"parameter": n, "shape": str(tuple(p.shape)), "max |backward - finite diff.|": fd[n]["max_abs_error"]}
                      for n, p in params]))
    x.requires_grad = True  # gradcheck checks dL/dx as well as every weight
    passed = md.gradcheck(loss_fn, [x] + [p for _, p in params])
    log(f"md.gradcheck (input and all {sum(p.size for _, p in params)} weights): {'passed' if passed else 'FAILED'}")
    return {"sizes": cfg["mlp_sizes"], "batch": cfg["mlp_batch"], "loss": loss.item(),
            "gradients": {n: _value(p.grad) for n, p in params}, "replay_matches_engine": bool(matches),
            "steps": steps, "finite_differences": fd, "gradcheck": bool(passed), "graph": graph,
            "jacobian_product": run_jacobian_product(ctx)}


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
    return {"expression": run_expression, "mlp": run_mlp}[ctx.variant](ctx)


# ----------------------------------------------------------------------------------------
# Table and files
# ----------------------------------------------------------------------------------------


def summarize(results: dict) -> str:
    rows = []
    for variant, entry in results["variants"].items():
        for seed, run in entry["runs"].items():
            worst = max(row["max_abs_error"] for row in run["finite_differences"].values())
            rows.append({"variant": variant, "seed": seed, "nodes visited": len(run["steps"]),
                         "replay = engine": run["replay_matches_engine"],
                         "max |backward - finite diff.|": worst, "gradcheck": "passed" if run["gradcheck"] else "FAILED"})
    return format_table(rows)


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


def figures(results: dict, out: Path) -> list[Path]:
    """The graph files the runs wrote (DOT always, SVG with Graphviz), and jacobian_product.md."""
    found = []
    for entry in results["variants"].values():
        for run in entry["runs"].values():
            found += [out / name for name in run["graph"].values() if name]
            if "jacobian_product" in run:
                path = out / "jacobian_product.md"
                path.write_text(jacobian_product_page(run["jacobian_product"]))
                found.append(path)
    return found


EXPERIMENT = Experiment(
    chapter="01_autodiff",
    description="Reverse-mode autodiff on an expression and a small MLP: graph, backward step by step, gradient checks.",
    presets=PRESETS,
    variants=VARIANTS,
    run_variant=run_variant,
    summarize=summarize,
    figures=figures,
).script(__name__)
