"""The published date when the page's structured values disagree (issue 12): a re-dated or republished
article keeps one day in its JSON-LD and another in its meta tags, and prints one of them. The printed one
wins; with none or both printed, or with agreeing values, the order stays JSON-LD -> meta. Pages written
for the test in the style of news and blog templates."""

from __future__ import annotations

import json
from datetime import date

import pytest

from newsmill.tasks.metadata import extract_metadata
from newsmill.tasks.parse import parse_html

URL = "https://www.harbourtown-post.example/lokales/neue-faehre-am-kai"
LD = {"@context": "https://schema.org", "@type": "NewsArticle", "headline": "Neue Fähre am Kai",
      "datePublished": "2023-11-03T10:25:56+00:00", "dateModified": "2023-11-06T14:26:51+00:00"}
BODY_TEXT = ("<p>Die neue Fähre hat am Wochenende ihre ersten Fahrten über den Hafen gemacht. Die Betreiber "
             "rechnen im ersten Jahr mit rund 40.000 Fahrgästen.</p>")


def _page(printed: str, *, meta: str = '<meta property="article:published_time" content="2023-11-06T14:25:00+00:00">',
          ld: dict | None = LD, lang: str = "de") -> object:
    script = f'<script type="application/ld+json">{json.dumps(ld)}</script>' if ld else ""
    html = (f"<!doctype html><html lang='{lang}'><head><title>Neue Fähre am Kai</title>{meta}{script}</head>"
            f"<body><article><h1>Neue Fähre am Kai</h1><div class='meta'>{printed}</div>{BODY_TEXT}</article>"
            "</body></html>")
    return extract_metadata(parse_html(html, URL))


def test_meta_day_printed_on_the_page_beats_the_jsonld_day():
    md = _page("<span class='date'>6. November 2023</span>")
    assert md.published_date == date(2023, 11, 6)
    assert md.published_at.date() == date(2023, 11, 6)  # the instant of the same reading


def test_jsonld_day_printed_keeps_the_jsonld_value():
    md = _page("<span class='date'>03.11.2023</span>")
    assert md.published_date == date(2023, 11, 3)


@pytest.mark.parametrize("printed", [
    "",  # nothing printed: JSON-LD first, as before
    "<span>Erstellt 03.11.2023</span> <span>Aktualisiert 06.11.2023</span>",  # both printed: no evidence
])
def test_no_single_printed_day_keeps_the_order(printed):
    assert _page(printed).published_date == date(2023, 11, 3)


def test_repeated_meta_tag_is_a_teaser_list_not_a_reading():
    """itemprop/meta datePublished repeated once per teaser in a list does not count."""
    teasers = ('<meta name="datePublished" content="2023-11-06T08:00:00+01:00">'
               '<meta name="datePublished" content="2023-11-05T08:00:00+01:00">')
    md = _page("<span class='date'>6. November 2023</span>", meta=teasers)
    assert md.published_date == date(2023, 11, 3)


def test_agreeing_values_are_not_second_guessed():
    ld = dict(LD, datePublished="2023-11-06T14:25:00+00:00")
    md = _page("<span>Mehr vom 3. November 2023</span>", ld=ld)
    assert md.published_date == date(2023, 11, 6)


def test_utc_instant_on_the_publishers_next_day_is_not_a_disagreement():
    """22:04 UTC and the same instant written with the publisher's offset (00:04 the next morning) are
    one day in the publisher's zone: no disagreement, so a teaser date printed on the page moves nothing."""
    ld = dict(LD, datePublished="2019-10-18T22:04:00Z")
    meta = '<meta property="article:published_time" content="2019-10-19T00:04:00+02:00">'
    md = _page("<span>Ähnlich: 18.10.2019</span>", meta=meta, ld=ld)
    assert md.published_date == date(2019, 10, 19)


@pytest.mark.parametrize("printed,expected", [
    ("veröffentlicht am 6. November 2023, 15:25 Uhr", date(2023, 11, 6)),
    ("Published Nov. 6, 2023", date(2023, 11, 6)),
    ("6 de noviembre de 2023", date(2023, 11, 6)),
    ("le 6 novembre 2023", date(2023, 11, 6)),
    ("06.11.23", date(2023, 11, 6)),
    ("<time>2023-11-06</time>", date(2023, 11, 6)),
    # not the meta day: the JSON-LD value stays
    ("16. November 2023", date(2023, 11, 3)),
    ("6. November 2022", date(2023, 11, 3)),
    ("Seite 6. November-Ausgabe", date(2023, 11, 3)),
])
def test_printed_forms(printed, expected):
    assert _page(f"<span class='date'>{printed}</span>").published_date == expected
