"""tasks.dates: the one parser of machine-written dates (feeds, sitemaps, WARC headers, CLI bounds)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from newsmill.tasks.dates import as_utc, parse_date_bound, parse_datetime
from newsmill.tasks.errors import ConfigError

UTC = timezone.utc


@pytest.mark.parametrize("value, expected", [
    ("2024-05-01T12:30:00Z", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),  # WARC-Date, Atom
    ("2024-05-01T14:30:00+02:00", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),  # sitemap lastmod
    ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),  # a bare date: its UTC midnight
    ("2024-05-01T12:30:00", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),  # naive: UTC
    ("Wed, 01 May 2024 12:30:00 GMT", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),  # RSS pubDate
    ("Wed, 01 May 2024 14:30:00 +0200", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
    (time.struct_time((2024, 5, 1, 12, 30, 0, 2, 122, 0)), datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),  # feedparser
    (datetime(2024, 5, 1, 12, 30), datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
])
def test_parse_datetime_reads_the_machine_formats(value, expected):
    got = parse_datetime(value)
    assert got == expected and got.tzinfo is not None


def test_parse_datetime_keeps_the_offset_it_was_given():
    assert parse_datetime("2024-05-01T14:30:00+02:00").utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("value", [None, "", "   ", "yesterday", "2024-13-45", "Wed, 99 Foo 2024", 7,
                                   time.struct_time((2024, 13, 1, 0, 0, 0, 0, 1, 0))])
def test_parse_datetime_never_raises(value):
    assert parse_datetime(value) is None


def test_as_utc_only_fills_a_missing_zone():
    aware = datetime(2024, 5, 1, tzinfo=timezone(timedelta(hours=-4)))
    assert as_utc(aware) is aware
    assert as_utc(datetime(2024, 5, 1)).tzinfo is UTC


def test_date_bounds_name_the_option():
    assert parse_date_bound("2024-05-31", end=True) == datetime(2024, 6, 1, tzinfo=UTC)
    with pytest.raises(ConfigError, match="^--since: expected an ISO date"):
        parse_date_bound("last week", name="--since")
