"""The graph picture: Graphviz DOT text of the ops that produced a tensor, and an SVG/PNG/PDF of it.

``graph(y)`` walks back from ``y`` through ``grad_fn`` and each function's ``parents``, the
same links ``y.backward()`` follows, and writes one node per tensor (its shape and dtype,
filled when it requires a gradient) and one node per op (its name), with arrows in the
direction the forward pass ran. ``render(y, "graph.svg")`` turns the text into a picture
with Graphviz's ``dot`` program when it is installed (``apt-get install graphviz``).

Draw the graph before ``backward()``: backward frees each op's inputs as it goes, unless
it is called with ``retain_graph=True``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping

from .autograd import Tensor

#: Fill colours: tensors that need a gradient, tensors that do not, ops (colour-blind safe).
COLORS = {"requires_grad": "#f0c571", "constant": "#ffffff", "op": "#9ecae1", "output": "#a1d99b"}

_FORMATS = ("svg", "png", "pdf")


def _quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape(t: Tensor) -> str:
    return "(" + ", ".join(str(n) for n in t.shape) + ("," if t.ndim == 1 else "") + ")"


def _tensor_label(t: Tensor, name: str | None) -> str:
    lines = [name] if name else []
    lines.append(f"{_shape(t)} {t.dtype}")
    if t.requires_grad:
        lines.append("requires_grad (leaf)" if t.is_leaf else "requires_grad")
    return "\n".join(lines)


def graph(
    tensor: Tensor,
    params: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None = None,
    *,
    name: str = "minideep",
    rankdir: str = "TB",
) -> str:
    """Graphviz DOT text of the graph that produced ``tensor``.

    Every tensor becomes a box that shows its shape and dtype (and its name, when it has
    one); a tensor that requires a gradient is filled orange and says ``requires_grad``
    (with ``(leaf)`` and a thick border for a leaf such as a weight, whose ``.grad``
    backward fills); constants are white. Every op becomes an ellipse named by its ``Function``
    class (``MatmulBackward``, ``ReluBackward``, ``ConvolutionBackward``, ...). Arrows run from inputs to op to output,
    the forward direction; ``backward`` walks them in reverse. ``tensor`` itself is green.

    Args:
        tensor: the result whose history is drawn (a loss, a layer output).
        params: optional names for tensors, e.g. ``model.named_parameters()``; a tensor's own
            ``.name`` is used otherwise.
        name: the graph's name in the DOT text.
        rankdir: Graphviz layout direction, ``"TB"`` (top to bottom) or ``"LR"``.

    Returns:
        The DOT text (``digraph name { ... }``).

    Example:
        >>> x = md.tensor([[1.0, 2.0]], requires_grad=True)
        >>> w = md.tensor([[3.0], [4.0]], requires_grad=True)
        >>> print(graph_picture.graph((x @ w).sum(), {"x": x, "w": w}))
        digraph minideep { ... "op1" [label="MatmulBackward", shape=ellipse ...] ... }
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"graph_picture.graph: expected a Tensor, got {type(tensor).__name__}")
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"graph_picture.graph: rankdir must be 'TB', 'LR', 'BT' or 'RL', got {rankdir!r}")
    items = params.items() if isinstance(params, Mapping) else (params or ())
    names = {id(t): n for n, t in items}

    tensor_ids: dict[int, str] = {}
    lines = [f"digraph {_quote(name)} {{", f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica"];']

    def tensor_node(t: Tensor) -> str:
        key = tensor_ids.get(id(t))
        if key is None:
            key = tensor_ids[id(t)] = f"t{len(tensor_ids)}"
            fill = COLORS["output"] if t is tensor else COLORS["requires_grad" if t.requires_grad else "constant"]
            label = _tensor_label(t, names.get(id(t), t.name))
            border = ", penwidth=2" if t.requires_grad and t.is_leaf else ""
            lines.append(f"  {key} [label={_quote(label)}, shape=box, style=filled, fillcolor={_quote(fill)}{border}];")
        return key

    # Iterative walk (no recursion limit): each op is written once, with its input edges.
    seen_ops: set[int] = set()
    stack = [tensor]
    tensor_node(tensor)
    n_ops = 0
    while stack:
        out = stack.pop()
        fn = out.grad_fn
        if fn is None or id(fn) in seen_ops:
            continue
        if fn.parents is None:
            raise ValueError(
                "graph_picture.graph: the graph was freed by backward(); draw it before backward() "
                "or call backward(retain_graph=True)"
            )
        seen_ops.add(id(fn))
        op = f"op{n_ops}"
        n_ops += 1
        lines.append(f"  {op} [label={_quote(type(fn).__name__)}, shape=ellipse, style=filled, "
                     f"fillcolor={_quote(COLORS['op'])}];")
        lines.append(f"  {op} -> {tensor_node(out)};")
        for parent in fn.parents:
            lines.append(f"  {tensor_node(parent)} -> {op};")
            stack.append(parent)
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_available() -> bool:
    """True when Graphviz's ``dot`` program is on the PATH."""
    return shutil.which("dot") is not None


def render(
    tensor: Tensor,
    path: str | os.PathLike,
    params: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None = None,
    *,
    format: str | None = None,  # noqa: A002 - Graphviz's own word
    **kwargs: Any,
) -> Path:
    """Draw the graph of ``tensor`` to an SVG, PNG or PDF file with Graphviz's ``dot``.

    Args:
        tensor: the result whose history is drawn.
        path: the output file; its suffix picks the format unless ``format`` is given.
        params: names for tensors, as in :func:`graph`.
        format: ``"svg"``, ``"png"`` or ``"pdf"``.
        **kwargs: passed on to :func:`graph` (``name``, ``rankdir``).

    Returns:
        ``Path(path)``.

    Raises:
        RuntimeError: when ``dot`` is not installed (the DOT text from :func:`graph` can
            still be pasted into any Graphviz viewer).
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in _FORMATS:
        raise ValueError(f"graph_picture.render: format must be one of {_FORMATS}, got {fmt!r} (from {str(path)!r})")
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "graph_picture.render: Graphviz's `dot` program is not installed "
            "(apt-get install graphviz, or brew install graphviz); graph_picture.graph(tensor) still returns the DOT text"
        )
    text = graph(tensor, params, **kwargs)
    result = subprocess.run([dot, f"-T{fmt}", "-o", str(path)], input=text.encode(), capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"graph_picture.render: dot failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
    return path
