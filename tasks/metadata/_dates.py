"""Dates: ``parse_when``/``parse_date``, ``published_when``, ``publisher_day``, ``modified_of``."""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable
from urllib.parse import urlsplit

from lxml import etree

from newsmill.tasks.jsonld import clean_text, page_ld
from newsmill.tasks.metadata._common import _el_text, _meta
from newsmill.tasks.metadata._records import SiteRule, _select
from newsmill.tasks.metadata._title_site import _lang_code
from newsmill.tasks.parse import ParsedPage

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
    if isinstance(value, str):  # a page's date strings are read by several rules: each parsed once
        return _parse_when_text(value)
    return _parse_when(value)


@functools.lru_cache(maxsize=4096)
def _parse_when_text(value: str) -> When | None:
    return _parse_when(value)


def _parse_when(value: Any) -> When | None:
    from dateutil import parser as du

    if isinstance(value, datetime):
        dt = value
        zone_known = dt.tzinfo is not None and dt.utcoffset() is not None
        timed = True
    else:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(int(value))
        s = clean_text(value)
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
# one walk for the <time> elements (a <time datetime> inside an <article> is one of them: no step of its own)
_TIME_XPATH = etree.XPath(
    ".//time[@itemprop='datePublished' or @pubdate or contains(@class,'publish') or @datetime]"
    " | .//@itemprop[. = 'datePublished']/..")
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
    ``itemprop=datePublished`` elements -> htmldate on the tree (extensive search, original date).
    When the article node and the meta tags state different days, the one printed on the page wins
    (:func:`_printed_choice`)."""
    times = _times or _lazy_times(page)
    if site and site.date_selector:
        w = _when_from_elements(_select(page, site.date_selector))
        if w:
            return w
    node, _ = page_ld(page)
    if node:
        for key in _LD_PUBLISHED:
            w = parse_when(node.get(key))
            if w:
                return _printed_choice(page, w, node, times)
    for key in _PUBLISHED_META:
        for v in _meta(page, key):
            w = parse_when(v)
            if w:
                return _printed_choice(page, w, node, times)
    w = _when_from_elements(times())
    if w:
        return w
    return _htmldate(page, original=True)


# Month names (and their first three letters) of the languages most pages are in, for finding a date as
# printed ("6. November 2023", "November 6, 2023", "6 de noviembre de 2023"); index 0 = January.
_MONTH_NAMES = (
    ("january", "januar", "jänner", "janvier", "enero", "gennaio", "janeiro", "januari"),
    ("february", "februar", "février", "febrero", "febbraio", "fevereiro", "februari"),
    ("march", "märz", "mars", "marzo", "março", "maart"),
    ("april", "avril", "abril", "aprile"),
    ("may", "mai", "mayo", "maggio", "maio", "mei"),
    ("june", "juni", "juin", "junio", "giugno", "junho"),
    ("july", "juli", "juillet", "julio", "luglio", "julho"),
    ("august", "août", "agosto", "augustus"),
    ("september", "septembre", "septiembre", "settembre", "setembro"),
    ("october", "oktober", "octobre", "octubre", "ottobre", "outubro"),
    ("november", "novembre", "noviembre", "novembro"),
    ("december", "dezember", "décembre", "diciembre", "dicembre", "dezembro"),
)


def _day_printed(day: date, text: str) -> bool:
    """Whether ``day`` is written in ``text`` (casefolded page text) in a common numeric or month-name
    form: 06.11.2023, 6.11.23, 2023-11-06, 06/11/2023, 11/06/2023, 6. November 2023, 6 nov. 2023,
    November 6, 2023, 6 de noviembre de 2023."""
    d, m, y = day.day, day.month, day.year
    names = "|".join(sorted({n for full in _MONTH_NAMES[m - 1] for n in (full, full[:3])}, key=len, reverse=True))
    pattern = (rf"(?<!\d)(?:0?{d}\.\s?0?{m}\.\s?(?:{y}|{y % 100:02d})|{y}-{m:02d}-{d:02d}|0?{d}/0?{m}/{y}|0?{m}/0?{d}/{y}"
               rf"|0?{d}(?:\.|º|er)?\s*(?:de\s+)?(?:{names})\.?,?\s*(?:de\s+|del\s+)?{y}"
               rf"|(?<![a-zäöüéû])(?:{names})\.?\s+0?{d}(?:st|nd|rd|th)?,?\s+{y})(?!\d)")
    return re.search(pattern, text) is not None


def _printed_choice(page: ParsedPage, chosen: When, node: dict | None, times) -> When:
    """``chosen`` (the article node's published value, else the first published meta tag), unless the
    page's structured published values — the article node's and every published meta tag stated once
    (a tag repeated is a list of teasers) — fall on different days in the publisher's zone: then the one
    whose day is printed in the page's text, when exactly one is (a republished or re-dated article
    keeps one of them in its markup while the page shows the other). Pages whose values agree (nearly
    all) cost one parse per tag; the page text is read only on the others."""
    readings = [chosen]
    if node:
        for key in _LD_PUBLISHED:
            w = parse_when(node.get(key))
            if w:
                readings.append(w)
                break
    for key in _PUBLISHED_META:
        values = _meta(page, key)
        if len(values) == 1:
            w = parse_when(values[0])
            if w:
                readings.append(w)
    if len({w.day for w in readings}) < 2:
        return chosen
    days: dict[date, When] = {}
    for w in readings:
        days.setdefault(publisher_day(page, w, times), w)
    if len(days) < 2:
        return chosen
    try:
        text = " ".join(page.tree.xpath("//body//text()[not(ancestor::script) and not(ancestor::style)]"))
    except Exception:  # noqa: BLE001
        return chosen
    text = re.sub(r"\s+", " ", text).casefold()
    printed = [d for d in days if _day_printed(d, text)]
    return days[printed[0]] if len(printed) == 1 else chosen


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
    node, _ = page_ld(page)
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
