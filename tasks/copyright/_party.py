"""``same_party``: is a copyright holder the publishing site?"""

from __future__ import annotations

import re

from newsmill.tasks.copyright._vocab import _LEGAL_FORMS

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
