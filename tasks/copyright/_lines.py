"""``CopyrightInfo`` and one notice line: licence URLs, holders and years, ``match_copyright_line``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import urlsplit

from newsmill.tasks.copyright._vocab import (_ABBREV, _CC_WORDS, _CONNECTORS, _HOLDER_STOP, _LEGAL_FORMS,
                                             _LICENSE_LINE, _MARK, _MAX_LINE, _REPUBLISHED, _RIGHTS, _TAILS, _URL,
                                             _YEAR, _YEAR_RANGE)
from newsmill.tasks.jsonld import clean_text
from newsmill.tasks.urls import normalize_url


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
# licence URLs


def normalize_license_url(url: Any) -> str | None:
    """Canonical licence URL. Creative Commons: ``https://creativecommons.org/licenses/<type>/<ver>/``
    (jurisdiction ports kept, ``deed.xx`` / ``legalcode`` dropped). Other http(s) URLs: normalised."""
    s = clean_text(url)
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


def _cc_url(parts: Iterable[str], version: str | None) -> str | None:
    ps = set(parts)
    if "by" not in ps or ("nd" in ps and "sa" in ps):
        return None
    code = "-".join(p for p in ("by", "nc", "nd", "sa") if p in ps)
    return f"https://creativecommons.org/licenses/{code}/{version or '4.0'}/"


def license_from_text(text: str | None) -> str | None:
    """A licence URL from a notice: an explicit URL (normalised), or a CC licence named with its type
    ("CC BY-NC-ND 4.0", "Creative Commons Attribution-NoDerivatives 4.0 International", "CC0")."""
    s = clean_text(text)
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
    s = clean_text(text)
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
    s = clean_text(text)
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
