"""Module size and package surfaces (issue 13).

* No module of the distribution is longer than 600 lines.
* A package split into private modules (``tasks/fetch/``, ``tasks/archive/``, ...) exposes exactly what its
  ``__init__.__all__`` says, holds only private ``_x.py`` modules besides ``__init__``, and no code outside
  it reaches into it: no import of one of its private modules, no import of a name missing from
  ``__all__``, no ``package._private`` attribute read through an imported package.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import types
from pathlib import Path

import pytest

from tests.test_imports import ROOT, package_dirs, project_modules

MAX_LINES = 600

# packages whose modules are private behind ``__init__.__all__``
SPLIT_PACKAGES = ["newsmill.tasks.fetch", "newsmill.tasks.archive", "newsmill.tasks.copyright", "newsmill.tasks.clean",
                  "newsmill.tasks.metadata"]

# modules still over the cap, with why; an entry must go as soon as its module is under the cap
OVERSIZED: dict[str, str] = {}


# files outside a package that may reach into it, and why (each reach is listed: nothing else is allowed)
INTERNALS_ALLOWED = {
    # checks the linear helpers of the block pass against their XPath definitions
    "tests/test_extract_budget.py": {"imports private module newsmill.tasks.clean._tree"},
    # patches the pre-issue-15 definitions into the block pass to measure them; warms the compiled rules
    "bench/hostile.py": {"imports private module newsmill.tasks.clean._tree",
                         "imports private module newsmill.tasks.clean._compiled"},
}


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_of_the_distribution_is_over_the_cap():
    modules = project_modules()
    assert len(modules) > 50 and "newsmill.tasks.archive" in modules
    over = {name: _lines(path) for name, path in modules.items() if _lines(path) > MAX_LINES}
    assert set(over) - set(OVERSIZED) == set(), over


def test_the_list_of_oversized_modules_is_not_stale():
    modules = project_modules()
    for name, why in OVERSIZED.items():
        assert name in modules and _lines(modules[name]) > MAX_LINES, f"{name} is under the cap now: drop it ({why})"


def test_split_packages_are_shipped():
    dirs = package_dirs()
    for pkg in SPLIT_PACKAGES:
        assert pkg in dirs, f"{pkg} missing from pyproject [tool.setuptools] packages"
        assert (dirs[pkg] / "__init__.py").is_file()


@pytest.mark.parametrize("pkg", SPLIT_PACKAGES)
def test_public_surface_is_all(pkg):
    mod = importlib.import_module(pkg)
    public = {name for name, value in vars(mod).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public == set(mod.__all__)
    assert len(mod.__all__) == len(set(mod.__all__))
    for name in mod.__all__:
        assert getattr(mod, name) is not None


@pytest.mark.parametrize("pkg", SPLIT_PACKAGES)
def test_the_package_holds_only_private_modules(pkg):
    folder = package_dirs()[pkg]
    modules = sorted(folder.glob("*.py"))
    assert len(modules) >= 3
    for m in modules:
        assert m.name == "__init__.py" or m.name.startswith("_"), m.name
    assert not [p for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__"]


def _reaches_into(path: Path, pkg: str):
    """``(line, what)`` for every way ``path`` reaches past ``pkg``'s public surface."""
    public = set(importlib.import_module(pkg).__all__)
    parent, _, last = pkg.rpartition(".")
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    aliases: set[str] = set()  # local names bound to the package itself
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == pkg:
                for a in node.names:
                    if a.name not in public:
                        yield node.lineno, (f"imports private module {pkg}.{a.name}"
                                            if importlib.util.find_spec(f"{pkg}.{a.name}") else
                                            f"imports {a.name} from {pkg}")
            elif node.module.startswith(pkg + "."):
                yield node.lineno, f"imports private module {node.module}"
            elif node.module == parent:
                for a in node.names:
                    if a.name == last:
                        aliases.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith(pkg + "."):
                    yield node.lineno, f"imports private module {a.name}"
                elif a.name == pkg and a.asname:
                    aliases.add(a.asname)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.endswith("__")):
            yield node.lineno, f"reads {node.value.id}.{node.attr}"


def _sources_outside(pkg: str) -> list[Path]:
    folder = package_dirs()[pkg]
    dirs = [ROOT / d for d in ("flows", "tasks", "warehouse", "newsmill", "config", "tests", "bench")]
    return [p for d in dirs for p in d.rglob("*.py") if folder not in p.parents]


@pytest.mark.parametrize("pkg", SPLIT_PACKAGES)
def test_code_outside_the_package_uses_only_public_names(pkg):
    problems = [f"{p.relative_to(ROOT)}:{line}: {what}"
                for p in _sources_outside(pkg) for line, what in _reaches_into(p, pkg)
                if what not in INTERNALS_ALLOWED.get(str(p.relative_to(ROOT)), ())]
    assert problems == []


def test_the_allowed_reaches_are_still_there():
    for rel, allowed in INTERNALS_ALLOWED.items():
        found = {what for pkg in SPLIT_PACKAGES for _, what in _reaches_into(ROOT / rel, pkg)}
        assert allowed <= found, f"{rel}: drop {sorted(allowed - found)} from INTERNALS_ALLOWED"


def test_the_check_sees_private_reaches(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from newsmill.tasks.archive._reader import WarcReader\n"
                   "from newsmill.tasks.archive import WarcArchive, _nothing\n"
                   "from newsmill.tasks import archive as a\n"
                   "a.WarcArchive\n"
                   "a._private\n"
                   "from newsmill.tasks.archive import _reader\n", encoding="utf-8")
    found = sorted(_reaches_into(bad, "newsmill.tasks.archive"))
    assert [line for line, _ in found] == [1, 2, 5, 6], found
    assert found[-1][1] == "imports private module newsmill.tasks.archive._reader"
