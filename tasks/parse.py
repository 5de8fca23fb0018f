"""Parse a page once: one lxml tree plus the structured data every later step reads.

``ParsedPage`` is built once per page and handed to metadata, copyright, cleaning and trafilatura
(which accepts an lxml tree). Nothing downstream re-parses the HTML string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import urljoin

import lxml.html
from lxml import etree


@dataclass(slots=True)
class ParsedPage:
    url: str
    tree: "lxml.html.HtmlElement"
    jsonld: list[dict] = field(default_factory=list)  # every JSON-LD object, @graph flattened
    meta: dict[str, list[str]] = field(default_factory=dict)  # lower-cased name/property/itemprop -> contents
    links: dict[str, list[str]] = field(default_factory=dict)  # lower-cased rel (READ_RELS) -> hrefs (absolute)
    html_lang: str | None = None
    # derived once per page, on first use, for every field that reads it (fundus' ``Precomputed``):
    # (the JSON-LD article node, the @id index of all nodes) — see ``tasks.metadata.article_node``
    ld: tuple | None = None


_CONTROL_TABLE = bytes.maketrans(b"\x0c", b" ")
_CONTROL_DELETE = bytes(c for c in range(32) if c not in (9, 10, 12, 13))


class ParseError(ValueError):
    """The bytes are not parseable as HTML (becomes ``pages.outcome = parse_error``)."""


def _flatten_jsonld(obj, out: list[dict]) -> None:
    if isinstance(obj, list):
        for item in obj:
            _flatten_jsonld(item, out)
    elif isinstance(obj, dict):
        graph = obj.get("@graph")
        if isinstance(graph, list):
            _flatten_jsonld(graph, out)
            rest = {k: v for k, v in obj.items() if k != "@graph"}
            if len(rest) > 1:
                out.append(rest)
        else:
            out.append(obj)


# The rel types read from ParsedPage.links (metadata: canonical, image_src; copyright: license). A page has
# hundreds of rel links (stylesheets, preloads, icons, nofollow): resolving each cost ~0.8 ms of its parse.
READ_RELS = frozenset({"canonical", "image_src", "license"})
_JSONLD_TYPES = ("application/ld+json", "application/json+ld")

# lxml.html's own class lookup is a Python method called for every element proxy (~560,000 per 181 pages,
# trafilatura's passes included, since copies keep the parser): one class for every element, looked up
# in C. Nothing here uses the form/input/label element classes it would pick.
_LOOKUP = etree.ElementDefaultClassLookup(
    element=lxml.html.HtmlElement, comment=lxml.html.HtmlComment, pi=lxml.html.HtmlProcessingInstruction,
    entity=lxml.html.HtmlEntity)


def parse_html(html: str | bytes, url: str) -> ParsedPage:
    """Parse ``html`` into a :class:`ParsedPage`. Raises :class:`ParseError` on empty/unparseable input."""
    if isinstance(html, bytes):
        data = html
    else:
        data = html.encode("utf-8", "surrogatepass")
    if not data.strip():
        raise ParseError("empty document")
    # C0 control characters are not XML characters: lxml stores them in text nodes but refuses them when
    # trafilatura later sets an element's text ("All strings must be XML compatible"), which lost whole
    # articles. Form feed is HTML whitespace (-> space); the rest carry nothing. Safe on UTF-8 bytes
    # (no multi-byte sequence contains a byte below 0x80).
    data = data.translate(_CONTROL_TABLE, _CONTROL_DELETE)
    try:
        parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True)
        parser.set_element_class_lookup(_LOOKUP)
        tree = lxml.html.document_fromstring(data, parser=parser, base_url=url)
    except (etree.ParserError, ValueError) as exc:
        raise ParseError(f"unparseable HTML: {exc}") from None
    if tree is None or len(tree) == 0:
        raise ParseError("no elements in document")
    # Only the rel links of READ_RELS are read downstream, so resolve those instead of rewriting every
    # link of the page (lxml's make_links_absolute was ~13% of extraction CPU on the AEB pages).
    base = url
    for el in tree.iter("base"):
        href = el.get("href")
        if href:
            try:
                base = urljoin(url, href.strip())
            except ValueError:
                pass
            break

    jsonld: list[dict] = []
    for script in tree.iter("script"):
        if script.get("type") not in _JSONLD_TYPES:
            continue
        raw = script.text or ""
        if not raw.strip():
            continue
        try:
            _flatten_jsonld(json.loads(raw, strict=False), jsonld)  # raw newlines inside strings are common
        except (json.JSONDecodeError, RecursionError):
            continue

    meta: dict[str, list[str]] = {}
    for el in tree.iter("meta"):
        key = el.get("property") or el.get("name") or el.get("itemprop") or el.get("http-equiv")
        content = el.get("content")
        if key and content is not None:
            meta.setdefault(key.strip().lower(), []).append(content.strip())

    links: dict[str, list[str]] = {}
    for el in tree.iter("link", "a"):  # (the tags are matched in C; an XPath testing every element cost 2x)
        rel, href = el.get("rel"), el.get("href")
        if rel is None or not href:
            continue
        rels = [r for r in rel.lower().split() if r in READ_RELS]
        if rels:
            href = href.strip()
            try:
                href = urljoin(base, href)
            except ValueError:  # as make_links_absolute(handle_failures="ignore"): keep it as written
                pass
            for r in rels:
                links.setdefault(r, []).append(href)

    lang = tree.get("lang") or tree.get("xml:lang")
    return ParsedPage(url=url, tree=tree, jsonld=jsonld, meta=meta, links=links,
                      html_lang=lang.strip() if lang else None)
