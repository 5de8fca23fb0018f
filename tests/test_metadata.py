"""Unit tests for tasks.metadata: fallback order per field, author cleaning, dates, errors as values."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from newsmill.tasks.errors import ConfigError
from newsmill.tasks.metadata import (
    Metadata,
    SiteRule,
    article_node,
    clean_authors,
    css_to_xpath,
    extract_metadata,
    parse_date,
    site_rule_from_dict,
)
from newsmill.tasks.parse import parse_html

URL = "https://www.example-news.org/2024/05/story?utm_source=feed"


def page(head: str = "", body: str = "", lang: str | None = "en", url: str = URL, jsonld=None):
    ld = ""
    for obj in jsonld or ():
        ld += f'<script type="application/ld+json">{obj if isinstance(obj, str) else json.dumps(obj)}</script>'
    la = f' lang="{lang}"' if lang else ""
    return parse_html(f"<!doctype html><html{la}><head>{head}{ld}</head><body>{body}</body></html>", url)


# ---- authors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    (["By Jane Doe"], ("Jane Doe",)),
    (["by jane doe and John Roe"], ("John Roe",)),  # an all-lower-case token is not a name
    (["By Jane Doe and John Roe"], ("Jane Doe", "John Roe")),
    (["Ana García, Luis Pérez and Marta Ruiz"], ("Ana García", "Luis Pérez", "Marta Ruiz")),
    (["Por Ana García y Pedro López"], ("Ana García", "Pedro López")),
    (["Von Max Müller und Erika Mustermann"], ("Max Müller", "Erika Mustermann")),
    (["Par Marie Dupont et Jean Martin"], ("Marie Dupont", "Jean Martin")),
    (["Jane Doe | AP"], ("Jane Doe",)),
    (["Jane Doe, Staff Writer"], ("Jane Doe",)),
    (["Rob Schmitz, Correspondent"], ("Rob Schmitz",)),
    (["Jane Doe, The Associated Press"], ("Jane Doe",)),
    (["Jane Doe — Senior Political Reporter"], ("Jane Doe",)),
    (["Jane Doe (jane.doe@example.com)"], ("Jane Doe",)),
    (["JANE DOE"], ("Jane Doe",)),
    (["Jane Doe is a staff writer covering courts."], ("Jane Doe",)),
    (["https://www.facebook.com/janedoe"], ()),
    (["jane@example.com"], ()),
    (["Staff"], ()),
    (["Associated Press"], ()),
    (["Jane Doe", "jane doe", "JANE DOE"], ("Jane Doe",)),
    (["By"], ()),
    (["Sarah E. Needleman"], ("Sarah E. Needleman",)),  # a middle initial is not the Portuguese "e"
    (["Bruce Y. Lee"], ("Bruce Y. Lee",)),  # ... nor the Spanish "y"
    (["Analysis by Chris Doe, Example Editor-at-large"], ("Chris Doe",)),
    (["Amy Roe | Example Advance Media for example.com"], ("Amy Roe",)),
    (["Jeff Doe Monday, June 3, 2019"], ("Jeff Doe",)),
    (["Grace Whitaker, The Open Ledger"], ("Grace Whitaker",)),
    (["TERESA ALVARADO Associated Press"], ("Teresa Alvarado",)),
    (["Editorial Board"], ()),
])
def test_clean_authors(raw, expected):
    assert clean_authors(raw) == expected


def test_authors_from_jsonld_persons_and_references():
    ld = {"@context": "https://schema.org", "@graph": [
        {"@type": "Person", "@id": "#p1", "name": "Lena Ortiz, Staff Writer"},
        {"@type": "NewsArticle", "headline": "H", "author": [{"@id": "#p1"}, {"@type": "Person", "name": "Tom Ash"},
                                                           {"@type": "Organization", "name": "Example News"}]},
    ]}
    md = extract_metadata(page(jsonld=[ld]))
    assert md.authors == ("Lena Ortiz", "Tom Ash")


def test_authors_fall_back_to_meta_then_byline():
    md = extract_metadata(page(head='<meta name="author" content="By Kim Lee and Sam Roy">'))
    assert md.authors == ("Kim Lee", "Sam Roy")
    md = extract_metadata(page(head='<meta property="article:author" content="https://facebook.com/x">',
                               body='<p class="byline">By <a rel="author" href="/a/ed">Ed Park</a></p>'))
    assert md.authors == ("Ed Park",)


def test_site_rule_selector_beats_jsonld():
    ld = {"@type": "NewsArticle", "author": {"@type": "Person", "name": "Wrong Person"}}
    rule = site_rule_from_dict({"author_selector": "div.credit span.name"})
    md = extract_metadata(page(body='<div class="credit"><span class="name">Right Person</span></div>',
                               jsonld=[ld]), rule)
    assert md.authors == ("Right Person",)


# ---- dates -----------------------------------------------------------------------------------------

def test_parse_date_timezones():
    assert parse_date("2024-05-03T10:00:00Z") == datetime(2024, 5, 3, 10, tzinfo=timezone.utc)
    d = parse_date("2024-05-03T10:00:00-04:00")
    assert d.utcoffset() == timedelta(hours=-4)
    naive = parse_date("2024-05-03 10:00")
    assert naive.tzinfo is not None and naive.utcoffset() == timedelta(0)
    est = parse_date("May 3, 2024 10:00 AM EDT")
    assert est.utcoffset() == timedelta(hours=-4)
    assert parse_date("06.07.2024") == datetime(2024, 7, 6, tzinfo=timezone.utc)  # day first
    assert parse_date("1714730400") == datetime(2024, 5, 3, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize("bad", [None, "", "garbage", "2024", "May 2024", "soon", "3000-01-01", {"x": 1}, True])
def test_parse_date_bad_values_are_none(bad):
    assert parse_date(bad) is None


def test_published_and_modified_are_separate():
    ld = {"@type": "NewsArticle", "datePublished": "2024-05-03T10:00:00+02:00",
          "dateModified": "2024-05-04T08:30:00+02:00"}
    md = extract_metadata(page(jsonld=[ld]))
    assert md.published_at == datetime(2024, 5, 3, 8, tzinfo=timezone.utc)
    assert md.modified_at == datetime(2024, 5, 4, 6, 30, tzinfo=timezone.utc)


def test_dates_meta_then_time_element():
    md = extract_metadata(page(head='<meta property="article:published_time" content="2024-01-02T03:04:05Z">'
                                    '<meta property="article:modified_time" content="not a date">'))
    assert md.published_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert md.modified_at is None
    md = extract_metadata(page(body='<article><time datetime="2023-11-20T12:00:00-05:00">Nov 20</time></article>'))
    assert md.published_at == datetime(2023, 11, 20, 17, tzinfo=timezone.utc)


def test_bad_jsonld_date_falls_through_to_meta():
    ld = {"@type": "NewsArticle", "datePublished": "yesterday"}
    md = extract_metadata(page(head='<meta property="article:published_time" content="2024-02-02">', jsonld=[ld]))
    assert md.published_at == datetime(2024, 2, 2, tzinfo=timezone.utc)


# ---- article node, image, paywall ------------------------------------------------------------------

def test_article_node_skips_images_and_webpages():
    ld = {"@graph": [
        {"@type": "WebPage", "name": "Page name"},
        {"@type": "ImageObject", "url": "https://cdn.example/i.jpg", "name": "Image"},
        {"@type": ["NewsArticle"], "headline": "Real headline", "image": {"@type": "ImageObject",
                                                                          "url": "/img/lead.jpg"}},
    ]}
    p = page(jsonld=[ld])
    assert article_node(p)["headline"] == "Real headline"
    md = extract_metadata(p)
    assert md.title == "Real headline"
    assert md.image_url == "https://www.example-news.org/img/lead.jpg"


def test_webpage_main_entity_article():
    ld = {"@type": "WebPage", "mainEntity": {"@type": "BlogPosting", "headline": "Nested"}}
    assert extract_metadata(page(jsonld=[ld])).title == "Nested"


@pytest.mark.parametrize("value, expected", [(False, True), ("False", True), ("false", True), (True, False),
                                             ("True", False), (None, None), ("maybe", None)])
def test_paywalled(value, expected):
    ld = {"@type": "NewsArticle", "headline": "H"}
    if value is not None:
        ld["isAccessibleForFree"] = value
    assert extract_metadata(page(jsonld=[ld])).paywalled is expected


def test_broken_jsonld_is_ignored():
    p = page(head='<meta property="og:title" content="OG title | Example News">'
                  '<meta property="og:site_name" content="Example News">',
             jsonld=['{"@type": "NewsArticle", "headline": ', '[1, 2, "x"]', '{"@type": 5, "author": 7}'])
    md = extract_metadata(p)
    assert md.title == "OG title"
    assert md.authors == ()


# ---- site name, canonical, tags, language ----------------------------------------------------------

def test_site_name_never_from_copyright_meta():
    md = extract_metadata(page(head='<meta name="copyright" content="© 2024 Wire Co">'))
    assert md.site_name is None
    ld = {"@type": "NewsArticle", "publisher": {"@type": "Organization", "name": "LD Publisher"}}
    assert extract_metadata(page(jsonld=[ld])).site_name == "LD Publisher"
    md = extract_metadata(page(head='<meta property="og:site_name" content="OG Site">', jsonld=[ld]))
    assert md.site_name == "OG Site"


def test_canonical_url_order_and_normalisation():
    p = page(head='<link rel="canonical" href="/2024/05/story-canonical?utm_medium=x#top">'
                  '<meta property="og:url" content="https://other.example/og">')
    assert extract_metadata(p).canonical_url == "https://www.example-news.org/2024/05/story-canonical"
    p = page(head='<meta property="og:url" content="https://www.example-news.org/og-url">')
    assert extract_metadata(p).canonical_url == "https://www.example-news.org/og-url"
    assert extract_metadata(page()).canonical_url == "https://www.example-news.org/2024/05/story"


def test_tags_sources():
    ld = {"@type": "NewsArticle", "keywords": ["Elections", "Budget", "elections"]}
    assert extract_metadata(page(jsonld=[ld])).tags == ("Elections", "Budget")
    p = page(head='<meta property="article:tag" content="Rivers"><meta property="article:tag" content="Floods">'
                  '<meta name="keywords" content="a, b">')
    assert extract_metadata(p).tags == ("Rivers", "Floods")
    assert extract_metadata(page(head='<meta name="keywords" content="a, b ,c">')).tags == ("a", "b", "c")


def test_language():
    assert extract_metadata(page(lang="es-ES")).html_lang == "es"
    p = page(lang=None, head='<meta property="og:locale" content="de_DE">')
    assert extract_metadata(p).html_lang == "de"
    assert extract_metadata(page(lang=None), SiteRule(language="fr")).html_lang == "fr"


def test_title_fallbacks():
    p = page(head="<title>Visible title | Example News</title>", body="<h1>The H1</h1>")
    assert extract_metadata(p).title == "The H1"
    assert extract_metadata(page(head="<title>Only title | Example News</title>")).title == "Only title"


def test_metadata_is_frozen():
    md = extract_metadata(page())
    assert isinstance(md, Metadata)
    with pytest.raises(Exception):
        md.title = "x"  # type: ignore[misc]


# ---- site rules ------------------------------------------------------------------------------------

def test_site_rule_from_whole_site_file_and_metadata_table():
    r = site_rule_from_dict({"domain": "wxyz.org", "remove": [{"selector": ".x"}],
                             "metadata": {"site_name": "WXYZ", "date_selector": "time.pub"}})
    assert r == SiteRule(domain="wxyz.org", site_name="WXYZ", date_selector="time.pub")
    assert site_rule_from_dict({"site_name": "X"}).site_name == "X"
    assert site_rule_from_dict(None) == SiteRule()


@pytest.mark.parametrize("bad", [{"nonsense": "x"}, {"site_name": 3}, {"author_selector": "div[["},
                                 {"metadata": "x"}])
def test_site_rule_errors_name_the_key(bad):
    with pytest.raises(ConfigError, match="metadata"):
        site_rule_from_dict(bad)


def test_css_subset():
    assert css_to_xpath("h1") == ".//h1"
    assert css_to_xpath("article > time[datetime]") == ".//article/time[@datetime]"
    assert "@id='x'" in css_to_xpath("#x")
    with pytest.raises(ValueError):
        css_to_xpath("a:hover")


def test_comment_authors_and_site_name_are_not_bylines():
    body = ('<article><p>Text.</p></article><div id="comments"><span class="author">Rob W</span> commented</div>')
    assert extract_metadata(page(body=body)).authors == ()
    p = page(head='<meta property="og:site_name" content="Futurism"><meta name="author" content="Vic Tang, Futurism">')
    assert extract_metadata(p).authors == ("Vic Tang",)
