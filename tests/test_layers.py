"""The package's import graph, computed from the source: no cycles, and layers import only downward.

Every ``import`` in ``ppgen/`` counts, at module level and inside functions alike: a
function-level import that closes a cycle only hides the knot until the day someone moves it to
the top of the file. ``from x import y`` counts as importing ``x.y`` when ``x.y`` is a module and
``x`` otherwise; relative imports are resolved. Lazy registries that name their targets as
strings (``"ppgen.models.gmm:GaussianMixture"``, ``importlib.import_module("ppgen.models.vae")``)
count for the layer rule (a lower layer must not even *name* a higher one's modules) but not for
cycles: a registry listing its built-in entries by name while each entry imports the registry's
protocol is the intended shape, and nothing runs at import time. Imports under
``if TYPE_CHECKING:`` never run either: layer rule yes, cycles no (annotations between siblings
are fine).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "ppgen"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# The layers, lowest first. A module belongs to the layer of the longest prefix that matches its
# dotted name ("ppgen" itself is the package's __init__, the curated public API). A module may
# import its own layer and any layer below it, never one above. Guides sit BELOW models: the
# models build flow guides (models/vae.py and models/hvae.py import ppgen.guides.flows) while
# guides import nothing from ppgen, and a guide is a generic building block, not a model.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("ppgen._utils", "ppgen._arviz", "ppgen._parallel")),
    ("data", ("ppgen.data", "ppgen.datasets")),
    ("guides", ("ppgen.guides",)),
    ("models", ("ppgen.models",)),
    ("infer", ("ppgen.infer",)),
    ("evaluate", ("ppgen.evaluate",)),
    (
        "tasks",
        ("ppgen.impute", "ppgen.plot", "ppgen.select", "ppgen.classify", "ppgen.comparison"),
    ),
    # Test helpers shared by tests and benchmarks: may use every layer below the interfaces, and
    # nothing in the package may import them (checked below).
    ("testing", ("ppgen.testing",)),
    ("interfaces", ("ppgen.cli", "ppgen.io", "ppgen", "ppgen.__main__")),
)
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}

# A dotted module path, optionally with ":attribute", as lazy registries write their targets.
LAZY_TARGET = re.compile(r"^ppgen(?:\.\w+)+(?::\w+)?$")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    how: str  # "import" (runs), "type" (under `if TYPE_CHECKING:`), "lazy" (a string target)

    def where(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (``ppgen.infer`` is its ``__init__.py``)."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(name: str) -> str | None:
    """The module ``name`` loads: itself if a ppgen module, else its longest ppgen prefix."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _imports(module: str, path: Path) -> list[Edge]:
    """The ppgen modules (and top-level ``tests``) that ``module`` imports, with their lines."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    edges: list[Edge] = []
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }

    def add(target: str | None, node: ast.AST, how: str) -> None:
        if target is not None and target != module:
            edges.append(Edge(module, target, node.lineno, how))

    def external(name: str, node: ast.AST, how: str) -> None:
        if name.split(".")[0] in ("tests", "conftest"):
            edges.append(Edge(module, name, node.lineno, how))

    def visit(node: ast.AST, how: str) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, "type")
            for child in node.orelse:
                visit(child, how)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                external(alias.name, node, how)
                add(_resolve(alias.name), node, how)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, up level - 1 packages
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            external(base, node, how)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                add(_resolve(submodule if submodule in MODULES else base), node, how)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and LAZY_TARGET.match(node.value)
        ):
            target = node.value.partition(":")[0]
            if target in MODULES:  # "ppgen.schema", a format tag, names no module
                add(target, node, "type" if how == "type" else "lazy")
        for child in ast.iter_child_nodes(node):
            visit(child, how)

    visit(tree, "import")
    return edges


GRAPH: dict[str, list[Edge]] = {m: _imports(m, p) for m, p in MODULES.items()}


def layer_of(module: str) -> str | None:
    best, best_len = None, -1
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            # The bare package name is its __init__ only, so a new top-level module is unassigned.
            inside = prefix != PACKAGE and module.startswith(prefix + ".")
            if (module == prefix or inside) and len(prefix) > best_len:
                best, best_len = name, len(prefix)
    return best


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The shortest cycle through each module that lies on one, as paths ``[a, b, ..., a]``
    (strongly connected components by Tarjan's algorithm, then breadth first inside each)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:  # recursion depth is bounded by the package's size
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(component)

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for component in components:
        members = set(component)
        if len(members) < 2:
            continue
        # The shortest cycle through each member (breadth first inside the component), so a
        # knot of several modules reports every loop that must be cut, not just one.
        for start in sorted(members):
            parents: dict[str, str] = {}
            frontier = [start]
            while frontier and start not in parents:
                following = []
                for v in frontier:
                    for w in sorted(graph.get(v, ())):
                        if w in members and w not in parents:
                            parents[w] = v
                            following.append(w)
                frontier = following
            path = [start]
            v = parents[start]
            while v != start:
                path.append(v)
                v = parents[v]
            cycle = [start, *reversed(path[1:]), start]
            if frozenset(cycle) not in seen:
                seen.add(frozenset(cycle))
                cycles.append(cycle)
    return cycles


def test_the_graph_sees_the_package():
    # Guards the scanner itself: a parser that found nothing would pass every other test.
    assert {"ppgen", "ppgen.infer", "ppgen.models.base", "ppgen.data.schema"} <= set(MODULES)
    assert any(e.target == "ppgen.models.base" for e in GRAPH["ppgen.models.gmm"])


def test_scanner_resolves_imports(tmp_path):
    source = '''
"""ppgen.cli:main in a docstring is no import."""
import ppgen.models.gmm
from ppgen import infer
from ppgen.infer import fit
from ppgen.data.schema import Schema
from . import amortized
from ..evaluate import bounds
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from ppgen.io import load
def lazy():
    from ppgen.plot import loss
    return "ppgen.models.ppca:PPCA", "not ppgen.impute"
'''
    path = tmp_path / "sequences.py"
    path.write_text(source)
    edges = {(e.target, e.how) for e in _imports("ppgen.infer.sequences", path)}
    assert edges == {
        ("ppgen.models.gmm", "import"),
        ("ppgen.infer", "import"),
        ("ppgen.infer.fit", "import"),
        ("ppgen.data.schema", "import"),
        ("ppgen.infer.amortized", "import"),
        ("ppgen.evaluate.bounds", "import"),
        ("ppgen.io", "type"),
        ("ppgen.plot", "import"),
        ("ppgen.models.ppca", "lazy"),
    }
    assert find_cycles({"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": []}) == [["a", "b", "c", "a"]]


def test_every_module_has_a_layer():
    unassigned = sorted(m for m in MODULES if layer_of(m) is None)
    assert not unassigned, (
        f"modules without a layer: {unassigned}; add them to LAYERS in {Path(__file__).name}"
    )


def test_no_import_cycles():
    graph = {
        m: sorted({e.target for e in edges if e.how == "import" and e.target in MODULES})
        for m, edges in GRAPH.items()
    }
    cycles = find_cycles(graph)
    lines = {(e.source, e.target): e.line for edges in GRAPH.values() for e in edges}

    def describe(cycle: list[str]) -> str:
        return (
            " -> ".join(
                f"{a} (line {lines[(a, b)]})" for a, b in zip(cycle, cycle[1:], strict=False)
            )
            + f" -> {cycle[-1]}"
        )

    assert not cycles, (
        "import cycles in ppgen (each 'module (line N)' imports the next at line N):\n"
        + "\n".join(describe(c) for c in cycles)
    )


def test_layers_import_only_downward():
    upward = []
    for module, edges in GRAPH.items():
        source_layer = layer_of(module)
        for edge in edges:
            target_layer = layer_of(edge.target)
            if source_layer is None or target_layer is None:
                continue  # reported by test_every_module_has_a_layer / the tests check below
            if RANK[target_layer] > RANK[source_layer]:
                upward.append(f"{edge.where()}: {source_layer} imports {target_layer}")
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(sorted(upward))


def test_only_tests_import_the_testing_helpers():
    offenders = [
        e.where()
        for module, edges in GRAPH.items()
        if layer_of(module) != "testing"
        for e in edges
        if layer_of(e.target) == "testing"
    ]
    assert not offenders, "the package imports its test helpers:\n" + "\n".join(offenders)


def test_the_package_never_imports_the_tests():
    offenders = [
        e.where() for edges in GRAPH.values() for e in edges if e.target.split(".")[0] != PACKAGE
    ]
    assert not offenders, "ppgen imports the test suite:\n" + "\n".join(offenders)


@pytest.mark.parametrize("layer", [name for name, _ in LAYERS])
def test_layer_table_names_real_modules(layer):
    # A renamed package would silently leave its prefix behind.
    prefixes = dict(LAYERS)[layer]
    missing = [p for p in prefixes if not any(m == p or m.startswith(p + ".") for m in MODULES)]
    assert not missing, f"layer {layer!r} names modules that do not exist: {missing}"
