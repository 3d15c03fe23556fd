"""The package's import arrows point one way: no cycles, and the leaves import nothing of minideep's."""
import ast
from pathlib import Path

import minideep

PACKAGE = Path(minideep.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the minideep modules it imports, anywhere in the file (lazy imports count)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")
                if node.level:
                    base = base[: len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
            else:
                continue
            found.update(t for t in targets if t in modules and t != name)
        graph[name] = found
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle among modules (ignoring a package's imports of its own submodules), or None."""
    edges = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                return path[path.index(t):] + [t] if t in path else path + [t]
            if t not in state and (found := visit(t, path + [t])):
                return found
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m, [m])):
            return found
    return None


def test_no_import_cycle_between_minideep_modules():
    # A package's __init__ importing its own submodules is not a cycle; anything else is.
    graph = _imports()
    submodule_free = {m: {t for t in ts if not (t.startswith(m + ".") or m.startswith(t + ".") and t == m.rpartition(".")[0])}
                      for m, ts in graph.items()}
    assert _cycle(submodule_free) is None


def test_the_chapter_runner_never_imports_sweep():
    assert "minideep.sweep" not in _imports()["minideep.experiment"]


def test_leaves_import_nothing_of_minideep_but_other_leaves():
    # backend and tempfiles (temporary files named after their writer) import nothing of ours;
    # results, the leaf every writer uses, imports only them.
    graph = _imports()
    assert graph["minideep.backend"] == set()
    assert graph["minideep.tempfiles"] == set()
    assert graph["minideep.results"] <= {"minideep.backend", "minideep.tempfiles"}
