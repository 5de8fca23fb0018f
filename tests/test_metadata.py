"""Unit tests for tasks.metadata: fallback order per field, author cleaning, dates, errors as values."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from newsmill.tasks.errors import ConfigError
from newsmill.tasks.selectors import css_to_xpath
from newsmill.tasks.metadata import (
    Metadata,
    SiteRule,
    article_node,
    clean_authors,
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


def test_css_selectors_select_what_css_means():
    from lxml import html as lxml_html

    tree = lxml_html.fromstring('<html><body><article><time datetime="2024-01-02">x</time><p id="x" '
                                'class="a byline">By Ann</p></article><time>y</time></body></html>')
    texts = lambda sel: [e.text for e in tree.xpath(css_to_xpath(sel))]  # noqa: E731
    assert texts("article > time[datetime]") == ["x"]
    assert texts("time") == ["x", "y"]
    assert texts("#x") == texts(".byline") == texts("p.a.byline") == ["By Ann"]
    assert texts("p:hover") == []  # a dynamic state never matches a static page
    with pytest.raises(ValueError):
        css_to_xpath("div[[")


def test_comment_authors_and_site_name_are_not_bylines():
    body = ('<article><p>Text.</p></article><div id="comments"><span class="author">Rob W</span> commented</div>')
    assert extract_metadata(page(body=body)).authors == ()
    p = page(head='<meta property="og:site_name" content="Futurism"><meta name="author" content="Vic Tang, Futurism">')
    assert extract_metadata(p).authors == ("Vic Tang",)


# ---- issue 12: author evidence and name validation ---------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    # user-interface strings are never names, whatever the language
    (["View my complete profile"], ()),
    (["Afficher mon profil complet"], ()),
    (["Weitere Artikel"], ()),
    (["Donnerstag"], ()),
    # the name in an author-archive link text is kept, the link words are not
    (["View all posts by Dana Whitlock"], ("Dana Whitlock",)),
    (["Zeige alle Beiträge von Ole Brandt →"], ()),  # an arrow is not part of a name: no guess
    (["Veröffentlicht von Kai Lindqvist"], ("Kai Lindqvist",)),
    # degrees and job titles after a comma are not second names
    (["Grant Ellery, PhD"], ("Grant Ellery",)),
    (["Alicia Moreno, MD"], ("Alicia Moreno",)),
    (["Sam Okafor, Sr. Director of Clinical Content"], ("Sam Okafor",)),
    (["Nora Quist, M.D., and Ben Halloway, Ph.D."], ("Nora Quist", "Ben Halloway")),
    # every joiner splits; initials and one-letter capitals do not
    (["Von Roland Brockstedt und Sabine Dreier"], ("Roland Brockstedt", "Sabine Dreier")),
    (["Por Lucía Ferrer y Tomás Iglesias"], ("Lucía Ferrer", "Tomás Iglesias")),
    (["Par Claire Dumas et Hugo Lefort"], ("Claire Dumas", "Hugo Lefort")),
    (["Mia Sorensen & Theo Albrecht"], ("Mia Sorensen", "Theo Albrecht")),
    (["By Ana Beltrán and Joe Y. Park"], ("Ana Beltrán", "Joe Y. Park")),
    # a byline with its date
    (["Von Tomas Spahner Fr, 18. Oktober 2019"], ("Tomas Spahner",)),
    (["VON  MORITZ GATHMER  am 21. April 2020"], ("Moritz Gathmer",)),
    # a list of sections in an "author" box is not a byline
    (["01.12.2022 / CSP / International / Photovoltaik / Speicher"], ()),
    # organisations and roles are not persons
    (["Redaktion"], ()),
    (["Wikimedia Foundation"], ()),
])
def test_clean_authors_vocabularies(raw, expected):
    assert clean_authors(raw) == expected


def test_ui_string_author_link_is_rejected_and_the_byline_kept():
    body = ('<div class="post"><p>Text.</p><span class="post-author">Posted by <a rel="author" href="/p/1">'
            'Tomasz Wren</a></span></div>'
            '<div class="widget Profile"><a rel="author" href="/p/1">Afficher mon profil complet</a></div>')
    assert extract_metadata(page(body=body)).authors == ("Tomasz Wren",)


def test_organisation_author_only_when_no_person_is_named():
    org = {"@type": "Organization", "name": "Küstenwacht Verband"}
    ld = {"@type": "NewsArticle", "headline": "H", "author": org}
    # the page names a person in its byline: the organisation is not an author
    body = '<p class="byline">By <a rel="author" href="/a/ines">Ines Marquardt</a></p>'
    assert extract_metadata(page(body=body, jsonld=[ld])).authors == ("Ines Marquardt",)
    # no person anywhere: the organisation is the answer
    assert extract_metadata(page(jsonld=[ld])).authors == ("Küstenwacht Verband",)
    # the site's own name, a newsroom credit: the same rule
    p = page(head='<meta property="og:site_name" content="Hafenblatt"><meta name="author" content="Hafenblatt">')
    assert extract_metadata(p).authors == ("Hafenblatt",)
    p = page(head='<meta name="author" content="Redaktion">', body='<p class="author">Jana Holt</p>')
    assert extract_metadata(p).authors == ("Jana Holt",)
    # a wire credit is never an author (it is syndication evidence for the copyright holder)
    assert extract_metadata(page(head='<meta name="author" content="dpa">')).authors == ()


def test_person_beats_user_handle_and_handle_beats_nothing():
    p = page(head='<meta name="author" content="edi.larosa">', body='<span class="author-name">Edi La Rosa</span>')
    assert extract_metadata(p).authors == ("Edi La Rosa",)
    assert extract_metadata(page(head='<meta name="author" content="gizzmo">')).authors == ("gizzmo",)


def test_unmarked_body_byline_yields_both_names():
    body = ('<article><p><strong>KENIA – Streit ums Feuerholz</strong></p>'
            '<p>Von <strong><a href="/autor/rb">Roland Brockstedt</a></strong> und <strong><a href="/autor/sd">'
            'Sabine Dreier</a></strong><br>Kakuma</p><p>Von so viel Hilfe können die Nachbarn nur träumen.</p>'
            '</article>')
    assert extract_metadata(page(body=body, lang="de")).authors == ("Roland Brockstedt", "Sabine Dreier")
    # a sentence that starts with "Von" is not a byline
    assert extract_metadata(page(body='<p>Von Berlin aus fährt der Zug weiter.</p>', lang="de")).authors == ()


def test_byline_from_one_place_not_every_author_box_on_the_page():
    body = ('<article><div class="byline"><span class="author">Lea Brandt</span></div><p>Text.</p></article>'
            '<aside class="related"><div class="teaser"><span class="author">Max Ohm</span></div>'
            '<div class="teaser"><span class="author">Ida Roth</span></div></aside>')
    assert extract_metadata(page(body=body)).authors == ("Lea Brandt",)


def test_comment_classes_on_body_do_not_hide_the_byline():
    p = parse_html('<html><body class="single showing-comments"><article><div class="post_author">Jessie Marr'
                   '</div><p>Text.</p></article></body></html>', URL)
    assert extract_metadata(p).authors == ("Jessie Marr",)


def test_trafilatura_author_heuristics_are_the_last_source():
    # only trafilatura's expressions know class="journalist-name"; its discard rules drop the sidebar one
    body = ('<div class="sidebar"><span class="journalist-name">Side Barman</span></div>'
            '<article><span class="journalist-name">Greta Holm</span><p>Text.</p></article>')
    assert extract_metadata(page(body=body)).authors == ("Greta Holm",)


def test_jsonld_author_on_the_page_node_and_jsonld_with_raw_newlines():
    ld = {"@graph": [{"@type": "WebPage", "@id": "#page", "author": {"@id": "#p"}},
                     {"@type": "Person", "@id": "#p", "name": "Giorgio Gaddi"}]}
    assert extract_metadata(page(jsonld=[ld])).authors == ("Giorgio Gaddi",)
    raw = '{"@type": "BlogPosting", "headline": "H", "articleBody": "line one\nline two",' \
          ' "author": {"@type": "Person", "name": "Jacopo Casati"}}'
    assert extract_metadata(page(jsonld=[raw])).authors == ("Jacopo Casati",)


# ---- issue 12: published_date, the publisher's calendar date ---------------------------------------

def test_published_date_is_the_date_in_the_publishers_own_zone():
    ld = {"@type": "NewsArticle", "datePublished": "2022-11-07T00:30:00+01:00"}
    md = extract_metadata(page(jsonld=[ld]))
    assert md.published_at == datetime(2022, 11, 6, 23, 30, tzinfo=timezone.utc)
    assert md.published_date == date(2022, 11, 7)
    md = extract_metadata(page(head='<meta property="article:published_time" content="2023-06-14T21:10:00-07:00">'))
    assert md.published_date == date(2023, 6, 14) and md.published_at.astimezone(timezone.utc).day == 15


def test_published_date_of_a_date_only_or_naive_value_is_that_date():
    md = extract_metadata(page(jsonld=[{"@type": "NewsArticle", "datePublished": "2024-01-15"}]))
    assert md.published_date == date(2024, 1, 15)
    md = extract_metadata(page(head='<meta name="date" content="2024-01-15 23:45">'))
    assert md.published_date == date(2024, 1, 15)


def test_utc_instant_takes_the_date_of_a_local_reading_of_the_same_publication():
    # the same instant with the publisher's offset elsewhere on the page
    p = page(jsonld=[{"@type": "NewsArticle", "datePublished": "2019-10-18T22:04:00Z"}],
             head='<meta name="date" content="Sat, 19 Oct 2019 00:04:00 +0200">')
    assert extract_metadata(p).published_date == date(2019, 10, 19)
    # the printed wall-clock time of the <time> element
    p = page(head='<meta property="article:published_time" content="2024-03-10T23:30:00+00:00">',
             body='<time datetime="2024-03-10T23:30:00+00:00">11.03.2024, 00:30 Uhr</time>')
    assert extract_metadata(p).published_date == date(2024, 3, 11)
    # the date in the article's URL (WordPress permalinks)
    p = page(head='<meta property="article:published_time" content="2018-12-31T23:11:59+00:00">',
             url="https://blog.example.org/2019/01/01/neues-jahr/")
    assert extract_metadata(p).published_date == date(2019, 1, 1)
    # nothing else on the page: the UTC date; an unrelated URL date further away is ignored
    p = page(head='<meta property="article:published_time" content="2018-12-31T23:11:59+00:00">',
             url="https://blog.example.org/2018/06/01/archive/")
    assert extract_metadata(p).published_date == date(2018, 12, 31)


def test_day_first_numeric_dates():
    assert parse_date("01-11-2023 10:29") == datetime(2023, 11, 1, 10, 29, tzinfo=timezone.utc)
    assert parse_date("11.03.2024, 00:30 Uhr") == datetime(2024, 3, 11, 0, 30, tzinfo=timezone.utc)


def test_htmldate_fallback_finds_a_date_in_running_text():
    body = ('<div class="press"><h1>Mehr Nistkästen</h1><p><b>Pressemitteilung</b> – Lindenthal, 7. März 2024</p>'
            '<p>Schülerinnen und Schüler haben Nistkästen gebaut und aufgehängt.</p></div>')
    md = extract_metadata(page(body=body, lang="de", url="https://www.example.org/presse/nistkaesten"))
    assert md.published_date == date(2024, 3, 7)
    assert md.published_at == datetime(2024, 3, 7, tzinfo=timezone.utc)
    assert extract_metadata(page(body="<p>No date anywhere on this page.</p>")).published_date is None


def test_utc_midnight_of_a_central_european_date_only_value():
    head = '<meta property="article:published_time" content="2022-11-06T23:00:00.000Z">'
    assert extract_metadata(page(head=head, lang="de")).published_date == date(2022, 11, 7)
    # not on an English page (the zone is unknown), nor at a time that is not a local midnight
    assert extract_metadata(page(head=head, lang="en")).published_date == date(2022, 11, 6)
    head = '<meta property="article:published_time" content="2022-11-06T23:10:00.000Z">'
    assert extract_metadata(page(head=head, lang="de")).published_date == date(2022, 11, 6)


def test_rel_links_read_downstream_are_resolved_against_base():
    from newsmill.tasks.parse import READ_RELS

    page = parse_html(
        '<html><head><base href="https://cdn.example.org/news/"><link rel="stylesheet" href="a.css">'
        '<link rel="Canonical" href="../2024/story"><link rel="preload icon" href="i.png"></head><body>'
        '<p>Text <a rel="nofollow License" href=" /licenses/by/4.0/ ">CC BY</a> <a rel="tag" href="t">t</a>'
        '<a href="plain">x</a><a rel="image_src" href="img.jpg">i</a></p></body></html>',
        "https://www.example.org/2024/05/story")
    assert page.links == {"canonical": ["https://cdn.example.org/2024/story"],
                          "license": ["https://cdn.example.org/licenses/by/4.0/"],
                          "image_src": ["https://cdn.example.org/news/img.jpg"]}
    assert set(page.links) <= READ_RELS
