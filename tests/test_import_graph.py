"""The package's import graph: no cycle, and no edge from a lower layer up to a higher one (docs/architecture.md).

Every module under python/evoquality (kernels/ included, through its symlink) is parsed with `ast`; nothing is
imported, so the test is cheap and sees the lazy imports too. Which imports count:

- module-level imports, and imports inside functions and methods: a lazy import keeps `import evoquality` cheap,
  but the code still cannot run without the other module, so it is a dependency like any other;
- imports under ``if TYPE_CHECKING:``: an annotation that names another module's class is a dependency a reader
  has to follow;
- not the body of ``if __name__ == "__main__":``: it runs only when the module is the program itself, the top of
  the stack by definition (toy/controls.py hands `python -m evoquality.toy.controls` to the commands that way).

``from pkg import name`` counts as an edge to ``pkg.name`` when that is a module, else to ``pkg``. Importing
``a.b.c`` also runs ``a/__init__`` and ``a.b/__init__``; those implicit edges are not counted (each ``__init__`` is a
module of its own here, with its own imports).

ops/ and kernels/ are one unit, and an op is one node: the reference ``ops/<op>.py`` dispatches to
``kernels/<op>.py``, which reuses the reference's result type. The two files are one piece of code (same stem), kept
apart only so that importing ops never imports triton.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "python" / "evoquality"

# Bottom to top. A module belongs to the longest prefix listed; an import may go down to any lower layer or stay
# inside its own unit. Units of one layer are independent of each other: an edge between them fails as well.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("evoquality._offline", "evoquality._files", "evoquality.config_fields"),
    ("evoquality._backend",),
    ("evoquality.ops", "evoquality.io", "evoquality.prompts", "evoquality.data"),
    ("evoquality.processing",),
    ("evoquality.modeling", "evoquality.tiny_model"),
    ("evoquality.sampling",),
    ("evoquality.labelling", "evoquality.evaluation"),
    ("evoquality.training",),
    ("evoquality.toy", "evoquality.api"),
    ("evoquality.commands",),
    ("evoquality.cli",),
    ("evoquality", "evoquality.__main__"),  # the package's face: lazy re-exports of api; `python -m evoquality`
)


def module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package (symlinked folders followed)."""
    out = {}
    for folder, _, files in os.walk(package_dir, followlinks=True):
        for name in files:
            if name.endswith(".py"):
                path = Path(folder) / name
                parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                out[".".join(parts)] = path
    return out


def _is_main_guard(node: ast.stmt) -> bool:
    t = node.test if isinstance(node, ast.If) else None
    return (isinstance(t, ast.Compare) and isinstance(t.left, ast.Name) and t.left.id == "__name__"
            and len(t.comparators) == 1 and isinstance(t.comparators[0], ast.Constant)
            and t.comparators[0].value == "__main__")


def _imports(tree: ast.AST):
    """Every Import / ImportFrom node, at any depth, except those inside an `if __name__ == "__main__":` body."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = list(ast.iter_child_nodes(node))
        if _is_main_guard(node):
            children = [node.test, *node.orelse]
        stack.extend(children)


def _node(module: str, modules: dict[str, Path]) -> str:
    """The graph node of a module: a kernel file is the same node as its op's reference."""
    prefix = "evoquality.kernels."
    if module.startswith(prefix) and "evoquality.ops." + module[len(prefix):] in modules:
        return "evoquality.ops." + module[len(prefix):]
    return module


def import_edges(modules: dict[str, Path]) -> dict[tuple[str, str], int]:
    """(importer, imported) between modules of the package -> the line of the first such import."""
    edges: dict[tuple[str, str], int] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative import: resolve against the importing module's package
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:  # `import a.b.c` names c; a name in c is c
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.setdefault((name, target), node.lineno)
    return edges


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, unit) of a module: the longest unit prefix in LAYERS (kernels/ counts as ops/)."""
    if module == "evoquality.kernels" or module.startswith("evoquality.kernels."):
        module = "evoquality.ops" + module[len("evoquality.kernels"):]
    best = None
    for index, units in enumerate(LAYERS):
        for unit in units:
            if module == unit or module.startswith(unit + "."):
                if best is None or len(unit) > len(best[1]):
                    best = (index, unit)
    if best is None:
        raise KeyError(module)
    return best


def cycles(edges) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(sorted(scc))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _where(modules, edges, a, b) -> str:
    line = edges.get((a, b))
    return f"{a} -> {b}" + (f"  ({modules[a].relative_to(PACKAGE_DIR.parent)}:{line})" if line else "")


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in module_files() if not _try_layer(m))
    assert not unplaced, f"modules in no layer of LAYERS (place them): {unplaced}"


def _try_layer(module: str) -> bool:
    try:
        layer_of(module)
    except KeyError:
        return False
    return True


def test_no_import_cycle_between_modules():
    modules = module_files()
    edges = import_edges(modules)
    node_edges = {}
    for (a, b), line in edges.items():
        na, nb = _node(a, modules), _node(b, modules)
        if na != nb:
            node_edges.setdefault((na, nb), line)
    found = cycles(node_edges)
    report = []
    for scc in found:
        members = set(scc)
        report.append("cycle: " + ", ".join(scc))
        report += ["    " + _where(modules, edges, a, b) for (a, b) in sorted(edges)
                   if _node(a, modules) in members and _node(b, modules) in members
                   and _node(a, modules) != _node(b, modules)]
    assert not found, "import cycles:\n" + "\n".join(report)


def test_no_import_cycle_between_units():
    modules = module_files()
    edges = import_edges(modules)
    unit_edges = {(layer_of(a)[1], layer_of(b)[1]) for a, b in edges if layer_of(a)[1] != layer_of(b)[1]}
    found = cycles(unit_edges)
    assert not found, "cycles between packages / top-level modules: " + "; ".join(", ".join(c) for c in found)


def test_no_upward_or_sideways_edge():
    modules = module_files()
    edges = import_edges(modules)
    bad = []
    for a, b in sorted(edges):
        (la, ua), (lb, ub) = layer_of(a), layer_of(b)
        if ua != ub and la <= lb:
            kind = "up" if la < lb else "sideways"
            bad.append(f"{kind}: {_where(modules, edges, a, b)}   [{ua} is layer {la}, {ub} is layer {lb}]")
    assert not bad, "imports against the layering (LAYERS in this file):\n" + "\n".join(bad)


def test_the_walk_sees_lazy_imports(tmp_path):
    """The graph includes function-level and TYPE_CHECKING imports, resolves relative ones, and skips a main
    guard's body: checked on a small fake package, so a regression in the walker cannot pass silently."""
    pkg = tmp_path / "evoquality"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from evoquality.sub import high\n")
    (pkg / "sub" / "high.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import low\n"
        "if __name__ == '__main__':\n    import evoquality.sub.other\n")
    (pkg / "sub" / "other.py").write_text("from . import high\n")
    edges = set(import_edges(module_files(pkg)))
    assert edges == {("evoquality.low", "evoquality.sub.high"), ("evoquality.sub.high", "evoquality.low"),
                     ("evoquality.sub.other", "evoquality.sub.high")}
    assert cycles(edges) == [["evoquality.low", "evoquality.sub.high"]]
