"""The inference layer's import graph, computed from the source (module-level and
function-level imports alike): no cycle, and nothing imported from the layers above it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "ppgen"
ABOVE = ("ppgen.evaluate", "ppgen.impute", "ppgen.plot", "ppgen.cli", "ppgen.io")
# Fit.anomaly_score calls ppgen.evaluate.iwae; it moves with the evaluate layer's rework.
KNOWN = {("ppgen.infer.result", "ppgen.evaluate.bounds")}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every ppgen module -> the ppgen modules it imports anywhere in its source."""
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                # "from package import module" imports the module.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]  # fmt: skip
            else:
                continue
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]], nodes: set[str]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node] & nodes):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(nodes):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_inference_layer_has_no_import_cycle():
    graph = import_graph()
    infer = {m for m in graph if m.startswith("ppgen.infer")}
    assert len(infer) > 10
    assert _cycle(graph, infer) is None


def test_the_inference_layer_imports_nothing_above_it():
    graph = import_graph()
    upward = {
        (m, t)
        for m, targets in graph.items()
        if m.startswith("ppgen.infer")
        for t in targets
        if t.startswith(ABOVE)
    }
    assert upward <= KNOWN


def test_the_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle(graph, set(graph)) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}, {"a", "b"}) is None
