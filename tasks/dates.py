"""Machine-written dates → aware datetimes: the one parser for feeds, sitemaps, WARC headers and the
``--since``/``--until`` bounds of the CLI and flows.

Dates printed on article pages for people ("18 June 2019, 14:05 CEST") are the metadata extractor's
business (``tasks.metadata.parse_when``, with htmldate/dateutil); HTTP ``Retry-After`` dates are read in
``tasks.fetch``.
"""

from __future__ import annotations

import email.utils
from datetime import date, datetime, time, timedelta, timezone

from newsmill.tasks.errors import ConfigError

__all__ = ["as_utc", "parse_date_bound", "parse_datetime"]


def as_utc(dt: datetime) -> datetime:
    """``dt`` with a time zone: naive values are taken as UTC (aware ones keep their offset)."""
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def parse_datetime(value) -> datetime | None:
    """An aware datetime from a ``datetime``, a ``time.struct_time`` (feedparser's ``*_parsed``), ISO 8601
    text (``Z`` allowed: WARC-Date, sitemap ``lastmod``, Atom) or RFC 2822 / HTTP-date text (RSS
    ``pubDate``). Naive values are UTC. None for anything else — never raises."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    if hasattr(value, "tm_year"):
        try:
            return datetime(*value[:6], tzinfo=timezone.utc)
        except (TypeError, ValueError):
            return None
    text = str(value).strip()
    if not text:
        return None
    try:
        return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        pass
    try:
        dt = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return as_utc(dt) if dt is not None else None


def parse_date_bound(value: str | date | datetime | None, *, end: bool = False,
                     name: str = "date") -> datetime | None:
    """``--since``/``--until`` → an aware UTC datetime. A bare date means the whole day: ``since`` is its
    midnight, ``until`` the next midnight (``--until 2024-05-31`` includes May 31). A full timestamp is
    used as given (naive = UTC); ``until`` is exclusive. ConfigError naming ``name`` otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time.min) + (timedelta(days=1) if end else timedelta(0))
    else:
        text = str(value).strip()
        try:
            if len(text) == 10:
                d = date.fromisoformat(text)
                dt = datetime.combine(d, time.min) + (timedelta(days=1) if end else timedelta(0))
            else:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{name}: expected an ISO date (YYYY-MM-DD) or timestamp, got {value!r}") from None
    return as_utc(dt).astimezone(timezone.utc)
