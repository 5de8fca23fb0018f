"""The evidence sources read from the page tree: JSON-LD, meta, rel=license, the footer notice."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from lxml import etree

from newsmill.tasks.copyright._lines import (CopyrightInfo, _holderish, _info, _latest_year, license_from_text,
                                             match_copyright_line, normalize_holder, normalize_license_url)
from newsmill.tasks.copyright._vocab import _MAX_LINE
from newsmill.tasks.jsonld import article_node, as_list, clean_text, id_index, resolve
from newsmill.tasks.parse import ParsedPage

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
    for v in as_list(value):
        v = resolve(v, idx)
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
    idx = id_index(page)
    holder = None
    for h in as_list(node.get("copyrightHolder")):
        h = resolve(h, idx)
        raw = h if isinstance(h, str) else (h.get("name") or h.get("legalName")) if isinstance(h, dict) else None
        holder = normalize_holder(raw)
        if holder:
            break
    year = _ld_year(node.get("copyrightYear"))
    notice = clean_text(node.get("copyrightNotice"))
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
            value = clean_text(v)
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
# practice (a hint word in lower, Capitalised or UPPER case). The text nodes come from one C-level walk and
# are tested with one regex search each: an XPath with a contains() per piece copies every text node once
# per piece (~4 ms on a page's body, against ~1 ms; translate() to lower case would cost ~5x more).
_ALL_TEXTS = etree.XPath(".//text()")
_HINT_PIECE = re.compile("|".join(map(re.escape, _HINT_PIECES)))
_NOT_TEXT_PARENTS = ("script", "style", "template")


def _text(el) -> str:
    try:
        return el.text_content()
    except ValueError:
        return ""


def _hint_chains(root) -> list[list]:
    """For each text node under ``root`` that may hold a notice hint (document order): its element and
    that element's ancestors, innermost first."""
    chains = []
    for t in _ALL_TEXTS(root):
        if _HINT_PIECE.search(t) is None:
            continue
        owner = t.getparent()  # the text's element in the document (a tail's is its element's parent)
        if owner is not None and t.is_tail:
            owner = owner.getparent()
        if owner is not None and owner.tag not in _NOT_TEXT_PARENTS:
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
            text = clean_text(raw)
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
