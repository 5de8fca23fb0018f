"""Authors: byline strings from every source, split into names and classified (see the package docstring)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Iterable

from lxml import etree

from newsmill.tasks.jsonld import PAGE_TYPES, as_list, clean_text, node_types, page_ld, resolve
from newsmill.tasks.metadata._common import _el_text, _meta, _safe
from newsmill.tasks.metadata._records import SiteRule, _select
from newsmill.tasks.metadata._title_site import site_name_of
from newsmill.tasks.parse import ParsedPage

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
    s = clean_text(raw) or ""
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
    for a in as_list(value):
        a = resolve(a, idx)
        if isinstance(a, str):
            people.append(a)
        elif isinstance(a, dict):
            name = clean_text(a.get("name"))
            if not name:
                gn, fn = clean_text(a.get("givenName")), clean_text(a.get("familyName"))
                name = " ".join(x for x in (gn, fn) if x) or None
            if not name:
                continue
            t = node_types(a)
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
    t = clean_text(el.get("content")) if el.tag == "meta" else clean_text(" ".join(el.itertext()))
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
        yield _classified((clean_text(el.get("content")) or _el_text(el) or ""
                           for el in _select(page, site.author_selector)), site_name)
    node, idx = page_ld(page)
    if node is None:  # no article node: the page node's author (older Yoast graphs put it there)
        node = next((n for n in page.jsonld if isinstance(n, dict) and node_types(n) & PAGE_TYPES
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
        line = clean_text(" ".join(parts).split("\n")[0])
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
