"""pyproject's ``dependencies`` are exactly the distributions the package imports: every third-party
top-level module imported anywhere in the package (inside functions too) comes from a declared
distribution, and every declared distribution is imported somewhere (or listed in ``RUNTIME_ONLY`` with
the reason)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from tests.test_imports import ROOT, project_modules

# Declared although the package never imports them, each with the reason. Keep this list short and true
# (the test fails when one of them becomes imported or undeclared).
RUNTIME_ONLY = {
    # justext (trafilatura's fallback) does ``from lxml.html.clean import Cleaner``; since lxml 5.2 that
    # module is the separate lxml_html_clean. justext asks for it as ``lxml[html_clean]``, an extra that
    # lxml 6 spells ``html-clean`` and pip does not resolve ("lxml 6.1.3 does not provide the extra
    # 'html_clean'"): without this line a fresh install cannot import trafilatura.
    "lxml-html-clean": "lxml.html.clean for justext",
}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, str]:
    """normalized distribution name → requirement string, from ``[project] dependencies``."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    return {_normalize(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", d).group(0)): d for d in deps}


def third_party_imports() -> dict[str, list[str]]:
    """top-level module → files importing it, for every import outside the stdlib and the package."""
    found: dict[str, list[str]] = {}
    for path in project_modules().values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "newsmill":
                    found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


def test_imported_third_party_modules_are_declared_and_declared_ones_imported():
    decl = declared()
    dists = importlib.metadata.packages_distributions()
    imports = third_party_imports()
    undeclared, used = {}, set()
    for module, files in sorted(imports.items()):
        providers = {_normalize(d) for d in dists.get(module, [])}
        assert providers, f"{module} (imported by {files[0]}) is not installed"
        hit = providers & decl.keys()
        if hit:
            used |= hit
        else:
            undeclared[module] = f"{'/'.join(sorted(providers))} (imported by {sorted(set(files))[0]})"
    assert not undeclared, f"imported but not declared in pyproject dependencies: {undeclared}"
    assert not used & RUNTIME_ONLY.keys(), "imported now, drop it from RUNTIME_ONLY"
    assert RUNTIME_ONLY.keys() <= decl.keys(), "RUNTIME_ONLY names an undeclared distribution"
    unused = {decl[d] for d in decl.keys() - used - RUNTIME_ONLY.keys()}
    assert not unused, f"declared in pyproject dependencies but never imported by the package: {unused}"


def test_every_dependency_is_pinned_in_constraints():
    pins = {_normalize(line.split("==")[0]) for line in (ROOT / "constraints.txt").read_text().splitlines()
            if "==" in line and not line.lstrip().startswith("#")}
    missing = sorted(d for d in declared() if d not in pins)
    assert not missing, f"not pinned in constraints.txt: {missing}"
