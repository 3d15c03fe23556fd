"""The computation-graph picture: DOT text that parses, names the ops and shapes, renders with dot."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F
from minideep import graph_picture, nn

HAS_DOT = shutil.which("dot") is not None

_STRING = r'"(?:[^"\\]|\\.)*"'
_ATTRS = rf"\[(?:\s*\w+\s*=\s*(?:{_STRING}|[\w.#]+)\s*,?)*\s*\]"
_NODE = re.compile(rf"^(\w+)\s*{_ATTRS};$")
_EDGE = re.compile(r"^(\w+)\s*->\s*(\w+);$")
_DEFAULTS = re.compile(rf"^(node|edge|graph)\s*{_ATTRS};$")
_SETTING = re.compile(r"^\w+\s*=\s*\w+;$")


def parse_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """A small structural parser for the DOT subset graph_picture writes: nodes (id -> label) and edges.

    Fails on anything else: an unknown statement, an unbalanced brace or quote, an edge to an
    undeclared node, a duplicate node.
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    assert re.fullmatch(rf"digraph {_STRING} {{", lines[0]), lines[0]
    assert lines[-1] == "}"
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    for line in lines[1:-1]:
        if _DEFAULTS.match(line) or _SETTING.match(line):
            continue
        if m := _NODE.match(line):
            assert m.group(1) not in nodes, f"duplicate node {m.group(1)}"
            label = re.search(rf"label=({_STRING})", line)
            nodes[m.group(1)] = label.group(1)[1:-1].replace("\\n", "\n") if label else ""
        elif m := _EDGE.match(line):
            edges.append((m.group(1), m.group(2)))
        else:
            raise AssertionError(f"not DOT: {line!r}")
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} to an undeclared node"
    return nodes, edges


def mlp_loss():
    md.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = md.tensor(np.ones((5, 3), dtype=np.float32))
    return F.cross_entropy(model(x), np.array([0, 1, 0, 1, 1])), model, x


def test_graph_shows_ops_shapes_and_which_tensors_need_a_gradient():
    loss, model, x = mlp_loss()
    nodes, edges = parse_dot(graph_picture.graph(loss, model.named_parameters()))
    labels = list(nodes.values())
    for op in ("LinearBackward", "ReluBackward", "CrossEntropyBackward"):
        assert op in labels
    weight = next(label for label in labels if label.startswith("0.weight"))
    assert "(4, 3) float32" in weight and "requires_grad" in weight
    inputs = [label for label in labels if label.startswith("(5, 3)")]
    assert inputs and all("requires_grad" not in label for label in inputs)  # the data needs no gradient
    assert any(label.startswith("() float32") for label in labels)  # the scalar loss
    # every op has an output edge and at least one input edge
    ops = [key for key, label in nodes.items() if key.startswith("op")]
    assert len(ops) == 4
    for op in ops:
        assert any(a == op for a, _ in edges) and any(b == op for _, b in edges)


def test_shared_inputs_appear_once():
    x = md.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x + x).sum()
    nodes, edges = parse_dot(graph_picture.graph(y, {"x": x}))
    assert sum(label.startswith("x\n") for label in nodes.values()) == 1
    x_node = next(k for k, label in nodes.items() if label.startswith("x\n"))
    assert sum(a == x_node for a, _ in edges) == 3  # into MulBackward twice and into AddBackward once
    assert "(2,) float32" in nodes[x_node]


def test_conv_graph_and_escaping():
    md.manual_seed(1)
    x = md.tensor(np.zeros((1, 2, 4, 4), dtype=np.float32))
    conv = nn.Conv2d(2, 3, 3, padding=1)
    out = conv(x)
    out.name = 'the "output"\\'
    text = graph_picture.graph(out, rankdir="LR")
    nodes, _ = parse_dot(text)
    assert any(label.endswith("ConvolutionBackward") for label in nodes.values())  # plain or fast kernel
    assert any("(1, 3, 4, 4)" in label for label in nodes.values())
    assert "rankdir=LR;" in text


def test_freed_graph_and_bad_input_are_reported():
    loss, _, _ = mlp_loss()
    loss.backward()
    with pytest.raises(ValueError, match="graph_picture.graph: the graph was freed by backward"):
        graph_picture.graph(loss)
    with pytest.raises(TypeError, match="graph_picture.graph: expected a Tensor"):
        graph_picture.graph(np.zeros(3))
    with pytest.raises(ValueError, match="rankdir"):
        graph_picture.graph(md.tensor([1.0]), rankdir="up")


def test_a_leaf_alone_is_a_graph():
    nodes, edges = parse_dot(graph_picture.graph(md.tensor([1.0], requires_grad=True)))
    assert len(nodes) == 1 and edges == []


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_dot_parses_the_text():
    loss, model, _ = mlp_loss()
    result = subprocess.run(["dot", "-Tsvg"], input=graph_picture.graph(loss, model.named_parameters()).encode(),
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode()
    assert b"<svg" in result.stdout and b"CrossEntropy" in result.stdout


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG")])
def test_render_writes_the_picture(tmp_path, suffix, magic):
    loss, _, _ = mlp_loss()
    path = graph_picture.render(loss, tmp_path / f"graph{suffix}")
    assert path.read_bytes().startswith(magic)


def test_render_without_dot_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(graph_picture.shutil, "which", lambda name: None)
    loss, _, _ = mlp_loss()
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        graph_picture.render(loss, tmp_path / "graph.svg")
    with pytest.raises(ValueError, match="format must be one of"):
        graph_picture.render(loss, tmp_path / "graph.bmp")


@pytest.mark.parametrize("broken", [
    'digraph "g" {\n  t0 [label="a"];\n  t0 -> t1;\n}\n',          # edge to an undeclared node
    'digraph "g" {\n  t0 [label="a];\n}\n',                         # unbalanced quote
    'digraph "g" {\n  t0 [label="a"];\n',                           # no closing brace
])
def test_the_structural_parser_rejects_broken_dot(broken):
    with pytest.raises(AssertionError):
        parse_dot(broken)
