"""Who owns an article: copyright holder, year, notice, licence, and whether it is syndicated copy.

Evidence, strongest first. Evidence attached to the ARTICLE beats evidence about the SITE (issue 12,
correcting issue 3's order, which put the page's meta above the body line: a daily republishing wire copy
names itself in <meta name="copyright"> and its footer on every page, while the story's own notice names
the wire)::

    jsonld       the JSON-LD article node: copyrightHolder, copyrightYear, copyrightNotice, license
                 (never an ImageObject's copyright: a photo agency does not own the story)
    body_line    a trailing notice line captured from the end of the article body by the cleaner
                 ("Copyright 2026 The Associated Press. All rights reserved.", "This article first
                 appeared on ProPublica and is republished here under a Creative Commons license.")
    --- site-level from here on ---
    meta         <meta name="copyright">, dcterms.rights, dc.rights
    rel_license  <link rel="license"> / <a rel="license">
    footer       the "©" line of the page footer (<footer>, [role=contentinfo], [class*=footer], <small>)

Combination rule (:func:`combine`, the only place it is written): the first source (in that order) that
names a *holder* gives ``holder``, ``year``, ``notice`` and ``source``; ``license_url`` is the first licence
found by any source. When no source names a holder, the first source with a notice or licence gives the
fields. Within the body lines, the first notice naming a holder speaks for them (else the first).
The extractor reads the tree sources before cleaning (:func:`tree_evidence`), captures the body line after
extraction and calls :func:`combine` once.

Holder normalisation (decided here, applied everywhere): the name as a reader would write it — the
copyright sign, "Copyright", years, "All rights reserved" (en/de/fr/es/it), "To see more, visit ..." and
URLs are removed, and a trailing *legal-form* suffix is dropped (Inc., LLC, Ltd., Limited, plc, GmbH,
GmbH & Co. KG, AG, SE, S.A., S.L., SAS, Corp., Corporation, L.P., Pvt., B.V., S.p.A., S.r.l., e.V., ...), and
an appositive after a comma is dropped ("The Detroit News, a Digital First Media Newspaper") so that "NPR, Inc." in one place and "NPR"
in another compare equal. Articles ("The Associated Press") and the rest of the name are kept.

``year`` is the latest year of a range ("2021–2024" -> 2024, "2024-26" -> 2026).

``license_url`` is canonical: Creative Commons URLs become ``https://creativecommons.org/licenses/by-nd/4.0/``
(https, no www, trailing slash, no ``deed.xx``/``legalcode``); a CC licence *named* in text maps to its
URL when the type is stated ("CC BY-NC-ND 4.0", "Creative Commons Attribution-NoDerivatives 4.0";
version 4.0 when none is given); "a Creative Commons license" alone gives None.

``syndicated``: True when the holder is not the publishing site (compared loosely with the site name and
the domain: case, "The", punctuation, legal forms ignored; token containment, a shared distinctive word
("Ediciones del Valle" / "Diario del Valle") and acronym/domain-label matches count as the same party),
False when it is (always False for a footer notice: the footer names the site's own operator), None when
there is no holder.

Errors are values: nothing here raises on odd data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Iterable
from urllib.parse import urlsplit

from lxml import etree

from newsmill.tasks.metadata import Metadata, _as_list, _clean_text, _id_index, _resolve, article_node
from newsmill.tasks.parse import ParsedPage
from newsmill.tasks.urls import domain_of, normalize_url

__all__ = [
    "CopyrightInfo",
    "match_copyright_line",
    "TreeEvidence",
    "tree_evidence",
    "combine",
    "normalize_holder",
    "normalize_license_url",
    "license_from_text",
    "same_party",
]


@dataclass(frozen=True)
class CopyrightInfo:
    holder: str | None = None
    year: int | None = None
    notice: str | None = None
    license_url: str | None = None
    source: str | None = None  # one of tasks.records.COPYRIGHT_SOURCES, None when nothing was found
    syndicated: bool | None = None


EMPTY = CopyrightInfo()

# ---------------------------------------------------------------------------------------------------
# vocabulary

_YEAR = r"(?:19|20)\d{2}"
_YEAR_RANGE = re.compile(rf"(?<!\d)({_YEAR})(?:\s*[-–—/]\s*({_YEAR}|\d{{2}}))?(?!\d)")
_MARK = re.compile(
    r"^\W{0,3}?(?P<mark>©\s*(?:copyright\b)?|\(c\)|&copy;|copyright\b\s*(?:©|\(c\))?|copr\.\s*(?:©)?)\s*",
    re.I,
)
_RIGHTS = re.compile(
    r"\b(?:all\s+rights\s+reserved|alle\s+rechte\s+(?:vorbehalten|reserviert)|tous\s+droits\s+r[ée]serv[ée]s"
    r"|todos\s+los\s+derechos\s+reservados|reservados\s+todos\s+los\s+derechos"
    r"|derechos\s+reservados|tutti\s+i\s+diritti\s+riservati|some\s+rights\s+reserved)\b\.?",
    re.I,
)
_TAILS = re.compile(
    r"\b(?:to\s+see\s+more|for\s+more|visit\s+|used\s+with\s+permission|reprinted\s+with|this\s+material"
    r"|may\s+not\s+be|distributed\s+by|privacy|terms\s+of|impressum|datenschutz|aviso\s+legal"
    r"|mentions\s+l[ée]gales|powered\s+by|or\s+its\s+affiliat\w*|and/or\s+its|and\s+its\s+licensors"
    r"|a\s+(?:division|subsidiary|unit|member|service)\s+of|part\s+of|an?\s+\w+\s+company)\b.*$",
    re.I,
)
_URL = re.compile(r"(?:https?://|www\.)\S+", re.I)
_LEGAL_FORMS = re.compile(
    r"(?:,?\s+(?:inc\.?|incorporated|llc\.?|l\.l\.c\.|ltd\.?|limited|plc|gmbh(?:\s*&\s*co\.?\s*kg)?|ag|se"
    r"|s\.a\.?|s\.l\.?|sas|s\.a\.s\.?|corp\.?|corporation|l\.?p\.?|pvt\.?|private\s+limited|pty"
    r"|b\.v\.?|n\.v\.?|oy|ab|as|a/s|s\.p\.a\.?|s\.r\.l\.?|kg|ohg|e\.v\.?))+\s*$",
    re.I,
)
_CONNECTORS = {
    "of", "and", "&", "for", "the", "de", "del", "la", "las", "los", "el", "y", "und", "für", "der", "die",
    "das", "du", "des", "le", "les", "et", "e", "di", "da", "van", "von", "on", "in", "at", "a", "an",
    "its", "licensors", "by", "+",
}
_ABBREV = {"inc", "co", "corp", "ltd", "jr", "sr", "st", "mr", "mrs", "ms", "dr", "no", "vs", "bros"}

_REPUBLISHED = [
    # en
    re.compile(r"^(?:\W*(?:editor'?s\s+note|note)\s*:\s*)?(?:this|the)\s+(?:article|story|piece|report|post|"
               r"column|essay|interview)\s+(?:was\s+|is\s+)?(?:first|originally)\s+(?:appeared|published|"
               r"ran|posted)\s+(?:on|in|at|by|with)\s+(?P<holder>.+)", re.I),
    re.compile(r"^(?:this|the)\s+(?:article|story|piece|report|post)\s+(?:first|originally)\s+"
               r"(?:appeared|ran)\s+(?:on|in|at)\s+(?P<holder>.+)", re.I),
    re.compile(r"^(?:\W*)?(?:originally|first)\s+(?:published|appeared)\s+(?:on|in|at|by)\s+(?P<holder>.+)", re.I),
    re.compile(r"^(?:this\s+(?:article|story)\s+(?:is|was|has\s+been)\s+)?(?:republished|reprinted|reproduced)"
               r"\s+(?:here\s+)?(?:with\s+permission\s+)?(?:from|of|by|courtesy\s+of)\s+(?P<holder>.+)", re.I),
    # es
    re.compile(r"^(?:este|el)\s+(?:artículo|articulo|texto|reportaje|contenido)\s+(?:se\s+publicó|fue\s+publicado|"
               r"apareció|se\s+publico)\s+(?:originalmente|primero|por\s+primera\s+vez|inicialmente)\s+"
               r"(?:en|por)\s+(?P<holder>.+)", re.I),
    re.compile(r"^(?:publicado|artículo\s+publicado)\s+originalmente\s+(?:en|por)\s+(?P<holder>.+)", re.I),
    # de
    re.compile(r"^(?:dieser|der)\s+(?:artikel|beitrag|text)\s+(?:erschien|ist)\s+(?:zuerst|ursprünglich|"
               r"erstmals)\s+(?:bei|in|auf|im)\s+(?P<holder>.+)", re.I),
    re.compile(r"^(?:zuerst|ursprünglich|erstmals)\s+(?:erschienen|veröffentlicht)\s+(?:bei|in|auf|im)\s+"
               r"(?P<holder>.+)", re.I),
    # fr
    re.compile(r"^(?:cet\s+article|l'article|ce\s+texte)\s+a\s+(?:d'abord\s+|initialement\s+|originellement\s+)?"
               r"été\s+(?:initialement\s+|originellement\s+|d'abord\s+)?publié\s+(?:initialement\s+|"
               r"originellement\s+|d'abord\s+)?(?:par|sur|dans)\s+(?P<holder>.+)", re.I),
]
_HOLDER_STOP = re.compile(
    r"\s+(?:and|y|und|et|e|under|bajo|unter|sous|with|con|mit|avec|as|como|als|comme|on|el|am|le|in\s+(?:19|20)\d\d)\b"
    r"|[,.;:(\[|]\s|[,;(\[|]|\.$",
    re.I,
)
_LICENSE_LINE = re.compile(
    r"^(?:\W*)(?:this\s+(?:work|article|story|content|post|text)\s+is\s+)?(?:licen[cs]ed\s+under|"
    r"published\s+under|available\s+under|under\s+(?:a|the)\s+creative\s+commons|creative\s+commons|cc[\s-]?by|"
    r"cc0|(?:esta\s+obra|este\s+(?:artículo|contenido))\s+(?:está|se\s+publica)\s+bajo|bajo\s+licencia|"
    r"(?:dieser?\s+(?:werk|artikel|beitrag|text)\s+)?(?:steht|ist)\s+unter|lizenziert\s+unter|"
    r"(?:cette\s+œuvre|cet\s+article)\s+est\s+(?:mise?\s+à\s+disposition\s+)?sous|sous\s+licence)",
    re.I,
)
_MAX_LINE = 400


# ---------------------------------------------------------------------------------------------------
# licence URLs


def normalize_license_url(url: Any) -> str | None:
    """Canonical licence URL. Creative Commons: ``https://creativecommons.org/licenses/<type>/<ver>/``
    (jurisdiction ports kept, ``deed.xx`` / ``legalcode`` dropped). Other http(s) URLs: normalised."""
    s = _clean_text(url)
    if not s:
        return None
    if s.startswith("//"):
        s = "https:" + s
    m = re.search(r"creativecommons\.org/[^\s\"'<>]*", s, re.I)
    if m or re.match(r"^(?:https?://)?(?:www\.)?creativecommons\.org\b", s, re.I):
        path = urlsplit("https://" + (m.group(0) if m else s.split("//", 1)[-1])).path
        segs = []
        for seg in path.split("/"):
            seg = seg.strip().lower()
            if not seg:
                continue
            if seg.startswith(("deed", "legalcode", "rdf", "index")):
                break
            segs.append(seg)
        if not segs:
            return None
        return "https://creativecommons.org/" + "/".join(segs) + "/"
    if not re.match(r"^https?://", s, re.I):
        return None
    return normalize_url(s)


_CC_WORDS = {
    "by": r"attribution|atribuci[oó]n|reconocimiento|namensnennung|paternit[ée]|attribuzione",
    "nc": r"non[\s-]?commercial|no[\s-]?comercial|nicht[\s-]?kommerziell|pas\s+d'utilisation\s+commerciale|"
          r"non\s+commerciale",
    "nd": r"no[\s-]?derivatives?|no[\s-]?derivs|no\s+derivative\s+works|sin[\s-]?derivadas|sin\s+obra\s+derivada|"
          r"keine\s+bearbeitungen?|pas\s+de\s+modification|non\s+opere\s+derivate",
    "sa": r"share[\s-]?alike|compartir[\s-]?igual|weitergabe\s+unter\s+gleichen\s+bedingungen|"
          r"partage\s+dans\s+les\s+m[êe]mes\s+conditions|condividi\s+allo\s+stesso\s+modo",
}


def _cc_url(parts: Iterable[str], version: str | None) -> str | None:
    ps = set(parts)
    if "by" not in ps or ("nd" in ps and "sa" in ps):
        return None
    code = "-".join(p for p in ("by", "nc", "nd", "sa") if p in ps)
    return f"https://creativecommons.org/licenses/{code}/{version or '4.0'}/"


def license_from_text(text: str | None) -> str | None:
    """A licence URL from a notice: an explicit URL (normalised), or a CC licence named with its type
    ("CC BY-NC-ND 4.0", "Creative Commons Attribution-NoDerivatives 4.0 International", "CC0")."""
    s = _clean_text(text)
    if not s:
        return None
    m = re.search(r"(?:https?://)?(?:www\.)?creativecommons\.org/\S+", s, re.I)
    if m:
        return normalize_license_url(m.group(0).rstrip(".,;)"))
    if re.search(r"\bCC[\s-]?0\b|creative\s+commons\s+zero|public\s+domain\s+dedication", s, re.I):
        return "https://creativecommons.org/publicdomain/zero/1.0/"
    m = re.search(r"\bCC[\s-]+(BY(?:[\s-]+(?:NC|ND|SA)){0,2})(?:[\s-]+(\d\.\d))?\b", s, re.I)
    if m:
        parts = re.split(r"[\s-]+", m.group(1).lower())
        return _cc_url(parts, m.group(2))
    m = re.search(r"creative\s+commons", s, re.I)
    if m:
        window = s[m.end(): m.end() + 140].lower()
        ver = re.search(r"\b(\d\.\d)\b", window)
        if ver:
            window = window[: ver.end()]
        parts = [k for k, pat in _CC_WORDS.items() if re.search(pat, window)]
        code = re.match(r"[\s(]*(?:licen[cs]e\s+|licencia\s+|lizenz\s+)?(by(?:[\s-]+(?:nc|nd|sa)){0,2})\b", window)
        if not parts and code:
            parts = re.split(r"[\s-]+", code.group(1))
        if parts:
            return _cc_url(parts, ver.group(1) if ver else None)
    return None


# ---------------------------------------------------------------------------------------------------
# holders and years


def _years(text: str) -> list[int]:
    out = []
    for m in _YEAR_RANGE.finditer(text):
        a = int(m.group(1))
        out.append(a)
        if m.group(2):
            b = m.group(2)
            b = int(b) if len(b) == 4 else (a // 100) * 100 + int(b)
            if b >= a:
                out.append(b)
    return out


def _latest_year(text: str) -> int | None:
    ys = _years(text)
    return max(ys) if ys else None


def _cut_sentence(s: str) -> str:
    """Text up to the first sentence break that is not an abbreviation/initial ("U.S. News", "Co.")."""
    for m in re.finditer(r"\.(?=\s|$)|\s[|·•]\s|\s[–—-]\s", s):
        if m.group(0) != ".":
            return s[: m.start()]
        before = re.search(r"([\w]+)$", s[: m.start()])
        tok = before.group(1) if before else ""
        if len(tok) >= 2 and tok.lower() not in _ABBREV and not re.search(r"\.\w$", s[: m.start()]):
            return s[: m.start()]
    return s


def normalize_holder(text: Any) -> str | None:
    """The holder's name from a notice fragment (see the module docstring for the rules)."""
    s = _clean_text(text)
    if not s:
        return None
    s = _URL.sub(" ", s)
    s = _RIGHTS.sub(" ", s)
    s = re.sub(r"©|\(c\)|&copy;|\bcopyright\b|\bcopr\.", " ", s, flags=re.I)
    s = _YEAR_RANGE.sub(" ", s)
    s = re.sub(r"\s+", " ", s).strip(" .,;:-–—|·•/")
    s = _TAILS.sub("", s).strip(" .,;:-–—|·•/")
    s = _cut_sentence(s).strip(" .,;:-–—|·•/")
    s = re.sub(r",[^,]*\d.*$", "", s)  # "dpa-infocom, dpa:260114-99-123456/3": an id after the name
    s = re.sub(r",\s+(?:a|an|part\s+of|owned\s+by|un|una|ein|eine|une)\s+.*$", "", s, flags=re.I)  # appositive
    s = re.sub(r"^(?:by|por|von|par)\s+", "", s, flags=re.I)
    prev = None
    while prev != s:
        prev = s
        s = _LEGAL_FORMS.sub("", s).strip(" .,;:-–—|·•/")
    if not s or not any(ch.isalpha() for ch in s) or len(s) > 80 or len(s.split()) > 10:
        return None
    return s


def _holderish(name: str | None, *, strict: bool = True) -> bool:
    """A plausible organisation/person name, not a piece of prose. Not strict (after a © sign): up to
    three words in any case ("© dpa", "© npr.org")."""
    if not name:
        return False
    if not strict and len(name.split()) <= 3:
        return True
    for w in name.split():
        wl = w.lower().strip(".,'’\"")
        if not wl or wl in _CONNECTORS:
            continue
        if w[:1].isupper() or w[:1].isdigit() or "." in w or not w[:1].isalpha():
            continue
        return False
    return True


# ---------------------------------------------------------------------------------------------------
# one line


def _info(holder, year, notice, license_url=None) -> CopyrightInfo | None:
    if not (holder or year or notice or license_url):
        return None
    return CopyrightInfo(holder=holder, year=year, notice=notice, license_url=license_url)


def match_copyright_line(text: str) -> CopyrightInfo | None:
    """Recognise a short, self-contained copyright / rights / republication / licence notice.

    Returns ``CopyrightInfo`` (``source`` and ``syndicated`` unset) or None — also None for article
    prose that merely mentions copyright ("The lawsuit claims copyright infringement ...")."""
    s = _clean_text(text)
    if not s or len(s) > _MAX_LINE:
        return None
    lic = license_from_text(s)

    # 1. "©/Copyright/(c) [years] Holder [years]. [All rights reserved.] [tail]"
    m = _MARK.match(s)
    if m:
        rest = s[m.end():]
        word_mark = m.group("mark").strip().lower().startswith("copyright") and "©" not in m.group("mark") \
            and "(c)" not in m.group("mark").lower()
        if word_mark:
            # "Copyright infringement ...", "copyright law ...": prose, not a notice
            if not re.match(rf"(?:{_YEAR}|[A-ZÀ-Þ\d\"'“]|$)", rest):
                return None
            if not (re.search(_YEAR, rest) or _RIGHTS.search(rest)):
                return None
        body = _RIGHTS.sub(" ", rest)
        body = _URL.sub(" ", body)
        body = re.sub(r"\s+", " ", body).strip()
        head = _cut_sentence(_TAILS.sub("", body)).strip(" .,;:-–—|·•")
        year = _latest_year(head) or (_latest_year(rest) if not head else None)
        holder_raw = _YEAR_RANGE.sub(" ", head)
        holder = normalize_holder(holder_raw)
        if holder and not _holderish(holder, strict=word_mark):
            return None
        if holder is None and year is None and not _RIGHTS.search(rest):
            return None
        if holder is None and re.sub(r"[\W\d_]", "", _YEAR_RANGE.sub("", head)):
            return None  # something was there but it is not a name
        return _info(holder, year, s, lic)

    # 2. republication notices ("This article first appeared on ProPublica and is republished ...")
    for pat in _REPUBLISHED:
        m = pat.search(s)
        if m:
            raw = m.group("holder")
            stop = _HOLDER_STOP.search(raw)
            raw = raw[: stop.start()] if stop else raw
            holder = normalize_holder(raw)
            if holder and _holderish(holder) and len(holder.split()) <= 8:
                return _info(holder, _latest_year(s), s, lic)

    # 3. bare rights lines ("Verlag XY 2025 – Alle Rechte vorbehalten", "Tous droits réservés")
    rm = _RIGHTS.search(s)
    if rm and len(s) <= 200:
        before, after = s[: rm.start()], s[rm.end():]
        if after.strip() and not re.match(r"^\s*[.|·•,;:–—-]", after):
            return None  # "... all rights reserved for the winners": prose
        holder = normalize_holder(before)
        if holder and not _holderish(holder):
            return None  # a sentence that happens to contain the phrase
        return _info(holder, _latest_year(before), s, lic)

    # 4. licence lines ("Licensed under CC BY-NC-ND 4.0", "This work is licensed under a Creative ...")
    if _LICENSE_LINE.match(s) and len(s) <= 300 and (lic or re.search(r"creative\s+commons|licen", s, re.I)):
        return _info(None, _latest_year(s), s, lic)
    return None


# ---------------------------------------------------------------------------------------------------
# evidence sources


def _ld_year(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1900 <= value <= 2100 else None
    if isinstance(value, str):
        return _latest_year(value)
    return None


def _ld_license(value: Any, idx: dict) -> str | None:
    for v in _as_list(value):
        v = _resolve(v, idx)
        if isinstance(v, dict):
            v = v.get("url") or v.get("@id") or v.get("name")
        if isinstance(v, str):
            u = normalize_license_url(v) if re.match(r"^(?:https?:)?//", v.strip()) else license_from_text(v)
            if u:
                return u
    return None


def _from_jsonld(page: ParsedPage) -> CopyrightInfo | None:
    node = article_node(page)
    if not node:
        return None
    idx = _id_index(page)
    holder = None
    for h in _as_list(node.get("copyrightHolder")):
        h = _resolve(h, idx)
        raw = h if isinstance(h, str) else (h.get("name") or h.get("legalName")) if isinstance(h, dict) else None
        holder = normalize_holder(raw)
        if holder:
            break
    year = _ld_year(node.get("copyrightYear"))
    notice = _clean_text(node.get("copyrightNotice"))
    lic = _ld_license(node.get("license"), idx)
    if notice:
        parsed = match_copyright_line(notice)
        if parsed:
            holder = holder or parsed.holder
            year = year or parsed.year
            lic = lic or parsed.license_url
        elif not holder:
            holder = normalize_holder(notice) if _holderish(normalize_holder(notice)) else None
    return _info(holder, year, notice, lic)


_META_KEYS = ("copyright", "dcterms.rights", "dc.rights", "rights", "dcterms.rightsholder")


def _from_meta(page: ParsedPage) -> CopyrightInfo | None:
    for key in _META_KEYS:
        for v in page.meta.get(key, ()):
            value = _clean_text(v)
            if not value:
                continue
            info = match_copyright_line(value)
            if info is None:
                holder = normalize_holder(value)
                if holder and _holderish(holder) and len(value) <= 120:
                    info = _info(holder, _latest_year(value), value, license_from_text(value))
                elif license_from_text(value):
                    info = _info(None, None, value, license_from_text(value))
            if info:
                return info
    return None


def _from_rel_license(page: ParsedPage) -> CopyrightInfo | None:
    for href in page.links.get("license", ()):
        u = normalize_license_url(href)
        if u:
            return CopyrightInfo(license_url=u)
    return None


def _best(infos: list[CopyrightInfo]) -> CopyrightInfo | None:
    """Within one source: the first notice naming a holder (else the first), with the first licence."""
    if not infos:
        return None
    best = next((i for i in infos if i.holder), infos[0])
    lic = best.license_url or next((i.license_url for i in infos if i.license_url), None)
    return replace(best, license_url=lic)


# footers: <footer>, role=contentinfo, a class or id with "footer"/"Footer" (matching attribute nodes and
# taking their element is ~2x cheaper in libxml2 than testing every element's attributes)
_FOOTER_XPATH = (
    "//footer | //@role[. = 'contentinfo']/.."
    " | //@class[contains(., 'footer') or contains(., 'Footer')]/.."
    " | //@id[contains(., 'footer') or contains(., 'Footer')]/.."
)
_NOTICE_HINT = re.compile(r"©|\(c\)|copyright|rights\s+reserved|rechte\s+vorbehalten|droits\s+r[ée]serv|"
                          r"derechos\s+reservados", re.I)
_BLOCK_TAGS = {"p", "div", "small", "span", "li", "section", "footer", "address", "td", "strong", "em", "b",
               "body", "aside", "ul", "nav", "center", "font", "article", "main", "table", "tbody", "tr"}


_FOOTER_ROOTS = etree.XPath(_FOOTER_XPATH)
_HINT_PIECES = ("©", "(c)", "(C)") + tuple(v for w in ("right", "rechte", "droits", "derechos")
                                           for v in (w, w.capitalize(), w.upper()))
# text nodes that may hold (a piece of) a notice hint -- a superset of where _NOTICE_HINT can match in
# practice (a hint word in lower, Capitalised or UPPER case), found in one C-level pass (contains() is a
# substring search; translate() to lower case would cost ~5x more)
_HINT_TEXTS = etree.XPath(".//text()[not(parent::script or parent::style or parent::template)]["
                          + " or ".join(f"contains(., '{p}')" for p in _HINT_PIECES) + "]")


def _text(el) -> str:
    try:
        return el.text_content()
    except ValueError:
        return ""


def _hint_chains(root) -> list[list]:
    """For each text node under ``root`` that may hold a notice hint (document order): its element and
    that element's ancestors, innermost first."""
    chains = []
    for t in _HINT_TEXTS(root):
        owner = t.getparent()
        if owner is not None and t.is_tail:
            owner = owner.getparent()
        if owner is not None:
            chains.append([owner, *owner.iterancestors()])
    return chains


def _notice_candidates(root, out: list[str], seen: set, chains: list[list]) -> None:
    """Short notice-like texts under ``root``, outermost first in document order: the elements reached
    from ``root`` through block elements whose text holds a hint (``seen``: elements already visited
    from another root, not entered again; ``chains``: :func:`_hint_chains` of the page).

    Only the ancestors of text nodes that can hold a hint are looked at, bottom-up, and only while
    their text is short enough to be a notice: an element's text contains its descendants' texts, so
    once a short element's text holds a hint all its ancestors' texts do (page-sized texts are never
    built or searched)."""
    if root in seen:
        return
    state: dict = {}  # element visited from this root -> holds a hint (True) or not (False)
    limit = 2 * _MAX_LINE
    for up in chains:
        try:
            k = up.index(root)
        except ValueError:
            continue  # a text outside root
        new = []  # the elements from root down to the text this walk reaches now for the first time
        for i in range(k, -1, -1):
            el = up[i]
            known = state.get(el)
            if known is False:
                break
            if known is None:
                if el in seen or not isinstance(el.tag, str) or el.tag not in _BLOCK_TAGS:
                    break
                new.append(el)
        if not new:
            continue
        texts: list[str | None] = [None] * len(new)
        deepest = -1  # the deepest new element whose (short) text holds a hint
        for i in range(len(new) - 1, -1, -1):
            raw = texts[i] = _text(new[i])
            if len(raw) > limit:
                break
            if _NOTICE_HINT.search(raw):
                deepest = i
                break
        if deepest < 0:
            continue  # no short element on this chain holds a hint: nothing to emit from it
        for i, el in enumerate(new[:deepest + 2]):  # visited: the ok ones and the first failing one
            seen.add(el)
            state[el] = i <= deepest
        emit = []
        for i in range(deepest, -1, -1):  # bottom-up while short enough to be a notice
            raw = texts[i] if texts[i] is not None else _text(new[i])
            if len(raw) > limit:
                break
            text = _clean_text(raw)
            if text and len(text) <= _MAX_LINE:
                emit.append(text)
        out.extend(reversed(emit))


def _from_footer(page: ParsedPage) -> CopyrightInfo | None:
    try:
        roots = _FOOTER_ROOTS(page.tree)
    except Exception:  # noqa: BLE001
        roots = []
    texts: list[str] = []
    seen: set = set()
    in_roots = set(roots)
    chains = [c for r in roots if not any(a in in_roots for a in r.iterancestors())  # outermost roots
              for c in _hint_chains(r)]
    for r in roots:
        _notice_candidates(r, texts, seen, chains)
    if not texts:  # trailing small print anywhere: the last few notice-like blocks of the page
        body = page.tree.find(".//body")
        if body is not None:
            tail: list[str] = []
            _notice_candidates(body, tail, set(), _hint_chains(body))
            texts = tail[-5:]
    found = []
    for t in sorted(dict.fromkeys(texts), key=len):  # the smallest element that holds the notice
        trimmed = _trim_footer_notice(t)
        info = match_copyright_line(trimmed) or match_copyright_line(t)
        if info:
            found.append(replace(info, notice=trimmed))
    return _best(found)


_FOOTER_NAV = re.compile(
    r"\s*(?:[|·•]\s*)?\b(?:privacy|terms|cookie|impressum|datenschutz|agb|aviso\s+legal|pol[ií]tica\s+de"
    r"|mentions\s+l[ée]gales|confidentialit[ée]|contact|about\s+us|powered\s+by|proudly\s+powered)\b.*$",
    re.I,
)


def _trim_footer_notice(text: str) -> str:
    """The notice without the footer links that share its element ("... Reserved. Privacy | Terms")."""
    trimmed = _FOOTER_NAV.sub("", text).rstrip(" |·•-–—")
    return trimmed if trimmed and _NOTICE_HINT.search(trimmed) else text


# ---------------------------------------------------------------------------------------------------
# the same party?

_GENERIC_TOKENS = {
    "and", "of", "for", "de", "del", "la", "y", "und", "et", "du", "des", "der", "die", "das",
    "news", "daily", "times", "post", "press", "media", "group", "radio", "public", "tv", "television",
    "network", "journal", "herald", "chronicle", "tribune", "gazette", "review", "magazine", "online",
    "digital", "publishing", "publications", "company", "holdings", "newspapers", "newspaper", "wire",
    "service", "agency", "report", "diario", "periódico", "ediciones", "editorial", "grupo", "prensa",
    "noticias", "verlag", "zeitung", "nachrichten", "medien", "journal", "quotidien", "éditions",
    "presse", "groupe", "le", "el", "city", "county", "national", "international", "new", "world",
}
_STOP_TOKENS = {"the", "a", "an", "el", "la", "los", "las", "der", "die", "das", "le", "les", "l"}


def _tokens(name: str) -> list[str]:
    n = name.lower().replace("&", " and ")
    n = _LEGAL_FORMS.sub("", n)
    toks = re.findall(r"[^\W_]+", n)
    return [t for t in toks if t not in _STOP_TOKENS]


def _domain_label(domain: str | None) -> str | None:
    if not domain:
        return None
    d = domain.lower().removeprefix("www.")
    parts = d.split(".")
    if len(parts) >= 3 and parts[-2] in ("co", "com", "org", "net", "ac", "gov") and len(parts[-1]) == 2:
        return parts[-3]
    return parts[-2] if len(parts) >= 2 else parts[0]


def same_party(holder: str, site_name: str | None, domain: str | None = None) -> bool | None:
    """Loose equality of a copyright holder with the publishing site (name and/or domain).
    None when there is nothing to compare with."""
    ht = _tokens(holder)
    if not ht:
        return None
    compared = False
    if site_name:
        st = _tokens(site_name)
        if st:
            compared = True
            hs, ss = set(ht), set(st)
            if hs <= ss or ss <= hs:
                return True
            if "".join(ht) == "".join(st):
                return True
            initials = "".join(t[0] for t in ht if t not in {"and", "of", "for"})
            if len(ht) == 1 and len(ht[0]) >= 2 and ht[0] == "".join(t[0] for t in st if t not in {"and", "of"}):
                return True
            if len(st) == 1 and len(initials) >= 2 and st[0] == initials:
                return True
            # a shared distinctive word: "Ediciones del Valle" runs "Diario del Valle"
            if (hs & ss) - _GENERIC_TOKENS:
                return True
    label = _domain_label(domain)
    if label:
        compared = True
        joined = "".join(ht)
        initials = "".join(t[0] for t in ht if t not in {"and", "of", "for"})
        if joined == label or (len(joined) >= 4 and (joined in label or label in joined)):
            return True
        if len(initials) >= 2 and (label == initials or re.fullmatch(
                rf"{re.escape(initials)}(?:news|online|net|web|media|radio|tv|digital)?", label)):
            return True
    return False if compared else None


# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeEvidence:
    """The copyright evidence read from the untouched tree, in evidence order (jsonld, meta, rel_license,
    footer): each a :class:`CopyrightInfo` with its ``source`` set. Collect it before the cleaner
    mutates the tree (:func:`tree_evidence`); :func:`combine` adds the body line and decides."""

    candidates: tuple[CopyrightInfo, ...] = ()
    url: str | None = None  # the page URL (domain fallback for ``syndicated``)


_TREE_STEPS = (("jsonld", _from_jsonld), ("meta", _from_meta), ("rel_license", _from_rel_license),
               ("footer", _from_footer))
_SOURCE_ORDER = ("jsonld", "body_line", "meta", "rel_license", "footer")  # article-level, then site-level


def tree_evidence(page: ParsedPage) -> TreeEvidence:
    """Every tree source of copyright evidence (all but the body line). Never raises for data problems."""
    found: list[CopyrightInfo] = []
    for source, step in _TREE_STEPS:
        try:
            info = step(page)
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):
            info = None
        if info is not None:
            found.append(replace(info, source=source))
    return TreeEvidence(candidates=tuple(found), url=page.url)


def combine(evidence: TreeEvidence, body: Iterable[CopyrightInfo | None] = (), *,
            metadata: Metadata | None = None, site_name: str | None = None) -> CopyrightInfo:
    """THE combination rule (see the module docstring), in one place.

    ``evidence``: :func:`tree_evidence` of the untouched page; ``body``: notices matched on the trailing
    in-body lines (``match_copyright_line`` results, in the order captured; the first naming a holder
    speaks for the body, the first licence among them counts). Always returns a CopyrightInfo."""
    body_info = _best([b for b in body if b is not None])
    by_source = {c.source: c for c in evidence.candidates}
    if body_info is not None:
        by_source["body_line"] = replace(body_info, source="body_line")
    candidates = [by_source[s] for s in _SOURCE_ORDER if s in by_source]
    if not candidates:
        return EMPTY
    primary = next((c for c in candidates if c.holder), None) or next(
        (c for c in candidates if c.notice or c.license_url), candidates[0])
    license_url = next((c.license_url for c in candidates if c.license_url), None)
    year = primary.year
    if year is None and primary.holder:  # same holder stated elsewhere with a year
        for c in candidates:
            if c.year and c.holder and same_party(c.holder, primary.holder):
                year = c.year
                break
    syndicated = None
    if primary.holder and primary.source == "footer":
        syndicated = False  # the site's own footer names the site's operator, by definition not syndication
    elif primary.holder:
        site = site_name or (metadata.site_name if metadata else None)
        url = (metadata.canonical_url if metadata else None) or evidence.url
        try:
            same = same_party(primary.holder, site, domain_of(url) if url else None)
        except (ValueError, TypeError):
            same = None
        syndicated = None if same is None else not same
    return replace(primary, year=year, license_url=license_url, syndicated=syndicated)
