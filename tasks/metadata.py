"""Article metadata from a parsed page: one small function per field, one fixed fallback order.

Every field function takes the :class:`~tasks.parse.ParsedPage` (one lxml tree, the flattened JSON-LD
list, the meta dict, the rel-links dict) plus an optional :class:`SiteRule`, and walks its sources in a
fixed order, returning the first usable value::

    site rule (config/sites/<domain>.toml [metadata])  ->  JSON-LD article node  ->  meta tags  ->  visible page

Exceptions to the generic order, documented per field: ``site_name`` prefers ``og:site_name`` over the
JSON-LD publisher (the publisher of a syndicated story is often the wire, not the site), and
``canonical_url`` is rel=canonical -> og:url -> page URL.

Authors (:func:`authors_of`): every source's byline strings are split into names and each name is
classified with the vocabularies of ``config/authors.toml`` (prefixes, UI strings, degrees, job titles,
newsroom roles, wire credits) as a person, a user handle, an organisation or role credit, or nothing. The
first source naming a person wins (site rule, JSON-LD, meta, visible byline nodes, an unmarked body
byline, trafilatura's own author XPaths on the same tree); handles, then organisations, only when no
source names a person.

Dates: ``published_at`` is the instant (its written offset kept; the warehouse stores UTC);
``published_date`` is the calendar date as the publisher printed it, in the publisher's own zone
(:func:`publisher_day`).

Errors are values: malformed JSON-LD, unparseable dates, odd meta values give ``None`` (or an empty
tuple), never an exception. Nothing here re-parses the HTML; htmldate (the last date fallback) is
given the lxml tree (it deep-copies before pruning, so the tree is not mutated).

Public API: :class:`Metadata`, :class:`SiteRule`, :func:`site_rule_from_dict`, :func:`extract_metadata`,
plus helpers re-used by ``tasks.copyright`` and tests: :func:`article_node`, :func:`parse_date`,
:func:`parse_when`, :func:`published_when`, :func:`publisher_day`, :func:`clean_authors`.
"""

from __future__ import annotations

import functools
import html as _html
import re
import unicodedata
import warnings
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable
from urllib.parse import urljoin, urlsplit

from lxml import etree

from newsmill.tasks.selectors import compile_selector
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
    "parse_when",
    "When",
    "published_when",
    "publisher_day",
    "clean_authors",
]


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
    """The JSON-LD node describing the article itself (computed once per page, see :func:`_ld`)."""
    return _ld(page)[0]


def _find_article_node(page: ParsedPage, idx: dict[str, dict]) -> dict | None:
    """The JSON-LD node describing the article itself (NewsArticle, Article, BlogPosting, ...).

    Image, WebPage, Organization, BreadcrumbList nodes are never returned. A WebPage's ``mainEntity``
    that is an article counts. Among several, the first specific news/article type with a headline
    wins, then any article-typed node."""
    candidates: list[dict] = []
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
    """(article node, @id index), precomputed on the page the first time a field asks: every metadata
    field and the copyright evidence read it, and used to find it again each."""
    if page.ld is None:
        idx = _id_index(page)
        page.ld = (_find_article_node(page, idx), idx)
    return page.ld


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
#
# Every source yields byline strings; each string is cleaned (prefixes, dates, e-mails, URLs, @handles,
# bracketed asides), split into names ("A und B", "A, B & C") and every piece is classified with the
# vocabularies of config/authors.toml: a person, a user handle ("gizzmo"), an organisation or role credit
# ("Redaktion", "Staff Writer", the site's own name), or nothing (UI text, a degree, a job title, a wire
# credit). The first source that names a person wins; handles, then organisations, are the answer only
# when no source names a person.


@dataclass(frozen=True)
class _Vocab:
    prefix: Any  # compiled regex
    joiners: Any
    trailing: Any
    ui: frozenset
    degrees: frozenset
    job_words: frozenset
    role_words: frozenset
    joining: frozenset
    wires: frozenset
    particles: frozenset
    body_prefix: Any
    date_tail: Any  # "… Fr, 18. Oktober 2019", "… am 21. April 2020"
    weekday_tail: Any  # "… Monday, June 3"
    wire_tail: Any  # "TERESA ALVARADO Associated Press"
    for_outlet: Any  # "… for The Example Times"
    org_article: Any  # "The Open Ledger"


def _degree_key(s: str) -> str:
    """"Ph.D.", "PhD", "ph. d." -> "phd"."""
    return re.sub(r"[\s.]+", "", s).casefold()


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(set(words), key=len, reverse=True))


@functools.lru_cache(maxsize=1)
def _vocab() -> _Vocab:
    """The byline vocabularies of ``config/authors.toml`` (package data), compiled once per process."""
    import importlib.resources
    import tomllib

    data = tomllib.loads(importlib.resources.files("newsmill.config").joinpath("authors.toml").read_text("utf-8"))
    low = lambda key: frozenset(w.casefold() for w in data.get(key, ()))  # noqa: E731
    joiners = data.get("name_joiners", ())
    words = [j for j in joiners if len(j) > 1 and j.isalpha()]
    symbols = [j for j in joiners if not j.isalpha()]
    single = [j for j in joiners if len(j) == 1 and j.isalpha()]
    split = [r";", r",", r"/", r"\s\|\s"] + [rf"\s{re.escape(s)}\s" for s in symbols]
    split.append(rf"\b(?:{_alternation(words)})\b")
    if single:
        split.append(rf"(?-i:\s(?:{'|'.join(map(re.escape, single))})\s)(?=\S)")
    return _Vocab(
        prefix=re.compile(rf"^\s*(?:{_alternation(data.get('prefixes', ()))})(?:\s*[:\-–—]\s*|\s+)", re.I),
        joiners=re.compile(r"\s*(?:" + "|".join(split) + r")\s*", re.I),
        trailing=re.compile(rf"\s+(?:{_alternation(data.get('trailing_words', ()))})\b.*$", re.I),
        ui=low("ui_strings") | low("weekdays"), degrees=frozenset(_degree_key(d) for d in data.get("degrees", ())),
        job_words=low("job_title_words"),
        role_words=low("role_words"), joining=low("joining_words"), wires=low("wire_names"),
        particles=low("name_particles"),
        body_prefix=re.compile(rf"^\s*(?:{_alternation(data.get('body_byline_prefixes', ()))})\s*", re.I),
        date_tail=re.compile(
            rf"(?:^|[\s,|·•]+)(?:(?:{_alternation(data.get('date_words', ()))})\s+)?"
            rf"(?:(?:{_alternation(data.get('weekday_abbreviations', ()))})\.?,?\s+)?"
            r"\d{1,4}(?:[./\-]|\.?\s+\w+\s+\d{2,4}|\s*$).*$", re.I),
        weekday_tail=re.compile(rf"\s+(?:{_alternation(data.get('weekdays', ()))})\b.*$", re.I),
        wire_tail=re.compile(rf"\s+(?:the\s+)?(?:{_alternation(data.get('wire_names', ()))})\s*$", re.I),
        for_outlet=re.compile(rf"\s+(?:{_alternation(data.get('outlet_words', ()))})\s+(?:the\s+)?[A-ZÀ-Þ].*$",
                              re.I),
        org_article=re.compile(rf"(?:{_alternation(data.get('organisation_articles', ()))})\s", re.I),
    )


_EMAIL = re.compile(r"\S+@\S+\.\w+")
_URLISH = re.compile(r"(?:https?://|www\.)\S+|\S+\.(?:com|org|net|de|es|fr|co\.uk)(?:/\S*)?\b", re.I)
_PAREN = re.compile(r"\s*[\(\[][^\)\]]*[\)\]]\s*")
_IS_A = re.compile(r"\s+(?:is|was|are|ist|es|est)\s+(?:a|an|the|ein|eine|un|una|une|le|la)\b.*$", re.I)
_HANDLE = re.compile(r"[a-zß-ÿ][\w.\-]{1,30}")  # a lower-case user name ("gizzmo", "fri.juli")
_NAME_CHARS = re.compile(r"[^\w\s.'’\-]")

PERSON, HANDLE, ORG = "person", "handle", "org"


def _words(s: str) -> list[str]:
    return [w.strip(".,:;").casefold() for w in re.split(r"[\s\-]+", s) if w.strip(".,:;")]


def _normalise_name(s: str) -> str:
    s = s.strip(" .,;:-–—|·•\"'“”„«»")
    if s.isupper() and len(s) > 5:
        s = " ".join(w.capitalize() if not re.fullmatch(r"[A-Z]\.?", w) else w for w in s.split())
    return s


def _classify(piece: str, site_name: str = "") -> tuple[str | None, str]:
    """(PERSON | HANDLE | ORG | None, cleaned piece) for one split piece of a byline."""
    v = _vocab()
    s = piece.strip()
    if _normalise_name(s).casefold() in v.ui:
        return None, s
    for _ in range(2):  # "Interview: By Jane Doe"
        s = v.prefix.sub("", s, count=1)
    s = v.for_outlet.sub("", s)
    s = v.wire_tail.sub("", s)
    s = v.weekday_tail.sub("", s)
    s = v.trailing.sub("", s)
    s = _normalise_name(s)
    key = s.casefold()
    if not s or key in v.ui or _degree_key(s) in v.degrees:
        return None, s
    bare = v.prefix.match(s + " ")
    if bare and bare.end() >= len(s):
        return None, s  # a prefix alone ("By")
    if len(s) > 60 or any(ch.isdigit() for ch in s) or not any(ch.isalpha() for ch in s) or _NAME_CHARS.search(s):
        return None, s
    words = _words(s)
    if not words or len(words) > 6:
        return None, s
    if key in v.wires:
        return None, s  # a wire credit is syndication evidence (tasks.copyright), not an author
    if site_name and key == site_name:
        return ORG, s
    if all(w in v.role_words or w in v.joining for w in words):
        return ORG, s
    if any(w in v.job_words for w in words) and not any(w in v.role_words for w in words):
        return None, s  # a job title ("Sr. Director of Product"), never a name
    if any(w in v.role_words for w in words) or v.org_article.match(s):
        return ORG, s  # "Redaktion Polizeiticker", "Wikimedia Foundation", "The Open Ledger"
    if re.fullmatch(r"[A-Z]{2,5}", s):
        return ORG, s  # an acronym credit ("IWB")
    raw = s.split()
    if raw[0][:1].isupper() and sum(not (w[:1].isupper() or w.casefold() in v.particles) for w in raw[1:]) <= 1:
        return PERSON, s  # capitalised words and name particles ("Ursula von der Leyen"); one lower-case
        # word is tolerated ("Mobasir hassan"), more make it text ("Beitrag wurde verfasst")
    if len(raw) == 1 and _HANDLE.fullmatch(s):
        return HANDLE, s  # a user name as the page writes it ("gizzmo"): below a real name
    return None, s


def _split_byline(raw: str) -> list[str]:
    """Split one byline string into name pieces (not yet classified)."""
    v = _vocab()
    s = _clean_text(raw) or ""
    if not s:
        return []
    s = v.date_tail.sub("", s)  # "Von Tomas Spahn Fr, 18. Oktober 2019", "By Jane Doe on 3/4/2021"
    s = _PAREN.sub(" ", s)
    s = _EMAIL.sub(" ", s)
    s = _URLISH.sub(" ", s)
    s = re.sub(r"(?<!\w)@\w+", " ", s)  # twitter handles
    s = _IS_A.sub("", s)
    s = v.prefix.sub("", s, count=1)
    # "Jane Doe | AP", "Jane Doe — Staff Writer", "Jane Doe - Example Times": bars and dashes separate
    # credits like commas do; each piece is classified on its own
    s = re.sub(r"\s+[|\u2013\u2014·•]\s+|\s+-\s+", " , ", s)
    pieces = [p for p in v.joiners.split(s) if p and p.strip()]
    single = sum(len(p.split()) == 1 and _degree_key(p.strip(" ,")) not in v.degrees for p in pieces)
    if len(pieces) >= 4 and 2 * single >= len(pieces):
        return []  # "CSP / International / Photovoltaik / Speicher": a list of sections, not a byline
    return pieces


class _Names(tuple):
    """(persons, handles, organisations) named by one source."""

    __slots__ = ()

    def __new__(cls, persons=(), handles=(), orgs=()):
        return super().__new__(cls, (tuple(persons), tuple(handles), tuple(orgs)))


def _classified(raw: Iterable[str], site_name: str = "") -> _Names:
    """Persons, user handles and organisations named by byline strings ``raw`` (order kept,
    case-insensitive dedupe)."""
    seen: set[str] = set()
    persons: list[str] = []
    out = {PERSON: persons, HANDLE: [], ORG: []}
    for item in raw:
        for piece in _split_byline(item):
            kind, name = _classify(piece, site_name)
            if kind is None or name.casefold() in seen:
                continue
            seen.add(name.casefold())
            out[kind].append(name)
    # "Jane" and "Jane Doe" from one source: keep the fullest form
    persons = [n for n in persons if not any(n != m and n.casefold() in m.casefold().split(" ") or
                                             (n != m and m.casefold().startswith(n.casefold() + " "))
                                             for m in persons)]
    return _Names(persons, out[HANDLE], out[ORG])


def clean_authors(raw: Iterable[str]) -> tuple[str, ...]:
    """Split, strip and dedupe byline strings into person names (order kept, case-insensitive); user
    handles count when no real name is given. Organisation and role credits are not persons."""
    names = _classified(raw)
    return names[0] or names[1]


def _ld_author_strings(value: Any, idx: dict[str, dict]) -> tuple[list[str], list[str]]:
    """(person strings, organisation names) of a JSON-LD author/creator value."""
    people: list[str] = []
    orgs: list[str] = []
    for a in _as_list(value):
        a = _resolve(a, idx)
        if isinstance(a, str):
            people.append(a)
        elif isinstance(a, dict):
            name = _clean_text(a.get("name"))
            if not name:
                gn, fn = _clean_text(a.get("givenName")), _clean_text(a.get("familyName"))
                name = " ".join(x for x in (gn, fn) if x) or None
            if not name:
                continue
            t = _types(a)
            (people if not t or "Person" in t else orgs).append(name)
    return people, orgs


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


_COMMENTS_TOKEN = re.compile(r"^(?:comments?|commentlist|respond)(?:$|[-_])|[-_]comments?$", re.I)


def _in_comments(el) -> bool:
    """Inside a comments section (comment authors are not article authors): an ancestor whose class
    or id token is a comments container ("comments", "comment-list", "respond"); page-level state
    classes such as "showing-comments" on <body> do not count."""
    for anc in el.iterancestors():
        if anc.tag in ("body", "html"):
            return False
        for token in f"{anc.get('class') or ''} {anc.get('id') or ''}".split():
            if _COMMENTS_TOKEN.search(token):
                return True
    return False


def _el_byline(el) -> str | None:
    if el.tag in ("link", "meta") or _in_comments(el):
        return None
    t = _clean_text(el.get("content")) if el.tag == "meta" else _clean_text(" ".join(el.itertext()))
    return t if t and len(t) <= 200 else None


def _first_byline(els: list, site_name: str) -> _Names:
    """Names of the first element that names a person, with the matches next to it (same parent or
    grandparent: "<span class=author>A</span> und <span class=author>B</span>"). Author elements
    elsewhere on the page (teasers, related stories, other posts) are not this article's byline.
    Without a person, the first handles and organisations found."""
    handles: tuple[str, ...] = ()
    orgs: tuple[str, ...] = ()
    for i, el in enumerate(els):
        t = _el_byline(el)
        if not t:
            continue
        names = _classified([t], site_name)
        if not names[0]:
            handles, orgs = handles or names[1], orgs or names[2]
            continue
        parent = el.getparent()
        near = {parent, parent.getparent() if parent is not None else None} - {None}
        texts = [t]
        for other in els[i + 1:]:
            op = other.getparent()
            if op in near or (op is not None and op.getparent() in near):
                ot = _el_byline(other)
                if ot:
                    texts.append(ot)
        return _Names(_classified(texts, site_name)[0])
    return _Names((), handles, orgs)


# Every element trafilatura's AUTHOR_XPATHS can match has one of these attribute values (a superset, with
# few contains() instead of its EXSLT regular expressions, which lxml evaluates through Python callbacks):
# "uthor" (author, AuthorName), "yline"/"byl" (byline, Byline, byl), "name" (username, screenname,
# channel-name, journalist-name), "ed-by" (submitted-by, posted-by), "bian" (bianji, xiaobian).
_AUTHOR_GATE = etree.XPath(
    ".//@class[" + " or ".join(f"contains(., '{t}')" for t in (
        "uthor", "yline", "byl", "name", "writer", "ed-by", "zuozhe", "bian", "BBL")) + "]/.."
    " | .//@id[contains(., 'uthor') or contains(., 'zuozhe') or contains(., 'bian')]/.."
    " | .//@itemprop[contains(., 'author')]/.. | .//@rel[. = 'author']/.. | .//@data-testid/.."
    " | .//@data-component[contains(., 'Byline')]/.. | .//author")


def _trafilatura_bylines(page: ParsedPage) -> list:
    """Candidate byline elements of trafilatura's own author heuristics (its AUTHOR_XPATHS, in order of
    trust), minus those its AUTHOR_DISCARD_XPATHS prune (comments, sidebars, quotes, dates...).

    Its expressions only test an element's own tag and attributes, so they are evaluated on a small
    stand-in document: attribute-only copies of the candidate elements (found by :data:`_AUTHOR_GATE`)
    and of their ancestors, not the page (no copy of the page, no regex callback per element)."""
    from trafilatura.xpaths import AUTHOR_DISCARD_XPATHS, AUTHOR_XPATHS

    cands = _AUTHOR_GATE(page.tree)
    if not cands:
        return []
    stand_in = etree.Element("html")
    body = etree.SubElement(stand_in, "body")
    original: dict = {}  # stand-in copy -> page element
    copied: set = set()

    def shallow(el):
        if el in copied:
            return
        copied.add(el)
        try:
            copy = etree.SubElement(body, el.tag, {k: v for k, v in el.attrib.items()})
        except (TypeError, ValueError):  # odd tag or attribute names
            return
        original[copy] = el

    for el in cands:
        shallow(el)
    cand_copies = list(original)
    for el in cands:
        for anc in el.iterancestors():
            if anc.tag in ("body", "html"):
                break
            shallow(anc)
    discard: set = set()
    for xp in AUTHOR_DISCARD_XPATHS:
        try:
            discard.update(original[c] for c in xp(stand_in) if c in original)
        except Exception:  # noqa: BLE001
            continue
    out: list = []
    for xp in AUTHOR_XPATHS:
        try:
            matched = {c for c in xp(stand_in) if c in original}
        except Exception:  # noqa: BLE001
            continue
        for c in cand_copies:  # document order
            el = original[c]
            if c in matched and el not in discard and not any(a in discard for a in el.iterancestors()):
                out.append(el)
    return out


def authors_of(page: ParsedPage, site: SiteRule | None = None) -> tuple[str, ...]:
    """Person names of the article's byline. Sources in order of trust, the first naming a person wins:
    site rule -> JSON-LD author/creator of the article node (Person or string) -> author meta tags ->
    the visible byline (rel=author, itemprop=author, byline and author classes) -> trafilatura's author
    heuristics on the same tree. When no source names a person: the first user handle ("gizzmo"), else
    the first organisation or role credit ("Redaktion", "dpa", the site's own name)."""
    site_name = (_safe(site_name_of, page, site) or "").casefold()
    handles: tuple[str, ...] = ()
    orgs: tuple[str, ...] = ()
    for persons, h, o in _author_evidence(page, site, site_name):
        if persons:
            return persons
        handles, orgs = handles or h, orgs or o
    return handles or orgs


def _author_evidence(page: ParsedPage, site: SiteRule | None, site_name: str):
    """:class:`_Names` per source, lazily, in order of trust (the costly ones last)."""
    if site and site.author_selector:
        yield _classified((_clean_text(el.get("content")) or _el_text(el) or ""
                           for el in _select(page, site.author_selector)), site_name)
    node, idx = _ld(page)
    if node is None:  # no article node: the page node's author (older Yoast graphs put it there)
        node = next((n for n in page.jsonld if isinstance(n, dict) and _types(n) & _PAGE_TYPES
                     and n.get("author")), None)
    if node:
        for key in ("author", "creator"):
            people, organisations = _ld_author_strings(node.get(key), idx)
            names = _classified(people, site_name)
            # an Organization-typed author is a credit, whatever its name looks like
            orgs = names[2] + tuple(c[1] for c in (_classify(n, site_name) for n in organisations) if c[0])
            yield _Names(names[0], names[1], orgs)
    for key in _AUTHOR_META:
        vals = [v for v in _meta(page, key) if not v.lower().startswith(("http://", "https://"))]
        if vals:
            yield _classified(vals, site_name)
    for xp, keep in _BYLINE_XPATH:
        try:
            els = xp(page.tree)
        except Exception:  # noqa: BLE001
            continue
        if keep is not None:
            els = keep(els)
        if els:
            yield _first_byline(els, site_name)
    yield _body_byline(page, site_name)
    yield _first_byline(_trafilatura_bylines(page), site_name)


_BODY_BYLINE_TAGS = ("p", "div", "span", "strong", "b", "em", "address", "h4", "h5", "h6")


def _body_byline(page: ParsedPage, site_name: str) -> _Names:
    """An unmarked byline block: the first short element whose own text starts with a byline prefix
    ("Von", "By", "Par", "Text:") and whose first line is nothing but full, capitalised person names."""
    v = _vocab()
    for el in page.tree.iter(_BODY_BYLINE_TAGS):
        head = el.text
        if not head or len(head) > 40 or not v.body_prefix.match(head) or _in_comments(el):
            continue
        parts = [el.text or ""]
        for child in el:  # the first line: up to the first <br> or block
            if child.tag in ("br", "p", "div") or not isinstance(child.tag, str):
                break
            parts.append(child.text_content() or "")
            parts.append(child.tail or "")
            if "\n" in (child.tail or ""):
                break
        line = _clean_text(" ".join(parts).split("\n")[0])
        if not line or len(line) > 100:
            continue
        body = v.body_prefix.sub("", line, count=1)
        pieces = _split_byline(body)
        names = [_classify(p, site_name) for p in pieces]
        if names and all(k == PERSON and len(n.split()) >= 2 and all(w[:1].isupper() or w.casefold() in v.particles
                                                                         for w in n.split())
                         for k, n in names):
            return _Names(n for _k, n in names)
    return _Names()


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


@dataclass(frozen=True, slots=True)
class When:
    """A parsed date value: ``at`` the instant (aware; naive values taken as UTC), ``day`` the calendar
    date as the value wrote it (in its own zone), ``zone``: ``"local"`` (a non-UTC offset), ``"utc"``
    (``Z``, ``+00:00``, ``GMT``, an epoch number) or ``"none"`` (no zone written: naive or date-only),
    ``timed``: a time of day was written."""

    at: datetime
    day: date
    zone: str
    timed: bool


_TIME_WORD = re.compile(r"(?<=\d)\s*(?:uhr|h)\b\.?", re.I)
_DAY_FIRST = re.compile(r"\d{1,2}\s?[.\-]\s?\d{1,2}\s?[.\-]\s?\d{4}")  # 06.07.2019, 01-11-2023: day first


def parse_when(value: Any) -> When | None:
    """:class:`When` from an ISO-8601 / RFC-2822 / common date string, a datetime or an epoch number;
    None when it does not parse or needs guessing (a bare year, a month without a day, a time without a
    date). ``dd.mm.yyyy`` and ``dd-mm-yyyy`` are day first (no locale writes month first with those)."""
    from dateutil import parser as du

    if isinstance(value, datetime):
        dt = value
        zone_known = dt.tzinfo is not None and dt.utcoffset() is not None
        timed = True
    else:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(int(value))
        s = _clean_text(value)
        if not s or len(s) > 64:
            return None
        s = _TIME_WORD.sub("", s)  # "11.03.2024, 00:30 Uhr"
        try:
            if re.fullmatch(r"\d{10}(?:\d{3})?", s):  # unix epoch (s or ms): an instant
                ts = int(s) / (1000 if len(s) == 13 else 1)
                dt = datetime.fromtimestamp(ts, tz=timezone.utc)
                timed = True
            else:
                if not re.search(r"\d{4}", s) or not re.search(r"\d{1,2}\D+\d{1,2}|\d{8}|[A-Za-zé]{3,}", s):
                    return None
                try:
                    dt = du.isoparse(s)
                except (ValueError, OverflowError):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        dayfirst = bool(_DAY_FIRST.match(s))
                        dt = du.parse(s, tzinfos=_TZINFOS, default=datetime(2000, 1, 1), dayfirst=dayfirst)
                        # reject a parse that had to invent the day (e.g. "2019" or "June 2019")
                        dt2 = du.parse(s, tzinfos=_TZINFOS, default=datetime(2001, 2, 2, 1, 1),
                                       dayfirst=dayfirst)
                        if dt.day != dt2.day or dt.month != dt2.month:
                            return None
                        timed = (dt.hour, dt.minute) == (dt2.hour, dt2.minute)
                else:
                    timed = bool(re.search(r"\d[T ]\d{1,2}:?\d{2}", s))
        except (ValueError, OverflowError, TypeError, OSError, AttributeError):
            return None
        zone_known = dt.tzinfo is not None and dt.utcoffset() is not None
    if not _MIN_YEAR <= dt.year <= _MAX_YEAR:
        return None
    try:
        day = dt.date()
        if not zone_known:
            return When(dt.replace(tzinfo=timezone.utc), day, "none", timed)
        return When(dt, day, "utc" if dt.utcoffset() == timedelta(0) else "local", timed)
    except (ValueError, OverflowError):
        return None


def parse_date(value: Any) -> datetime | None:
    """A timezone-aware datetime (its own offset kept) from a date value (see :func:`parse_when`);
    naive values are taken as UTC."""
    w = parse_when(value)
    return w.at if w else None


def _when_from_elements(els: list) -> When | None:
    for el in els:
        for attr in ("datetime", "content", "data-datetime", "data-date", "title"):
            w = parse_when(el.get(attr))
            if w:
                return w
        w = parse_when(_el_text(el))
        if w:
            return w
    return None


def _date_from_elements(els: list) -> datetime | None:
    w = _when_from_elements(els)
    return w.at if w else None


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
_LD_PUBLISHED = ("datePublished", "dateCreated", "uploadDate")
_TIME_XPATH = etree.XPath(
    ".//time[@itemprop='datePublished' or @pubdate or contains(@class,'publish')]"
    " | .//@itemprop[. = 'datePublished']/.."
    " | .//article//time[@datetime]"
    " | .//time[@datetime]")
_URL_DATE = re.compile(r"/((?:19|20)\d\d)[/\-_]?(0[1-9]|1[0-2])[/\-_]?(0[1-9]|[12]\d|3[01])(?=[/\-_.]|$)")


def _published_times(page: ParsedPage) -> list:
    try:
        els = _TIME_XPATH(page.tree)
    except Exception:  # noqa: BLE001
        return []
    return [e for e in els if "modif" not in (e.get("itemprop") or "").lower()
            and "updat" not in (e.get("class") or "").lower()]


def _lazy_times(page: ParsedPage):
    """The page's published ``<time>``/itemprop elements, looked up at most once (the published date
    and the publisher's day both read them)."""
    memo: list = []

    def get() -> list:
        if not memo:
            memo.append(_published_times(page))
        return memo[0]

    return get


def published_when(page: ParsedPage, site: SiteRule | None = None, _times=None) -> When | None:
    """The published date: site rule -> JSON-LD article node -> published meta tags -> ``<time>`` /
    ``itemprop=datePublished`` elements -> htmldate on the tree (extensive search, original date)."""
    times = _times or _lazy_times(page)
    if site and site.date_selector:
        w = _when_from_elements(_select(page, site.date_selector))
        if w:
            return w
    node, _ = _ld(page)
    if node:
        for key in _LD_PUBLISHED:
            w = parse_when(node.get(key))
            if w:
                return w
    for key in _PUBLISHED_META:
        for v in _meta(page, key):
            w = parse_when(v)
            if w:
                return w
    w = _when_from_elements(times())
    if w:
        return w
    return _htmldate(page, original=True)


def _other_readings(page: ParsedPage, times) -> Iterable[When]:
    """Every published-date value the page states (all JSON-LD nodes, meta tags, ``<time>`` elements),
    lazily, for :func:`publisher_day`."""
    for node in page.jsonld:
        if isinstance(node, dict):
            for key in _LD_PUBLISHED:
                w = parse_when(node.get(key))
                if w:
                    yield w
    for key in _PUBLISHED_META:
        for v in _meta(page, key):
            w = parse_when(v)
            if w:
                yield w
    for el in times():
        for value in (el.get("datetime"), el.get("content"), _el_text(el)):  # the printed text too
            w = parse_when(value)
            if w:
                yield w


# Languages whose publishers are (nearly) all in Central European time (UTC+1, +2 in summer): a UTC instant
# of exactly 22:00 or 23:00 on such a page is the local midnight a date-only value was converted from.
_CET_LANGUAGES = frozenset({"de", "nl", "it", "pl", "cs", "sk", "hu", "sl", "hr", "sv", "da", "nb", "nn", "no",
                            "lb"})


def _url_day(url: str | None) -> date | None:
    m = _URL_DATE.search(urlsplit(url or "").path)
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def publisher_day(page: ParsedPage, when: When | None, _times=None) -> date | None:
    """The calendar date of ``when`` as the publisher printed it, in the publisher's own zone.

    A value with a local offset or without a zone is its own date (``2022-11-07T00:30+01:00`` is
    2022-11-07, ``2022-11-07`` stays that date). A UTC instant says nothing about the publisher's zone,
    so another reading of the same publication decides, when the page has one: a value of the same
    instant written with a local offset, a zone-less wall-clock time (a ``<time>`` element's printed
    text too) a whole quarter-hour offset away, then a date in the article URL (``/2019/01/01/``)
    within a day. A UTC instant of exactly 22:00 or 23:00 on a page in a Central European language is
    the local midnight of a date-only value: the next day. Else the UTC date."""
    if when is None:
        return None
    if when.zone != "utc":
        return when.day
    utc_wall = when.at.astimezone(timezone.utc).replace(tzinfo=None)
    for other in _other_readings(page, _times or _lazy_times(page)):
        if other.zone == "local" and abs((other.at - when.at).total_seconds()) <= 60:
            return other.day
        if other.zone == "none" and other.timed:
            delta = (other.at.replace(tzinfo=None) - utc_wall).total_seconds()
            if delta and abs(delta) <= 14 * 3600 and delta % 900 == 0:
                return other.day
    url_day = _url_day(page.url)
    if url_day is not None and abs((url_day - when.day).days) <= 1:
        return url_day
    at = when.at.astimezone(timezone.utc)
    if (at.hour in (22, 23) and (at.minute, at.second, at.microsecond) == (0, 0, 0)
            and _lang_code(page.html_lang) in _CET_LANGUAGES):
        return when.day + timedelta(days=1)  # a date-only value stored as its local midnight in UTC
    return when.day


def published_of(page: ParsedPage, site: SiteRule | None = None) -> datetime | None:
    w = published_when(page, site)
    return w.at if w else None


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


def _htmldate(page: ParsedPage, *, original: bool) -> When | None:
    """Last fallback for the published date, for pages without structured dates: htmldate (trafilatura's
    own date finder) on the already-parsed tree (it copies before pruning; no second parse), with its
    extensive search (free-text dates) as trafilatura runs it."""
    try:
        from htmldate import find_date

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = find_date(page.tree, extensive_search=True, original_date=original,
                          outputformat="%Y-%m-%d", url=page.url)
    except Exception:  # noqa: BLE001 - third-party heuristics: a failure is "no date"
        return None
    return parse_when(s) if s else None


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
    times = _lazy_times(page)
    when = _safe(lambda p, s: published_when(p, s, times), page, site)
    return Metadata(
        title=_safe(title_of, page, site),
        authors=_safe(authors_of, page, site) or (),
        published_at=when.at if when else None,
        published_date=_safe(lambda p, _s: publisher_day(p, when, times), page, site),
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
