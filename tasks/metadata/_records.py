"""``Metadata`` (the fields of one article) and ``SiteRule`` (``config/sites/<domain>.toml`` [metadata])."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from newsmill.tasks.errors import ConfigError
from newsmill.tasks.parse import ParsedPage
from newsmill.tasks.selectors import compile_selector

# ---------------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class Metadata:
    title: str | None = None
    authors: tuple[str, ...] = ()
    published_at: datetime | None = None  # the instant, its written offset kept (stored as UTC)
    modified_at: datetime | None = None
    site_name: str | None = None
    canonical_url: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    image_url: str | None = None
    paywalled: bool | None = None
    html_lang: str | None = None  # primary language subtag, lower-case ("en", "es", "de")
    published_date: date | None = None  # the publisher's own calendar date (see publisher_day)


@dataclass(frozen=True)
class SiteRule:
    """Per-site metadata hints: the ``[metadata]`` table of ``config/sites/<domain>.toml``.

    Selectors are CSS (a small subset: ``tag``, ``.class``, ``#id``, ``[attr]``, ``[attr=v]``,
    ``[attr*=v]``, ``[attr^=v]``, ``[attr$=v]``, ``[attr~=v]``, descendant `` `` and child ``>``
    combinators, ``,`` lists) or XPath when they start with ``/`` or ``./``. They are validated when
    the rule is built (:func:`site_rule_from_dict` raises :class:`~tasks.errors.ConfigError`)."""

    domain: str | None = None
    site_name: str | None = None  # fixed site name (beats og:site_name)
    title_selector: str | None = None
    author_selector: str | None = None  # elements whose text (or content attr) is a byline
    date_selector: str | None = None  # published date: datetime/content attr or text
    modified_selector: str | None = None
    language: str | None = None  # fixed language when the page does not say


_SITE_RULE_KEYS = {f.name for f in fields(SiteRule)}
_SELECTOR_KEYS = ("title_selector", "author_selector", "date_selector", "modified_selector")


def site_rule_from_dict(d: dict | None, *, domain: str | None = None) -> SiteRule:
    """Build a :class:`SiteRule` from parsed TOML.

    ``d`` is either the ``[metadata]`` table itself, or a whole site file (recognised by a
    ``metadata`` key or by containing other tables), whose ``metadata`` table is then used and whose
    other tables (cleaning rules) are ignored; a top-level string ``domain`` is picked up. Inside the
    metadata table, unknown keys, non-string values and selectors that do not compile raise
    :class:`~tasks.errors.ConfigError` naming the key."""
    if d is None:
        return SiteRule(domain=domain)
    if not isinstance(d, dict):
        raise ConfigError(f"metadata: expected a table, got {d!r}")
    whole_file = "metadata" in d or any(isinstance(v, (dict, list)) for v in d.values())
    if whole_file:
        if isinstance(d.get("domain"), str) and not domain:
            domain = d["domain"]
        table = d.get("metadata", {})
        if not isinstance(table, dict):
            raise ConfigError(f"metadata: expected a table, got {table!r}")
    else:
        table = d
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _SITE_RULE_KEYS:
            raise ConfigError(f"metadata.{key}: unknown key (known: {', '.join(sorted(_SITE_RULE_KEYS))})")
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"metadata.{key}: expected a string, got {value!r}")
        kwargs[key] = value.strip() if isinstance(value, str) and value.strip() else None
    if domain and not kwargs.get("domain"):
        kwargs["domain"] = domain
    for key in _SELECTOR_KEYS:
        sel = kwargs.get(key)
        if sel:
            try:
                compile_selector(sel)
            except ValueError as exc:
                raise ConfigError(f"metadata.{key}: bad selector {sel!r}: {exc}") from None
    return SiteRule(**kwargs)


def _select(page: ParsedPage, sel: str | None) -> list:
    if not sel:
        return []
    try:
        res = compile_selector(sel)(page.tree)
    except Exception:  # noqa: BLE001 - a selector problem on one page is a None, not a crash
        return []
    return [r for r in res if hasattr(r, "tag")] if isinstance(res, list) else []
