"""Reading helpers shared by the field modules: element text, meta values, JSON-LD names."""

from __future__ import annotations

from typing import Any

from newsmill.tasks.jsonld import clean_text, resolve
from newsmill.tasks.parse import ParsedPage


def _el_text(el) -> str | None:
    try:
        return clean_text(el.text_content())
    except (ValueError, AttributeError):
        return None


def _meta(page: ParsedPage, *names: str) -> list[str]:
    out: list[str] = []
    for n in names:
        for v in page.meta.get(n, ()):
            c = clean_text(v)
            if c:
                out.append(c)
    return out


def _first_meta(page: ParsedPage, *names: str) -> str | None:
    for n in names:
        vals = _meta(page, n)
        if vals:
            return vals[0]
    return None


def _ld_name(value: Any, idx: dict[str, dict]) -> str | None:
    value = resolve(value, idx)
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return clean_text(value.get("name")) or clean_text(value.get("legalName"))
    return None


def _safe(fn, page, site):
    """Errors are values: one odd field on one page yields None for that field, not a failed page."""
    try:
        return fn(page, site)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError, RecursionError):
        return None
