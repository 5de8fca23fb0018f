"""The project's own import graph, read from the source with ``ast``: no cycles.

Every ``import``/``from ... import`` of a project module counts, at module level or inside a function
(an import hidden in a function still ties the two modules together); imports under ``if TYPE_CHECKING:``
do not (they never run). An edge goes to the module named (``from newsmill.flows import runtime`` is an
edge to ``newsmill.flows.runtime``), not to the packages above it: importing a submodule runs its
package's ``__init__`` first, which is never a cycle of the code's making.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_dirs() -> dict[str, Path]:
    """Import name → source folder, from pyproject's ``packages`` and ``package-dir``."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    mapping = tool.get("package-dir", {})

    def folder(pkg: str) -> Path:  # setuptools: the longest mapped prefix, then one folder per name
        parts = pkg.split(".")
        for n in range(len(parts), 0, -1):
            prefix = ".".join(parts[:n])
            if prefix in mapping:
                return ROOT / mapping[prefix] / "/".join(parts[n:])
        return ROOT / "/".join(parts)

    return {pkg: folder(pkg) for pkg in tool["packages"]}


def project_modules() -> dict[str, Path]:
    """Dotted name → file of every module of the distribution."""
    mods: dict[str, Path] = {}
    for pkg, folder in package_dirs().items():
        for f in folder.glob("*.py"):
            mods[pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"] = f
    return mods


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imported_modules(path: Path, module: str, modules) -> list[tuple[str, int]]:
    """(project module, line) of every import in ``path`` that runs (TYPE_CHECKING blocks skipped).
    ``from X import a`` is an edge to ``X.a`` when that is a module, else to ``X``."""
    is_pkg = path.stem == "__init__"
    out: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.orelse:
                    visit(stmt)
                continue
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno) for a in child.names if a.name in modules)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = module.split(".")
                    anchor = parts if is_pkg else parts[:-1]
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    target = sub if sub in modules else base
                    if target in modules:
                        out.append((target, child.lineno))
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return [(t, line) for t, line in out if t != module]


def import_graph() -> dict[str, dict[str, int]]:
    """module → {imported project module: first line}."""
    mods = project_modules()
    graph: dict[str, dict[str, int]] = {}
    for name, path in mods.items():
        edges: dict[str, int] = {}
        for target, line in imported_modules(path, name, mods):
            edges.setdefault(target, line)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return found


def _describe(comp: list[str], graph: dict[str, dict[str, int]], mods: dict[str, Path]) -> str:
    edges = [f"{a} -> {b} ({mods[a].relative_to(ROOT)}:{line})"
             for a in comp for b, line in sorted(graph[a].items()) if b in comp]
    return " <-> ".join(comp) + "\n    " + "\n    ".join(edges)


def test_every_folder_of_the_distribution_is_read():
    mods = project_modules()
    for expected in ("newsmill.cli", "newsmill.flows.ingest", "newsmill.tasks.extract", "newsmill.warehouse.store"):
        assert expected in mods
    graph = import_graph()
    assert "newsmill.warehouse.files" in graph["newsmill.warehouse.store"]  # a module-level edge
    assert "newsmill.flows.ingest" in graph["newsmill.cli.run"]  # an edge from inside a function


def test_every_package_folder_is_declared():
    """A folder with an ``__init__.py`` under a mapped folder that pyproject does not list would be left
    out of the wheel."""
    declared = {folder.resolve() for folder in package_dirs().values()}
    for folder in set(declared):
        for init in folder.rglob("__init__.py"):
            assert init.parent.resolve() in declared, f"{init.parent.relative_to(ROOT)} is not in pyproject packages"


def test_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    mods = project_modules()
    assert not found, "import cycles:\n" + "\n".join(_describe(c, graph, mods) for c in found)


def test_cycle_finder_finds_a_hidden_and_skips_a_type_only_cycle(tmp_path):
    """The checker on a tiny graph: a cycle through a function-level import is found; one through an
    ``if TYPE_CHECKING:`` import is not."""
    a = tmp_path / "a.py"
    a.write_text("from pkg import b\n")
    b = tmp_path / "b.py"
    b.write_text("def f():\n    from pkg.a import x\n")
    c = tmp_path / "c.py"
    c.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import y\n")
    names = {"pkg.a": a, "pkg.b": b, "pkg.c": c}
    graph = {m: dict(imported_modules(p, m, names)) for m, p in names.items()}
    graph["pkg.a"]["pkg.c"] = 1  # a -> c; c -> a only for the type checker
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
