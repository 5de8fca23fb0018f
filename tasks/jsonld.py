"""The JSON-LD of a parsed page and the cleaning of the values read from it, shared by ``tasks.metadata``
and ``tasks.copyright``: the article node and the ``@id`` index (computed once per page, ``page_ld``),
``@id`` references, ``@type`` sets, and ``clean_text`` (HTML entities, NFC, no-break and zero-width spaces,
whitespace collapsed; None for non-text values)."""

from __future__ import annotations

import html as _html
import re
import unicodedata
from typing import Any

from newsmill.tasks.parse import ParsedPage

__all__ = ["clean_text", "as_list", "resolve", "id_index", "node_types", "article_node", "page_ld", "ARTICLE_TYPES",
           "PAGE_TYPES"]

_WS = re.compile(r"\s+")


def clean_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    s = _html.unescape(value)
    s = unicodedata.normalize("NFC", s).replace("\u00a0", " ").replace("\u200b", "")
    s = _WS.sub(" ", s).strip()
    return s or None


def node_types(node: dict) -> set[str]:
    t = node.get("@type")
    if isinstance(t, str):
        return {t.rsplit("/", 1)[-1]}
    if isinstance(t, list):
        return {x.rsplit("/", 1)[-1] for x in t if isinstance(x, str)}
    return set()


ARTICLE_TYPES = frozenset({
    "Article", "NewsArticle", "ReportageNewsArticle", "AnalysisNewsArticle", "OpinionNewsArticle",
    "BackgroundNewsArticle", "ReviewNewsArticle", "AskPublicNewsArticle", "BlogPosting",
    "LiveBlogPosting", "SocialMediaPosting", "DiscussionForumPosting", "Report", "TechArticle",
    "ScholarlyArticle", "SatiricalArticle", "AdvertiserContentArticle", "MedicalScholarlyArticle",
    "Review", "CreativeWork",
})
_PREFERRED_TYPES = ARTICLE_TYPES - {"CreativeWork", "Review", "SocialMediaPosting"}
PAGE_TYPES = frozenset({"WebPage", "ItemPage", "CollectionPage", "AboutPage", "ProfilePage"})


def id_index(page: ParsedPage) -> dict[str, dict]:
    idx: dict[str, dict] = {}
    for node in page.jsonld:
        if isinstance(node, dict):
            nid = node.get("@id")
            if isinstance(nid, str) and nid not in idx:
                idx[nid] = node
    return idx


def resolve(value: Any, idx: dict[str, dict]) -> Any:
    """Replace a bare ``{"@id": ...}`` reference by the node it points to (one level)."""
    if isinstance(value, dict) and set(value) <= {"@id", "@type"} and isinstance(value.get("@id"), str):
        return idx.get(value["@id"], value)
    return value


def as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def article_node(page: ParsedPage) -> dict | None:
    """The JSON-LD node describing the article itself (computed once per page, see :func:`page_ld`)."""
    return page_ld(page)[0]


def _find_article_node(page: ParsedPage, idx: dict[str, dict]) -> dict | None:
    """The JSON-LD node describing the article itself (NewsArticle, Article, BlogPosting, ...).

    Image, WebPage, Organization, BreadcrumbList nodes are never returned. A WebPage's ``mainEntity``
    that is an article counts. Among several, the first specific news/article type with a headline
    wins, then any article-typed node."""
    candidates: list[dict] = []
    for node in page.jsonld:
        if not isinstance(node, dict):
            continue
        if node_types(node) & ARTICLE_TYPES:
            candidates.append(node)
        elif node_types(node) & PAGE_TYPES:
            for me in as_list(node.get("mainEntity")):
                me = resolve(me, idx)
                if isinstance(me, dict) and node_types(me) & ARTICLE_TYPES:
                    candidates.append(me)
    if not candidates:
        return None
    for pref in (lambda n: node_types(n) & _PREFERRED_TYPES and (n.get("headline") or n.get("name")),
                 lambda n: node_types(n) & _PREFERRED_TYPES,
                 lambda n: True):
        for n in candidates:
            if pref(n):
                return n
    return None  # pragma: no cover


def page_ld(page: ParsedPage) -> tuple[dict | None, dict[str, dict]]:
    """(article node, @id index), precomputed on the page the first time a field asks: every metadata
    field and the copyright evidence read it, and used to find it again each."""
    if page.ld is None:
        idx = id_index(page)
        page.ld = (_find_article_node(page, idx), idx)
    return page.ld
