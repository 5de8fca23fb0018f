"""Title, site name, canonical URL, description, tags, image, paywall, language."""

from __future__ import annotations

import re
from typing import Any, Iterable
from urllib.parse import urljoin, urlsplit

from newsmill.tasks.jsonld import as_list, clean_text, node_types, page_ld, resolve
from newsmill.tasks.metadata._common import _el_text, _first_meta, _ld_name, _meta
from newsmill.tasks.metadata._records import SiteRule, _select
from newsmill.tasks.parse import ParsedPage
from newsmill.tasks.urls import normalize_url

# ---------------------------------------------------------------------------------------------------
# title

_TITLE_SEP = re.compile(r"\s+[|\u2013\u2014\-:·•]\s+")


def _strip_site_suffix(title: str, site: str | None) -> str:
    parts = _TITLE_SEP.split(title)
    if len(parts) < 2:
        return title
    if site:
        s = site.lower()
        if parts[-1].strip().lower() == s:
            return title[: title.lower().rfind(parts[-1].strip().lower())].rstrip(" |-–—:·•")
        if parts[0].strip().lower() == s:
            return title[len(parts[0]):].lstrip(" |-–—:·•")
    # no site name known: drop a short last segment after " | "
    if " | " in title:
        head, _, tail = title.rpartition(" | ")
        if len(tail.split()) <= 4 and len(head.split()) >= 2:
            return head.strip()
    return title


def title_of(page: ParsedPage, site: SiteRule | None = None) -> str | None:
    if site and site.title_selector:
        for el in _select(page, site.title_selector):
            t = clean_text(el.get("content")) or _el_text(el)
            if t:
                return t
    node, _ = page_ld(page)
    if node:
        t = clean_text(node.get("headline")) or clean_text(node.get("name"))
        if t:
            return t
    t = _first_meta(page, "og:title", "twitter:title", "dc.title", "dcterms.title", "parsely-title",
                    "sailthru.title", "headline", "title")
    if t:
        return _strip_site_suffix(t, _first_meta(page, "og:site_name"))
    for el in page.tree.iterfind(".//h1"):
        t = _el_text(el)
        if t:
            return t
    el = page.tree.find(".//title")
    if el is not None:
        t = _el_text(el)
        if t:
            return _strip_site_suffix(t, _first_meta(page, "og:site_name"))
    return None


# ---------------------------------------------------------------------------------------------------
# site name, canonical URL, description, tags, image, paywall, language


def site_name_of(page: ParsedPage, site: SiteRule | None = None) -> str | None:
    """site rule -> og:site_name -> JSON-LD publisher (article node, else a WebSite node) ->
    application-name meta. Never the ``copyright`` meta."""
    if site and site.site_name:
        return site.site_name
    v = _first_meta(page, "og:site_name")
    if v:
        return v
    node, idx = page_ld(page)
    if node:
        name = _ld_name(node.get("publisher"), idx)
        if name:
            return name
    for n in page.jsonld:
        if isinstance(n, dict) and "WebSite" in node_types(n):
            name = clean_text(n.get("name"))
            if name:
                return name
    return _first_meta(page, "application-name", "apple-mobile-web-app-title", "twitter:site:name")


def canonical_url_of(page: ParsedPage, site: SiteRule | None = None) -> str | None:
    """rel=canonical -> og:url -> the page URL; absolute and normalised (tasks.urls.normalize_url)."""
    for cand in list(page.links.get("canonical", ())) + _meta(page, "og:url") + [page.url]:
        if not cand or "{" in cand:
            continue
        u = normalize_url(cand, base=page.url)
        if u:
            return u
    return normalize_url(page.url) or page.url


def description_of(page: ParsedPage, site: SiteRule | None = None) -> str | None:
    node, _ = page_ld(page)
    if node:
        d = clean_text(node.get("description"))
        if d:
            return d
    return _first_meta(page, "og:description", "description", "twitter:description", "dc.description",
                       "dcterms.description", "sailthru.description")


def _split_tags(values: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for v in values:
        if isinstance(v, list):
            out.extend(_split_tags(v))
            continue
        if isinstance(v, dict):
            v = v.get("name")
        s = clean_text(v)
        if not s:
            continue
        parts = s.split(",") if "," in s else (s.split(";") if ";" in s else [s])
        out.extend(p.strip() for p in parts if p.strip())
    return out


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out = []
    for i in items:
        k = i.casefold()
        if k not in seen and len(i) <= 100:
            seen.add(k)
            out.append(i)
    return tuple(out)


def tags_of(page: ParsedPage, site: SiteRule | None = None) -> tuple[str, ...]:
    """JSON-LD keywords -> article:tag -> keywords / news_keywords / parsely-tags meta."""
    node, _ = page_ld(page)
    if node:
        tags = _dedupe(_split_tags(as_list(node.get("keywords"))))
        if tags:
            return tags
    for keys in (("article:tag", "og:article:tag"), ("news_keywords",), ("keywords",),
                 ("parsely-tags",), ("sailthru.tags",)):
        tags = _dedupe(_split_tags(_meta(page, *keys)))
        if tags:
            return tags
    return ()


def _abs_http(url: Any, base: str) -> str | None:
    s = clean_text(url)
    if not s or "{" in s:
        return None
    u = urljoin(base, s)
    return u if urlsplit(u).scheme in ("http", "https") and urlsplit(u).netloc else None


def image_url_of(page: ParsedPage, site: SiteRule | None = None) -> str | None:
    node, idx = page_ld(page)
    if node:
        for img in as_list(node.get("image")) + as_list(node.get("thumbnailUrl")):
            img = resolve(img, idx)
            if isinstance(img, dict):
                img = img.get("url") or img.get("contentUrl")
                if isinstance(img, list):
                    img = img[0] if img else None
            u = _abs_http(img, page.url)
            if u:
                return u
    for key in ("og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"):
        for v in _meta(page, key):
            u = _abs_http(v, page.url)
            if u:
                return u
    for v in page.links.get("image_src", ()):
        u = _abs_http(v, page.url)
        if u:
            return u
    return None


def _truthy(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        v = value.strip().lower().rsplit("/", 1)[-1]
        if v in ("true", "yes", "1"):
            return True
        if v in ("false", "no", "0"):
            return False
    return None


def paywalled_of(page: ParsedPage, site: SiteRule | None = None) -> bool | None:
    """JSON-LD isAccessibleForFree (article node, then its hasPart) -> article:content_tier meta.
    ``isAccessibleForFree: false`` means paywalled (True)."""
    node, idx = page_ld(page)
    if node:
        free = _truthy(node.get("isAccessibleForFree"))
        if free is not None:
            return not free
        for part in as_list(node.get("hasPart")):
            part = resolve(part, idx)
            if isinstance(part, dict):
                free = _truthy(part.get("isAccessibleForFree"))
                if free is False:
                    return True
    tier = _first_meta(page, "article:content_tier")
    if tier:
        t = tier.lower()
        if t in ("locked", "metered", "premium", "paid"):
            return True
        if t == "free":
            return False
    return None


def _lang_code(value: Any) -> str | None:
    s = clean_text(value)
    if not s:
        return None
    m = re.match(r"([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)*$", s)
    return m.group(1).lower() if m else None


def language_of(page: ParsedPage, site: SiteRule | None = None) -> str | None:
    """<html lang> -> JSON-LD inLanguage -> og:locale / content-language / dc.language -> site rule."""
    code = _lang_code(page.html_lang)
    if code:
        return code
    node, _ = page_ld(page)
    if node:
        code = _lang_code(node.get("inLanguage") if not isinstance(node.get("inLanguage"), dict)
                          else node["inLanguage"].get("alternateName"))
        if code:
            return code
    for key in ("og:locale", "content-language", "dc.language", "dcterms.language", "language"):
        code = _lang_code(_first_meta(page, key))
        if code:
            return code
    return _lang_code(site.language) if site else None
