"""Article metadata from a parsed page: one small function per field, one fixed fallback order.

Every field function takes the :class:`~tasks.parse.ParsedPage` (one lxml tree, the flattened JSON-LD
list, the meta dict, the rel-links dict) plus an optional :class:`SiteRule`, and walks its sources in a
fixed order, returning the first usable value::

    site rule (config/sites/<domain>.toml [metadata])  ->  JSON-LD article node  ->  meta tags  ->  visible page

Exceptions to the generic order, documented per field: ``site_name`` prefers ``og:site_name`` over the
JSON-LD publisher (the publisher of a syndicated story is often the wire, not the site), and
``canonical_url`` is rel=canonical -> og:url -> page URL.

Errors are values: malformed JSON-LD, unparseable dates, odd meta values give ``None`` (or an empty
tuple), never an exception. Nothing here re-parses the HTML; htmldate (the last date fallback) is
given the lxml tree (it deep-copies before pruning, so the tree is not mutated).

Public API: :class:`Metadata`, :class:`SiteRule`, :func:`site_rule_from_dict`, :func:`extract_metadata`,
plus helpers re-used by ``tasks.copyright`` and tests: :func:`article_node`, :func:`parse_date`,
:func:`clean_authors`.
"""

from __future__ import annotations

import html as _html
import re
import unicodedata
import warnings
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import urljoin, urlsplit

from lxml import etree

from newsmill.tasks.errors import ConfigError
from newsmill.tasks.parse import ParsedPage
from newsmill.tasks.urls import normalize_url

__all__ = [
    "Metadata",
    "SiteRule",
    "site_rule_from_dict",
    "extract_metadata",
    "article_node",
    "parse_date",
    "clean_authors",
    "css_to_xpath",
]


# ---------------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class Metadata:
    title: str | None = None
    authors: tuple[str, ...] = ()
    published_at: datetime | None = None
    modified_at: datetime | None = None
    site_name: str | None = None
    canonical_url: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    image_url: str | None = None
    paywalled: bool | None = None
    html_lang: str | None = None  # primary language subtag, lower-case ("en", "es", "de")


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
                _compile_selector(sel)
            except ValueError as exc:
                raise ConfigError(f"metadata.{key}: bad selector {sel!r}: {exc}") from None
    return SiteRule(**kwargs)


# ---------------------------------------------------------------------------------------------------
# tiny CSS -> XPath (cssselect is not a dependency)

_CSS_SIMPLE = re.compile(
    r"""(?P<tag>[a-zA-Z][\w-]*|\*)|
        \.(?P<cls>[\w-]+)|
        \#(?P<id>[\w-]+)|
        \[\s*(?P<attr>[\w:-]+)\s*(?:(?P<op>[*^$~]?=)\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\]\s]+))\s*)?\]""",
    re.X,
)


def _xpath_literal(s: str) -> str:
    if "'" not in s:
        return f"'{s}'"
    if '"' not in s:
        return f'"{s}"'
    return "concat(" + ", \"'\", ".join(f"'{p}'" for p in s.split("'")) + ")"


def _css_compound(comp: str) -> str:
    tag, preds, pos = "*", [], 0
    while pos < len(comp):
        m = _CSS_SIMPLE.match(comp, pos)
        if not m:
            raise ValueError(f"unsupported CSS near {comp[pos:]!r}")
        if m.group("tag"):
            if pos:
                raise ValueError("a tag name must come first in a compound selector")
            tag = m.group("tag")
        elif m.group("cls"):
            preds.append("contains(concat(' ', normalize-space(@class), ' '), "
                         f"{_xpath_literal(' ' + m.group('cls') + ' ')})")
        elif m.group("id"):
            preds.append(f"@id={_xpath_literal(m.group('id'))}")
        else:
            a, op = m.group("attr"), m.group("op")
            v = next((g for g in (m.group("dq"), m.group("sq"), m.group("bare")) if g is not None), "")
            lit = _xpath_literal(v)
            preds.append({
                None: f"@{a}",
                "=": f"@{a}={lit}",
                "*=": f"contains(@{a}, {lit})",
                "^=": f"starts-with(@{a}, {lit})",
                "$=": f"substring(@{a}, string-length(@{a}) - {len(v) - 1}) = {lit}",
                "~=": f"contains(concat(' ', normalize-space(@{a}), ' '), {_xpath_literal(' ' + v + ' ')})",
            }[op])
        pos = m.end()
    return tag + "".join(f"[{p}]" for p in preds)


def css_to_xpath(selector: str) -> str:
    """Translate the small CSS subset of :class:`SiteRule` to an XPath (raises ValueError)."""
    out = []
    for part in selector.split(","):
        # tokens: compounds and combinators; whitespace inside [...] is kept
        tokens, buf, depth = [], "", 0
        for ch in part.strip() + " ":
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
            if depth == 0 and (ch.isspace() or ch == ">"):
                if buf:
                    tokens.append(buf)
                    buf = ""
                if ch == ">":
                    tokens.append(">")
                continue
            buf += ch
        if not tokens or tokens[0] == ">" or tokens[-1] == ">" or depth:
            raise ValueError(f"bad selector {part.strip()!r}")
        xp, axis = ".", "//"
        for tok in tokens:
            if tok == ">":
                if axis == "/":
                    raise ValueError("double combinator")
                axis = "/"
                continue
            xp += axis + _css_compound(tok)
            axis = "//"
        out.append(xp)
    return " | ".join(out)


_SELECTOR_CACHE: dict[str, Any] = {}


def _compile_selector(sel: str):
    from lxml import etree

    if sel in _SELECTOR_CACHE:
        return _SELECTOR_CACHE[sel]
    xp = sel if sel.startswith(("/", "./", "(")) else css_to_xpath(sel)
    try:
        compiled = etree.XPath(xp)
    except etree.XPathSyntaxError as exc:
        raise ValueError(str(exc)) from None
    if len(_SELECTOR_CACHE) < 512:
        _SELECTOR_CACHE[sel] = compiled
    return compiled


def _select(page: ParsedPage, sel: str | None) -> list:
    if not sel:
        return []
    try:
        res = _compile_selector(sel)(page.tree)
    except Exception:  # noqa: BLE001 - a selector problem on one page is a None, not a crash
        return []
    return [r for r in res if hasattr(r, "tag")] if isinstance(res, list) else []


# ---------------------------------------------------------------------------------------------------
# shared helpers

_WS = re.compile(r"\s+")


def _clean_text(value: Any) -> str | None:
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


def _el_text(el) -> str | None:
    try:
        return _clean_text(el.text_content())
    except (ValueError, AttributeError):
        return None


def _meta(page: ParsedPage, *names: str) -> list[str]:
    out: list[str] = []
    for n in names:
        for v in page.meta.get(n, ()):
            c = _clean_text(v)
            if c:
                out.append(c)
    return out


def _first_meta(page: ParsedPage, *names: str) -> str | None:
    for n in names:
        vals = _meta(page, n)
        if vals:
            return vals[0]
    return None


def _types(node: dict) -> set[str]:
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
_PAGE_TYPES = frozenset({"WebPage", "ItemPage", "CollectionPage", "AboutPage", "ProfilePage"})


def _id_index(page: ParsedPage) -> dict[str, dict]:
    idx: dict[str, dict] = {}
    for node in page.jsonld:
        if isinstance(node, dict):
            nid = node.get("@id")
            if isinstance(nid, str) and nid not in idx:
                idx[nid] = node
    return idx


def _resolve(value: Any, idx: dict[str, dict]) -> Any:
    """Replace a bare ``{"@id": ...}`` reference by the node it points to (one level)."""
    if isinstance(value, dict) and set(value) <= {"@id", "@type"} and isinstance(value.get("@id"), str):
        return idx.get(value["@id"], value)
    return value


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def article_node(page: ParsedPage) -> dict | None:
    """The JSON-LD node describing the article itself (NewsArticle, Article, BlogPosting, ...).

    Image, WebPage, Organization, BreadcrumbList nodes are never returned. A WebPage's ``mainEntity``
    that is an article counts. Among several, the first specific news/article type with a headline
    wins, then any article-typed node."""
    candidates: list[dict] = []
    idx = _id_index(page)
    for node in page.jsonld:
        if not isinstance(node, dict):
            continue
        if _types(node) & ARTICLE_TYPES:
            candidates.append(node)
        elif _types(node) & _PAGE_TYPES:
            for me in _as_list(node.get("mainEntity")):
                me = _resolve(me, idx)
                if isinstance(me, dict) and _types(me) & ARTICLE_TYPES:
                    candidates.append(me)
    if not candidates:
        return None
    for pref in (lambda n: _types(n) & _PREFERRED_TYPES and (n.get("headline") or n.get("name")),
                 lambda n: _types(n) & _PREFERRED_TYPES,
                 lambda n: True):
        for n in candidates:
            if pref(n):
                return n
    return None  # pragma: no cover


def _ld(page: ParsedPage) -> tuple[dict | None, dict[str, dict]]:
    return article_node(page), _id_index(page)


def _ld_name(value: Any, idx: dict[str, dict]) -> str | None:
    value = _resolve(value, idx)
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return _clean_text(value.get("name")) or _clean_text(value.get("legalName"))
    return None


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
            t = _clean_text(el.get("content")) or _el_text(el)
            if t:
                return t
    node, _ = _ld(page)
    if node:
        t = _clean_text(node.get("headline")) or _clean_text(node.get("name"))
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
# authors

_BY_PREFIX = re.compile(
    r"^\s*(?:(?:written|reported|story|text|words|photos?|analysis|opinion|commentary|review|column|interview"
    r"|perspective|essay|video|audio|report|reporting|un\s+artículo|ein\s+beitrag|une\s+analyse)\s+)?"
    r"(?:by|from|por|von|par|de|di|door|av|af|texto|texte|text)\s*[:\-]?\s+",
    re.I,
)
_BY_ONLY = re.compile(r"^\s*(?:by|por|von|par)\s*[:\-]?\s*$", re.I)
_SPLIT = re.compile(
    r"\s*(?:;|,|\s&\s|\s\+\s|\band\b|(?-i:\sy\s)|(?-i:\sY\s)(?=[A-ZÀ-Þ][a-zà-ÿ])|\bund\b|\bet\b|(?-i:\se\s)"
    r"|\bsowie\b|\bwith\b|\bcon\b|\bmit\b|\bavec\b|/)\s*",
    re.I,
)
_ROLE_WORDS = {
    "writer", "reporter", "reporters", "correspondent", "correspondents", "editor", "editors", "staff",
    "contributor", "contributing", "columnist", "photographer", "producer", "bureau", "chief",
    "senior", "associate", "analyst", "host", "anchor", "intern", "fellow", "freelance",
    "freelancer", "special", "investigative", "political", "national", "international", "science",
    "health", "business", "sports", "reporting", "desk", "newsroom", "team", "admin", "administrator",
    "redacción", "redaccion", "redaktion", "redakteur", "redakteurin", "korrespondent",
    "korrespondentin", "journaliste", "journalist", "journalistin", "periodista", "corresponsal",
    "envoyé", "envoyée", "rédaction", "rédacteur", "rédactrice", "agencia", "agencias", "agentur",
    "agenturen", "wire", "wires", "services", "service", "updated", "published", "posted", "editorial",
    "editorials", "opinion", "media", "news", "newspaper", "network", "press", "agency", "group", "inc",
    "llc", "ltd", "gmbh", "magazine", "online", "digital", "associated", "newsletter", "board",
}
_WIRE_NAMES = {
    "ap", "the associated press", "associated press", "reuters", "afp", "agence france-presse",
    "dpa", "efe", "ansa", "epa", "upi", "bloomberg", "cnn", "npr", "bbc", "pa", "pa media",
    "europa press", "kna", "epd", "kyodo", "xinhua", "staff", "staff reports", "wire reports",
}
_TRAILING_WIRE = re.compile(
    r"\s+(?:the\s+)?(?:associated\s+press|ap|reuters|afp|dpa|efe|bloomberg(?:\s+news)?|npr|upi)\s*$", re.I)
_WEEKDAY_TAIL = re.compile(
    r"\s+(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|updated|published|posted|lunes|martes"
    r"|miércoles|jueves|viernes|sábado|domingo|montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag"
    r"|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|commented|wrote|says|said)\b.*$", re.I)
_EMAIL = re.compile(r"\S+@\S+\.\w+")
_URLISH = re.compile(r"(?:https?://|www\.)\S+|\S+\.(?:com|org|net|de|es|fr|co\.uk)(?:/\S*)?\b", re.I)
_PAREN = re.compile(r"\s*[\(\[][^\)\]]*[\)\]]\s*")
_IS_A = re.compile(r"\s+(?:is|was|are|ist|es|est)\s+(?:a|an|the|ein|eine|un|una|une|le|la)\b.*$", re.I)


def _looks_like_name(s: str) -> bool:
    if not s or len(s) > 60 or any(ch.isdigit() for ch in s):
        return False
    words = s.split()
    if not 1 <= len(words) <= 6:
        return False
    if not any(ch.isalpha() for ch in s):
        return False
    low = s.lower()
    if low in _WIRE_NAMES:
        return False
    lw = [w.strip(".,").lower() for w in words]
    if all(w in _ROLE_WORDS or w in {"the", "a", "of", "for", "de", "del", "der", "die", "du", "le", "la"}
           for w in lw):
        return False
    if any(w in _ROLE_WORDS for w in lw) and len(words) >= 2 and not words[0][:1].isupper():
        return False
    # a person's name: at least one capitalised word
    if not any(w[:1].isupper() for w in words):
        return False
    return True


def _is_role_segment(s: str) -> bool:
    low = s.lower().strip(" .")
    if low in _WIRE_NAMES:
        return True
    words = [w.strip(".,").lower() for w in re.split(r"[\s-]+", low)]
    if not words:
        return True
    if any(w in _ROLE_WORDS for w in words):
        return True
    if low.startswith(("for ", "special to ", "para ", "für ", "pour ")) or re.search(
            r"\s(?:for|of|at|to|para|für|pour|de)$", low):
        return True
    if re.fullmatch(r"[A-Z]{2,5}", s.strip(" .")):  # an acronym: an organisation, not a person
        return True
    return False


def _normalise_name(s: str) -> str:
    s = s.strip(" .,;:-–—|·•\"'")
    if s.isupper() and len(s) > 3:
        s = " ".join(w.capitalize() if not re.fullmatch(r"[A-Z]\.?", w) else w for w in s.split())
    return s


def _split_byline(raw: str) -> list[str]:
    s = _clean_text(raw) or ""
    if not s or _BY_ONLY.match(s):
        return []
    s = _PAREN.sub(" ", s)
    s = _EMAIL.sub(" ", s)
    s = _URLISH.sub(" ", s)
    s = re.sub(r"(?<!\w)@\w+", " ", s)  # twitter handles
    # "Jane Doe | AP", "Jane Doe — Staff Writer": keep what precedes the bar if the rest is a role
    pieces = re.split(r"\s+[|\u2013\u2014·•]\s+|\s+-\s+", s)
    if len(pieces) > 1:
        s = pieces[0] if all(_is_role_segment(p) or not _looks_like_name(p) for p in pieces[1:]) \
            else " , ".join(pieces)
    s = _IS_A.sub("", s)
    s = _BY_PREFIX.sub("", s)
    out: list[str] = []
    for part in _SPLIT.split(s):
        part = _BY_PREFIX.sub("", part.strip())
        part = _TRAILING_WIRE.sub("", part)  # "TERESA ALVARADO Associated Press"
        part = _WEEKDAY_TAIL.sub("", part)  # "Jeff Foust Monday" (byline and date in one element)
        part = _normalise_name(part)
        if not part or _is_role_segment(part) or re.match(r"(?:the|el|la|der|die|das|le|les)\s", part, re.I):
            continue  # an organisation ("The Open Ledger"), not a person
        if _looks_like_name(part):
            out.append(part)
    return out


def clean_authors(raw: Iterable[str]) -> tuple[str, ...]:
    """Split, strip and dedupe byline strings into person names (order kept, case-insensitive)."""
    seen: set[str] = set()
    out: list[str] = []
    for item in raw:
        for name in _split_byline(item):
            key = name.casefold()
            if key not in seen:
                seen.add(key)
                out.append(name)
    return tuple(out)


def _ld_author_strings(value: Any, idx: dict[str, dict]) -> list[str]:
    out: list[str] = []
    for a in _as_list(value):
        a = _resolve(a, idx)
        if isinstance(a, str):
            out.append(a)
        elif isinstance(a, dict):
            t = _types(a)
            if t and "Person" not in t:
                continue  # an Organization as author is not a byline
            name = _clean_text(a.get("name"))
            if not name:
                gn, fn = _clean_text(a.get("givenName")), _clean_text(a.get("familyName"))
                name = " ".join(x for x in (gn, fn) if x) or None
            if name:
                out.append(name)
    return out


_AUTHOR_META = ("author", "article:author", "og:article:author", "parsely-author", "sailthru.author",
                "dc.creator", "dcterms.creator", "byl", "byline", "cxenseparse:author", "citation_author")

_BYLINE_CLASSES = frozenset({"byline", "author-name", "byline__name", "author", "autor", "auteur"})


def _byline_classes(els: list) -> list:
    return [el for el in els if _BYLINE_CLASSES.intersection((el.get("class") or "").split())]


# the visible byline, in order of trust. Attribute nodes are matched and their element taken (libxml2
# does that ~5x faster than testing every element); class tokens are checked exactly in Python.
_BYLINE_XPATH = (
    (etree.XPath(".//@rel[. = 'author']/.."), None),
    (etree.XPath(".//@itemprop[. = 'author']/..//@itemprop[. = 'name']/.."), None),
    (etree.XPath(".//@itemprop[. = 'author']/parent::*[not(.//*[@itemprop = 'name'])]"), None),
    (etree.XPath(".//@class[contains(., 'byline') or contains(., 'author') or contains(., 'autor')"
                 " or contains(., 'auteur')]/.."), _byline_classes),
)


def _in_comments(el) -> bool:
    """Inside a comments section (comment authors are not article authors)."""
    for anc in el.iterancestors():
        marker = f"{anc.get('class') or ''} {anc.get('id') or ''}".lower()
        if "comment" in marker or "respond" in marker:
            return True
    return False


def authors_of(page: ParsedPage, site: SiteRule | None = None) -> tuple[str, ...]:
    """site rule -> JSON-LD author/creator (Person or string) -> author meta tags -> visible byline.
    Names equal to the site's own name are not authors."""
    names = _authors_raw(page, site)
    site_name = (_safe(site_name_of, page, site) or "").casefold()
    return tuple(n for n in names if n.casefold() != site_name) if site_name else names


def _authors_raw(page: ParsedPage, site: SiteRule | None = None) -> tuple[str, ...]:
    if site and site.author_selector:
        names = clean_authors(_clean_text(el.get("content")) or _el_text(el) or ""
                              for el in _select(page, site.author_selector))
        if names:
            return names
    node, idx = _ld(page)
    if node:
        names = clean_authors(_ld_author_strings(node.get("author"), idx)
                              or _ld_author_strings(node.get("creator"), idx))
        if names:
            return names
    for key in _AUTHOR_META:
        vals = [v for v in _meta(page, key) if not v.lower().startswith(("http://", "https://"))]
        names = clean_authors(vals)
        if names:
            return names
    for xp, keep in _BYLINE_XPATH:
        try:
            els = xp(page.tree)
        except Exception:  # noqa: BLE001
            continue
        if keep is not None:
            els = keep(els)
        texts = []
        for el in els:
            if el.tag in ("link", "meta") or _in_comments(el):
                continue
            t = _clean_text(" ".join(el.itertext()))
            if t and len(t) <= 200:
                texts.append(t)
        names = clean_authors(texts)
        if names:
            return names
    return ()


# ---------------------------------------------------------------------------------------------------
# dates

_TZINFOS = {
    "UTC": 0, "GMT": 0, "Z": 0, "UT": 0, "WET": 0, "BST": 3600, "IST": 3600, "CET": 3600, "MEZ": 3600,
    "CEST": 7200, "MESZ": 7200, "EET": 7200, "EEST": 10800,
    "EST": -5 * 3600, "EDT": -4 * 3600, "CST": -6 * 3600, "CDT": -5 * 3600, "MST": -7 * 3600,
    "MDT": -6 * 3600, "PST": -8 * 3600, "PDT": -7 * 3600, "AKST": -9 * 3600, "AKDT": -8 * 3600,
    "HST": -10 * 3600,
}
_MIN_YEAR, _MAX_YEAR = 1900, 2100


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None or dt.utcoffset() is None else dt


def parse_date(value: Any) -> datetime | None:
    """A timezone-aware datetime from an ISO-8601 / RFC-2822 / common date string or epoch number;
    None when it does not parse or needs guessing (a bare year, a time without a date).
    Naive values are taken as UTC."""
    from dateutil import parser as du

    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(int(value))
    s = _clean_text(value)
    if not s or len(s) > 64:
        return None
    try:
        if re.fullmatch(r"\d{10}(?:\d{3})?", s):  # unix epoch (s or ms)
            ts = int(s) / (1000 if len(s) == 13 else 1)
            dt = datetime.fromtimestamp(ts, tz=timezone.utc)
        else:
            if not re.search(r"\d{4}", s) or not re.search(r"\d{1,2}\D+\d{1,2}|\d{8}|[A-Za-zé]{3,}", s):
                return None
            try:
                dt = du.isoparse(s)
            except (ValueError, OverflowError):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    dayfirst = bool(re.match(r"\d{1,2}\.\s?\d{1,2}\.\s?\d{4}", s))  # 06.07.2019
                    dt = du.parse(s, tzinfos=_TZINFOS, default=datetime(2000, 1, 1), dayfirst=dayfirst)
                    # reject a parse that had to invent the day (e.g. "2019" or "June 2019")
                    dt2 = du.parse(s, tzinfos=_TZINFOS, default=datetime(2001, 2, 2), dayfirst=dayfirst)
                    if dt.day != dt2.day or dt.month != dt2.month:
                        return None
    except (ValueError, OverflowError, TypeError, OSError, AttributeError):
        return None
    if not _MIN_YEAR <= dt.year <= _MAX_YEAR:
        return None
    try:
        return _aware(dt)
    except (ValueError, OverflowError):
        return None


def _date_from_elements(els: list) -> datetime | None:
    for el in els:
        for attr in ("datetime", "content", "data-datetime", "data-date", "title"):
            d = parse_date(el.get(attr))
            if d:
                return d
        d = parse_date(_el_text(el))
        if d:
            return d
    return None


_PUBLISHED_META = (
    "article:published_time", "og:article:published_time", "datepublished", "article.published",
    "published_time", "publishdate", "publish-date", "pubdate", "parsely-pub-date", "sailthru.date",
    "dcterms.created", "dcterms.issued", "dc.date.issued", "dc.date.created", "dcterms.date", "dc.date",
    "date", "cxenseparse:recs:publishtime", "citation_publication_date", "og:published_time",
    "article:published",
)
_MODIFIED_META = (
    "article:modified_time", "og:article:modified_time", "datemodified", "og:updated_time",
    "article.updated", "dcterms.modified", "dc.date.modified", "last-modified-date", "modified_time",
    "article:modified", "lastmod",
)


def published_of(page: ParsedPage, site: SiteRule | None = None) -> datetime | None:
    if site and site.date_selector:
        d = _date_from_elements(_select(page, site.date_selector))
        if d:
            return d
    node, _ = _ld(page)
    if node:
        for key in ("datePublished", "dateCreated", "uploadDate"):
            d = parse_date(node.get(key))
            if d:
                return d
    for key in _PUBLISHED_META:
        for v in _meta(page, key):
            d = parse_date(v)
            if d:
                return d
    try:
        els = page.tree.xpath(
            ".//time[@itemprop='datePublished' or @pubdate or contains(@class,'publish')]"
            " | .//*[@itemprop='datePublished']"
            " | .//article//time[@datetime]"
            " | .//time[@datetime]")
    except Exception:  # noqa: BLE001
        els = []
    d = _date_from_elements([e for e in els if "modif" not in (e.get("itemprop") or "").lower()
                             and "updat" not in (e.get("class") or "").lower()])
    if d:
        return d
    return _htmldate(page, original=True)


def modified_of(page: ParsedPage, site: SiteRule | None = None) -> datetime | None:
    if site and site.modified_selector:
        d = _date_from_elements(_select(page, site.modified_selector))
        if d:
            return d
    node, _ = _ld(page)
    if node:
        d = parse_date(node.get("dateModified"))
        if d:
            return d
    for key in _MODIFIED_META:
        for v in _meta(page, key):
            d = parse_date(v)
            if d:
                return d
    try:
        els = page.tree.xpath(
            ".//*[@itemprop='dateModified']"
            " | .//time[contains(@class,'updated') or contains(@class,'modified')]")
    except Exception:  # noqa: BLE001
        els = []
    return _date_from_elements(els)  # no htmldate guess for the modified date


def _htmldate(page: ParsedPage, *, original: bool) -> datetime | None:
    """Last fallback for the published date: htmldate on the tree (it copies before pruning)."""
    try:
        from htmldate import find_date

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = find_date(page.tree, extensive_search=False, original_date=original,
                          outputformat="%Y-%m-%dT%H:%M:%S%z", url=page.url)
    except Exception:  # noqa: BLE001 - third-party heuristics: a failure is "no date"
        return None
    return parse_date(s) if s else None


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
    node, idx = _ld(page)
    if node:
        name = _ld_name(node.get("publisher"), idx)
        if name:
            return name
    for n in page.jsonld:
        if isinstance(n, dict) and "WebSite" in _types(n):
            name = _clean_text(n.get("name"))
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
    node, _ = _ld(page)
    if node:
        d = _clean_text(node.get("description"))
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
        s = _clean_text(v)
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
    node, _ = _ld(page)
    if node:
        tags = _dedupe(_split_tags(_as_list(node.get("keywords"))))
        if tags:
            return tags
    for keys in (("article:tag", "og:article:tag"), ("news_keywords",), ("keywords",),
                 ("parsely-tags",), ("sailthru.tags",)):
        tags = _dedupe(_split_tags(_meta(page, *keys)))
        if tags:
            return tags
    return ()


def _abs_http(url: Any, base: str) -> str | None:
    s = _clean_text(url)
    if not s or "{" in s:
        return None
    u = urljoin(base, s)
    return u if urlsplit(u).scheme in ("http", "https") and urlsplit(u).netloc else None


def image_url_of(page: ParsedPage, site: SiteRule | None = None) -> str | None:
    node, idx = _ld(page)
    if node:
        for img in _as_list(node.get("image")) + _as_list(node.get("thumbnailUrl")):
            img = _resolve(img, idx)
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
    node, idx = _ld(page)
    if node:
        free = _truthy(node.get("isAccessibleForFree"))
        if free is not None:
            return not free
        for part in _as_list(node.get("hasPart")):
            part = _resolve(part, idx)
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
    s = _clean_text(value)
    if not s:
        return None
    m = re.match(r"([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)*$", s)
    return m.group(1).lower() if m else None


def language_of(page: ParsedPage, site: SiteRule | None = None) -> str | None:
    """<html lang> -> JSON-LD inLanguage -> og:locale / content-language / dc.language -> site rule."""
    code = _lang_code(page.html_lang)
    if code:
        return code
    node, _ = _ld(page)
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


# ---------------------------------------------------------------------------------------------------


def extract_metadata(page: ParsedPage, site: SiteRule | None = None) -> Metadata:
    """All metadata fields of ``page``; never raises for data problems."""
    return Metadata(
        title=_safe(title_of, page, site),
        authors=_safe(authors_of, page, site) or (),
        published_at=_safe(published_of, page, site),
        modified_at=_safe(modified_of, page, site),
        site_name=_safe(site_name_of, page, site),
        canonical_url=_safe(canonical_url_of, page, site),
        description=_safe(description_of, page, site),
        tags=_safe(tags_of, page, site) or (),
        image_url=_safe(image_url_of, page, site),
        paywalled=_safe(paywalled_of, page, site),
        html_lang=_safe(language_of, page, site),
    )


def _safe(fn, page, site):
    """Errors are values: one odd field on one page yields None for that field, not a failed page."""
    try:
        return fn(page, site)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError, RecursionError):
        return None
