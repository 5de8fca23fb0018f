"""Article text that trafilatura's precision mode dropped for reasons unrelated to boilerplate (issue 12):
the standfirst paragraph in the article's <header>, text after an empty marker element (WordPress "more"
anchor, table-of-contents target, an empty <strong>), a heading holding an empty permalink. Each class has
a don't-drop case (the article text stays) and a don't-misfire case (what precision mode rightly drops
stays out). Pages written in the style of publishers' templates; the real extraction path."""

from __future__ import annotations

import pytest

from newsmill.tasks.clean import load_rules
from newsmill.tasks.config import ExtractSettings
from newsmill.tasks.extract import extract_page

SETTINGS = ExtractSettings()
URL = "https://www.riverbend-courier.example/news/2026/04/14/ferry-timetable"

BODY = [
    "The summer timetable adds an early crossing at 6.15 each weekday, which commuters to the industrial "
    "estate on the far bank had asked for since the old chain ferry was retired two years ago.",
    "The operator said the extra crossing would be run with the smaller of its two boats, so that the "
    "larger one could be serviced in the quiet hours without cancelling any of the daytime departures.",
    "Fares stay at last year's level for foot passengers, while the price of a return ticket for a car "
    "rises by forty pence, the first increase since the new landing stages were built on both banks.",
    "Councillors will review the timetable in October, when the operator has to report how many people "
    "used the early crossing and whether the second boat kept to the published times through the summer.",
]
STANDFIRST = ("An earlier first crossing and an unchanged foot-passenger fare are the main changes in the "
              "timetable that starts on the first of May.")
DEK = "Operator keeps fares for walkers and cyclists at last year's level"
TAGLINE = ("Independent news for the towns and villages of the lower Riverbend valley since 1871, "
           "published every Thursday and online every day.")


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def _page(article: str, masthead: str = "") -> str:
    return ("<!doctype html><html lang='en'><head><title>New ferry timetable adds an early crossing</title>"
            "</head><body>"
            f"<header class='site-header'><a href='/' class='logo'>Riverbend Courier</a>{masthead}"
            "<nav><a href='/news'>News</a> <a href='/sport'>Sport</a></nav></header>"
            f"<main>{article}</main>"
            "<footer><p>Riverbend Courier, 4 Quay Street</p></footer></body></html>")


def _text(rules, html: str) -> str:
    res = extract_page(html, URL, rules=rules, settings=SETTINGS)
    assert res.outcome == "ok", res.error
    return res.article.text


def _body(paras=BODY) -> str:
    return "".join(f"<p>{p}</p>" for p in paras)


def test_standfirst_paragraph_in_the_article_header_is_text(rules):
    article = ("<article><header class='article-header'><h1>New ferry timetable adds an early crossing</h1>"
               f"<h2 class='dek'>{DEK}</h2><p class='standfirst'>{STANDFIRST}</p>"
               "<div class='byline'>By Ruth Calder</div></header>"
               f"<div class='article-body'>{_body()}</div></article>")
    text = _text(rules, _page(article, masthead=f"<p class='tagline'>{TAGLINE}</p>"))
    assert STANDFIRST in text
    assert text.index(STANDFIRST) < text.index(BODY[0])  # in reading order
    for p in BODY:
        assert p in text
    assert DEK not in text  # a heading in the header (second headline) stays out, as before
    assert "Independent news for the towns" not in text  # the site's masthead header is not an article's


def test_standfirst_in_a_header_holding_the_headline(rules):
    """No <article> element: the header holding the <h1> is the article's header."""
    article = ("<div class='story'><header><h1>New ferry timetable adds an early crossing</h1>"
               f"<div class='story-intro'><p>{STANDFIRST}</p></div></header>{_body()}</div>")
    text = _text(rules, _page(article))
    assert STANDFIRST in text


def test_header_left_open_around_the_article_is_not_a_standfirst_source(rules):
    """A page header that wraps the whole article (an unclosed <header>) is left as it was."""
    html = ("<!doctype html><html lang='en'><head><title>New ferry timetable</title></head><body>"
            f"<header><p class='tagline'>{TAGLINE}</p><main><article><h1>New ferry timetable adds an early "
            f"crossing</h1>{_body()}</article></main></header></body></html>")
    text = _text(rules, html)
    assert BODY[0] in text
    assert "Independent news for the towns" not in text


def test_wordpress_more_anchor_does_not_eat_the_next_paragraph(rules):
    paras = list(BODY)
    article = (f"<article class='post'><h1>New ferry timetable adds an early crossing</h1><div class='entry-content'>"
               f"<p>{paras[0]}</p><p><span id='more-4711'></span>{paras[1]}</p>{_body(paras[2:])}</div></article>")
    text = _text(rules, _page(article))
    for p in BODY:
        assert p in text


def test_toc_target_and_empty_emphasis_do_not_eat_text(rules):
    heading = "What changes for car drivers"
    article = ("<article><h1>New ferry timetable adds an early crossing</h1>"
               f"<p>{BODY[0]}</p><h2><span class='toc-target' id='what-changes'></span>{heading}</h2>"
               f"<p>{BODY[1]}</p><p>Fares stay at last year's level for foot passengers,<strong></strong> while "
               "the price of a return ticket for a car rises by forty pence, the first increase since the new "
               f"landing stages were built on both banks.</p><p>{BODY[3]}</p></article>")
    text = _text(rules, _page(article))
    assert heading in text
    assert BODY[2] in text
    assert BODY[3] in text


def test_heading_with_an_empty_permalink_is_kept(rules):
    heading = "How the early crossing will run"
    article = ("<div class='post-content'><h1>New ferry timetable adds an early crossing</h1>"
               f"<p>{BODY[0]}</p><h2 id='early'>{heading}<a class='heading-anchor' href='#early'></a></h2>"
               f"{_body(BODY[1:])}</div>")
    text = _text(rules, _page(article))
    assert heading in text
    for p in BODY:
        assert p in text


def test_icon_labels_stay_out(rules):
    """An empty icon element (a class, no id) before a label is interface: precision mode still drops
    the label with it (removing every empty element before text would let "Email this article" in)."""
    tools = ("<ul class='story-tools'><li><i class='fa fa-print'></i> Print this article</li>"
             "<li><i class='fa fa-envelope'></i> Email this article to a friend</li></ul>")
    article = f"<article><h1>New ferry timetable adds an early crossing</h1>{_body()}{tools}</article>"
    text = _text(rules, _page(article))
    assert BODY[3] in text
    assert "Print this article" not in text
    assert "Email this article" not in text


def test_article_inside_an_unclosed_sidebar_is_found(rules):
    """A sidebar <aside> left unclosed wraps the rest of the page, so the article is parsed inside it and
    trafilatura discards it with the sidebar on every path: the cleaned tree's <article> element alone
    gives the text (text_path 'article'); the text-level rules still apply."""
    html = ("<!doctype html><html lang='en'><head><title>New ferry timetable adds an early crossing</title>"
            "</head><body><div class='wrapper'><aside class='sidebar'><div class='widget'>"
            "<h3>Topics</h3><ul><li><a href='/transport'>Transport</a></li><li><a href='/council'>Council"
            "</a></li></ul></div>"  # the sidebar's </aside> is missing
            "<div class='main-content'><article class='post'><h1>New ferry timetable adds an early crossing</h1>"
            f"<div class='post-content'>{_body()}<p>Advertisement</p></div></article></div>"
            "<footer><p>Riverbend Courier</p></footer></div></body></html>")
    res = extract_page(html, URL, rules=rules, settings=SETTINGS)
    assert res.outcome == "ok", res.error
    assert res.article.text_path == "article"
    for p in BODY:
        assert p in res.article.text
    assert "Advertisement" not in res.article.text
    assert "Transport" not in res.article.text


def test_teaser_article_does_not_replace_an_empty_result(rules):
    """The last fallback needs an <article> with at least MIN_TEXT_CHARS of text: a page of short teaser
    cards stays no_article."""
    cards = "".join(f"<article class='card'><h3><a href='/n/{i}'>Ferry news {i}</a></h3></article>"
                    for i in range(3))
    html = (f"<!doctype html><html lang='en'><head><title>Ferry</title></head><body><main>{cards}</main>"
            "</body></html>")
    res = extract_page(html, URL, rules=rules, settings=SETTINGS)
    assert res.outcome == "no_article"


MORE = [
    "Harbour staff will add a second ticket machine at the town landing before the summer, after queues "
    "last August stretched back along the quay on market days and some passengers missed their boat.",
    "The operator also plans to publish live departure times online, so that passengers waiting at the far "
    "bank can see whether the next crossing is running late before they walk down to the slipway.",
    "A consultation on winter sailings will open in September, with drop-in sessions at the library and at "
    "the sailing club, where the operator will show the figures for the first months of the new timetable.",
]


def _split_page(second_parent_extra: str = "") -> str:
    chunk1 = f"<div class='article__body body-chunk'>{_body()}</div>"
    chunk2 = f"<div class='article__body body-chunk'>{_body(MORE)}</div>"
    return ("<!doctype html><html lang='en'><head><title>New ferry timetable adds an early crossing</title>"
            "</head><body><main><h1>New ferry timetable adds an early crossing</h1>"
            f"<div class='grid'>{chunk1}<div class='ad-rail'></div></div>"
            f"<div class='grid'>{second_parent_extra}{chunk2}<div class='ad-rail'></div></div>"
            "</main><footer><p>Riverbend Courier</p></footer></body></html>")


def test_article_body_split_by_ad_rails_is_read_whole(rules):
    """The body in two containers of the same class (a layout grid with an ad rail beside each):
    trafilatura read only the first."""
    text = _text(rules, _split_page())
    for p in BODY + MORE:
        assert p in text
    assert text.index(BODY[-1]) < text.index(MORE[0])


def test_list_of_posts_is_not_merged_into_one_article(rules):
    """Containers of the same class that each sit under their own headline are separate posts (a blog
    index or a teaser list), not parts of one body."""
    text = _text(rules, _split_page(second_parent_extra="<h2><a href='/other-post'>Sailing club AGM</a></h2>"))
    assert BODY[0] in text
    assert MORE[0] not in text
