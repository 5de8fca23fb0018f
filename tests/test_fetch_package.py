"""``newsmill.tasks.fetch`` is a package with private modules and a small public surface: what ``__all__``
says is what the package exposes, and no code outside the package reaches into its private modules."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import newsmill.tasks.fetch as fetch

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "tasks" / "fetch"


def test_public_surface_is_all():
    public = {name for name, value in vars(fetch).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public == set(fetch.__all__)
    assert len(fetch.__all__) == len(set(fetch.__all__))
    for name in fetch.__all__:
        assert getattr(fetch, name) is not None


def test_the_package_holds_only_private_modules_under_600_lines():
    modules = sorted(PACKAGE.glob("*.py"))
    assert {m.name for m in modules} >= {"__init__.py", "_fetcher.py", "_transports.py", "_decoders.py"}
    for m in modules:
        assert m.name == "__init__.py" or m.name.startswith("_"), m.name
        assert len(m.read_text(encoding="utf-8").splitlines()) <= 600, m.name


def _imports_of_fetch(path: Path):
    """``(line, module, names)`` of every import of ``newsmill.tasks.fetch`` or below in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("newsmill.tasks.fetch"):
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("newsmill.tasks.fetch"):
                    yield node.lineno, a.name, []


def test_code_outside_the_package_imports_only_public_names():
    dirs = ("flows", "tasks", "warehouse", "newsmill", "tests", "bench")
    sources = [p for d in dirs for p in (REPO / d).rglob("*.py") if PACKAGE not in p.parents]
    seen = 0
    for path in sources:
        for line, module, names in _imports_of_fetch(path):
            seen += 1
            where = f"{path.relative_to(REPO)}:{line}"
            assert module == "newsmill.tasks.fetch", f"{where} imports private module {module}"
            assert set(names) <= set(fetch.__all__), f"{where} imports {sorted(set(names) - set(fetch.__all__))}"
    assert seen >= 5  # archive, discover, runtime, ingest, extract_files, tests...
