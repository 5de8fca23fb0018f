"""``newsmill.tasks.fetch`` is a package with private modules and a small public surface: what ``__all__``
says is what the package exposes, and no code outside the package reaches into its private modules."""

from __future__ import annotations

import ast
import gzip
import types
from pathlib import Path

import pytest

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


def test_decode_capped_is_the_bounded_decoder():
    page = b"<urlset>" + b"<url><loc>https://example.org/a</loc></url>" * 100 + b"</urlset>"
    assert fetch.decode_capped(gzip.compress(page), "gzip", 1 << 20) == (page, True)
    # concatenated gzip members are one stream
    assert fetch.decode_capped(gzip.compress(page) + gzip.compress(page), "gzip", 1 << 20) == (page * 2, True)
    zipped = gzip.compress(page)
    out, complete = fetch.decode_capped(zipped[: len(zipped) // 2], "gzip", 1 << 20)
    assert not complete and page.startswith(out)
    with pytest.raises(fetch.TooLarge):
        fetch.decode_capped(gzip.compress(b"\0" * (8 << 20)), "gzip", 1 << 20)
    with pytest.raises(fetch.DecodingError):
        fetch.decode_capped(b"\x1f\x8b\x08\x00garbage-not-deflate", "gzip", 1 << 20)


def test_discover_reads_gzipped_sitemaps_through_it():
    from newsmill.tasks.discover import DocumentError, parse_sitemap

    sm = (b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
          + b"".join(b"<url><loc>https://example.org/%d</loc></url>" % i for i in range(50)) + b"</urlset>")
    kind, items = parse_sitemap(gzip.compress(sm), "https://example.org/sm.xml.gz", max_bytes=1 << 20)
    assert kind == "urlset" and len(items) == 50
    with pytest.raises(DocumentError, match="truncated"):
        parse_sitemap(gzip.compress(sm)[:-20], "https://example.org/sm.xml.gz", max_bytes=1 << 20)
    with pytest.raises(DocumentError) as bomb:
        parse_sitemap(gzip.compress(b"\0" * (4 << 20)), "https://example.org/sm.xml.gz", max_bytes=1 << 20)
    assert bomb.value.outcome == "too_large"
