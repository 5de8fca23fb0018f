"""extract_page / extract_batch: the founding NPR-style case, outcomes as values, language, identity,
recurring learning across a batch with its guards. All article text here is written for the tests."""

from __future__ import annotations

import hashlib
import pickle
import random

import pytest

from newsmill.tasks.clean import load_rules
from newsmill.tasks.config import ExtractSettings
from newsmill.tasks.extract import extract_batch, extract_page, extractor_version
from newsmill.tasks.urls import article_id

SETTINGS = ExtractSettings(recurring_min_pages=3)

STATION_PARAS = [
    "Two regional leaders will meet on Thursday at a riverside hall, the first such visit in more than a "
    "decade, according to statements released by both governments late on Monday evening.",
    "The meeting comes days before a wider summit of trading partners, where tariffs on farm equipment and "
    "shipping fees are expected to dominate the agenda, officials in both capitals said.",
    "Analysts said the timing was deliberate. \"Nobody schedules a trip like this by accident,\" said a "
    "professor of regional studies who has followed the talks for years.",
    "Negotiations stalled last spring after a dispute over fishing rights in the northern bay, and since "
    "then the two sides have traded proposals through intermediaries rather than meeting in person.",
    "Local business owners said they hoped for calmer relations. A ferry operator said bookings had fallen "
    "by a third since the dispute began and that his crews were working shorter weeks.",
]

NPR_BOILERPLATE = [
    "Copyright 2019 NPR. To see more, visit",
    "300x250 Ad",
    "300x250 Ad",
    "Support quality journalism, like the story above, with your gift right now.",
]


def station_page() -> str:
    paras = "".join(f"<p>{p}</p>" for p in STATION_PARAS)
    return f"""<!doctype html><html lang="en"><head>
      <title>Regional leaders to meet Thursday | Valley Public Radio</title>
      <meta property="og:site_name" content="Valley Public Radio">
      <meta property="og:title" content="Regional leaders to meet Thursday">
      <link rel="canonical" href="https://www.valleypublicradio.example/2019-06-18/leaders-meet">
      </head><body>
      <nav><a href="/">Home</a><a href="/news">News</a><a href="/donate">Donate</a></nav>
      <main><article>
        <h1>Regional leaders to meet Thursday</h1>
        <div class="story-body">{paras}
          <p>{NPR_BOILERPLATE[0]}</p>
          <div>{NPR_BOILERPLATE[1]}</div>
          <div>{NPR_BOILERPLATE[2]}</div>
          <p>{NPR_BOILERPLATE[3]}</p>
        </div>
      </article></main>
      <footer><p>© 2024 Valley Public Radio</p></footer>
    </body></html>"""


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def test_npr_style_page_text_clean_and_removals_listed(rules):
    url = "https://www.valleypublicradio.example/2019-06-18/leaders-meet?utm_source=feed"
    res = extract_page(station_page(), url, rules=rules, settings=SETTINGS)
    assert res.outcome == "ok" and res.error is None
    a = res.article
    for p in STATION_PARAS:
        assert p in a.text
    for line in NPR_BOILERPLATE:
        assert line not in a.text
    assert "300x250" not in a.text and "gift" not in a.text and "Copyright" not in a.text
    kinds = [(r.kind, r.rule) for r in res.removals]
    assert kinds.count(("ad", "ad.label.en")) == 2
    assert ("donation", "donation.appeal.en") in kinds
    assert ("copyright", "copyright.body_line") in kinds
    assert all(r.url == url for r in res.removals)
    # copyright captured from the trailing body line: NPR owns the story, not the station
    assert a.copyright_holder == "NPR" and a.copyright_year == 2019
    assert a.copyright_source == "body_line" and a.syndicated is True
    assert a.language == "en"
    assert a.site_name == "Valley Public Radio"
    assert a.canonical_url == "https://www.valleypublicradio.example/2019-06-18/leaders-meet"
    assert a.article_id == article_id(a.canonical_url)
    assert a.domain == "valleypublicradio.example"
    assert a.content_hash == hashlib.sha256(a.text.encode()).hexdigest()
    assert a.extractor_version == extractor_version(rules) and "+rules-" in a.extractor_version
    assert res.block_hashes and len(set(res.block_hashes)) == len(res.block_hashes)


def test_outcomes_are_values(rules):
    assert extract_page(b"   ", "https://x.example/a", rules=rules, settings=SETTINGS).outcome == "parse_error"
    res = extract_page("<html><body><nav><a href='/'>Home</a></nav><p>Short.</p></body></html>",
                       "https://x.example/b", rules=rules, settings=SETTINGS)
    assert res.outcome == "no_article" and res.article is None and res.error


def test_language_from_text_and_html_lang_fallback(rules):
    es = ("<p>El ayuntamiento aprobó el martes un presupuesto que llevaba meses en discusión, después de una "
          "sesión larga en la que los concejales presentaron enmiendas hasta bien entrada la noche.</p>") * 3
    res = extract_page(f"<html lang='en'><body><article>{es}<p>Publicidad</p></article></body></html>",
                       "https://diario.example/a", rules=rules, settings=SETTINGS)
    assert res.article.language == "es"
    assert [r.rule for r in res.removals] == ["ad.label.es"]


def test_extract_batch_is_worker_friendly(rules):
    assert pickle.loads(pickle.dumps(extract_batch)) is extract_batch
    assert pickle.loads(pickle.dumps(rules)) == rules
    out = extract_batch([("https://x.example/a", b""), ("https://www.valleypublicradio.example/s", station_page())],
                        rules=rules, settings=SETTINGS)
    assert [r.outcome for r in out] == ["parse_error", "ok"]


# ---------------------------------------------------------------------------------------------------
# recurring learning

WORDS = ("harbor council ferry budget bridge river school library orchard festival mayor tunnel market "
         "rail storm clinic garden bakery museum stadium trail farmers permit vote grant").split()

HOUSE_LINE = "Drop by the Gazette open house on Fridays to meet the people behind these pages."


def story(seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [" ".join(rnd.choice(WORDS) for _ in range(40)).capitalize() + "." for _ in range(4)]


def gazette_page(paras: list[str], canonical: str, extra: str = HOUSE_LINE) -> str:
    body = "".join(f"<p>{p}</p>" for p in paras)
    return (f"<html><head><link rel='canonical' href='{canonical}'><title>t</title></head><body><article>"
            f"{body}<p>{extra}</p></article></body></html>")


def batch_of(items):
    return [(url, gazette_page(paras, canon)) for url, paras, canon in items]


def house_removed(results) -> list[bool]:
    return [any(r.kind == "recurring" and r.text == HOUSE_LINE for r in res.removals) and
            HOUSE_LINE not in res.article.text for res in results]


def test_recurring_block_learned_across_distinct_articles(rules):
    items = [(f"https://gazette.example/s{i}", story(i), f"https://gazette.example/s{i}") for i in range(4)]
    results = extract_batch(batch_of(items), rules=rules, settings=SETTINGS)
    assert all(r.outcome == "ok" for r in results)
    assert house_removed(results) == [True] * 4
    # below the threshold (2 distinct articles): kept
    results = extract_batch(batch_of(items[:2]), rules=rules, settings=SETTINGS)
    assert house_removed(results) == [False, False]
    # history from earlier runs is enough on its own
    from newsmill.tasks.clean import block_fingerprint

    results = extract_batch(batch_of(items[:1]), rules=rules, settings=SETTINGS,
                            history={"gazette.example": frozenset({block_fingerprint(HOUSE_LINE)})})
    assert house_removed(results) == [True]
    assert block_fingerprint(HOUSE_LINE) in results[0].block_hashes


def test_same_article_twice_is_not_two_pages(rules):
    same = story(7)
    items = [("https://gazette.example/a?page=1", same, "https://gazette.example/a"),
             ("https://gazette.example/a?ref=home", same, "https://gazette.example/a"),
             ("https://gazette.example/b", story(8), "https://gazette.example/b")]
    assert house_removed(extract_batch(batch_of(items), rules=rules, settings=SETTINGS)) == [False] * 3
    # same paragraphs under another canonical URL (re-posted / syndicated copy on the same host)
    items[1] = ("https://gazette.example/wire/a-copy", same, "https://gazette.example/wire/a-copy")
    assert house_removed(extract_batch(batch_of(items), rules=rules, settings=SETTINGS)) == [False] * 3


def test_syndicated_copy_on_two_hosts_is_not_recurring(rules):
    wire = story(11)
    items = [("https://gazette.example/w", wire, "https://gazette.example/w"),
             ("https://herald.example/w", wire, "https://herald.example/w"),
             ("https://herald.example/x", story(12), "https://herald.example/x")]
    results = extract_batch(batch_of(items), rules=rules, settings=SETTINGS)
    assert house_removed(results) == [False] * 3
    assert all(r.outcome == "ok" for r in results)


def test_copyright_decided_by_the_one_rule_with_several_trailing_notices(rules):
    """Two trailing notice lines (licence last): the body line naming a holder speaks for the body and beats
    the footer (tasks.copyright.combine, the same rule as find_copyright), with the body's licence."""
    paras = "".join(f"<p>{p}</p>" for p in STATION_PARAS)
    html = (f"<html lang='en'><head><meta property='og:site_name' content='Valley Public Radio'></head><body>"
            f"<article>{paras}<p>© 2022 The Open Ledger</p><p>Licensed under CC BY-NC-ND 4.0</p></article>"
            f"<footer><p>© 2024 Valley Public Radio</p></footer></body></html>")
    a = extract_page(html, "https://www.valleypublicradio.example/s", rules=rules, settings=SETTINGS).article
    assert (a.copyright_holder, a.copyright_year, a.copyright_source, a.syndicated) == (
        "The Open Ledger", 2022, "body_line", True)
    assert a.license_url == "https://creativecommons.org/licenses/by-nc-nd/4.0/"
    assert "Open Ledger" not in a.text and "Licensed under" not in a.text


# ---- issue 12: never empty where the extractor finds text ------------------------------------------

BLOG_PARAS = [
    "The garden club met in the old school hall on Saturday to swap seeds and plan the spring planting, "
    "and more than forty members brought trays of seedlings grown on their windowsills over the winter.",
    "A retired teacher showed how to start tomatoes in egg boxes, while two brothers who run the allotment "
    "by the railway explained how they keep slugs away from lettuce without any chemicals at all.",
    "The club also voted to plant a row of fruit trees along the path to the primary school, with the "
    "pupils choosing the varieties and looking after the saplings through their first summer.",
]


def _article_page(body: str, head: str = "") -> str:
    return (f"<!doctype html><html lang='en'><head><title>Seed swap fills the hall</title>{head}</head>"
            f"<body><header><nav><a href='/'>Home</a> <a href='/events'>Events</a></nav></header>"
            f"{body}<footer><p>Garden Club Newsletter, Millbrook</p></footer></body></html>")


def test_text_path_cleaned_on_an_ordinary_page(rules):
    paras = "".join(f"<p>{p}</p>" for p in BLOG_PARAS)
    res = extract_page(_article_page(f"<article><h1>Seed swap fills the hall</h1>{paras}</article>"),
                       "https://garden.example/2024/seed-swap", rules=rules, settings=SETTINGS)
    assert res.outcome == "ok" and res.article.text_path == "cleaned"


def test_rule_that_removes_the_article_falls_back_to_the_uncleaned_tree(tmp_path):
    """A too-broad selector (here a site rule eating every paragraph of its pages) used to leave
    no_article; now the uncleaned tree gives the text, the text-level rules still apply to it, and
    text_path says so (so SQL finds the rule that wipes articles)."""
    import shutil

    from newsmill.tasks.config import RULES_DIR

    rules_dir = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules_dir)
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "garden.example.toml").write_text(
        'kind = "other"\n[[selectors]]\nname = "too_broad"\nxpath = "//article//p"\n', "utf-8")
    broad = load_rules(rules_dir, sites)
    paras = "".join(f"<p>{p}</p>" for p in [BLOG_PARAS[0], "Advertisement", *BLOG_PARAS[1:]])
    page = _article_page(f"<article><h1>Seed swap fills the hall</h1>{paras}</article>")
    res = extract_page(page, "https://garden.example/2024/seed-swap", rules=broad, settings=SETTINGS)
    assert res.outcome == "ok", res.error
    a = res.article
    assert a.text_path == "uncleaned"
    for p in BLOG_PARAS:
        assert p in a.text
    assert "Advertisement" not in a.text  # the text-level rules ran on the fallback text
    # text-level removals only: the tree removals did not apply to this text, so they are not listed
    assert sorted(r.rule for r in res.removals) == ["ad.label.en", "text.title_repeat"]
    # the same page under the bundled rules takes the ordinary path
    ok = extract_page(page, "https://garden.example/2024/seed-swap", rules=load_rules(), settings=SETTINGS)
    assert ok.article.text_path == "cleaned"


def test_post_inside_noscript_is_content(rules):
    """Blog engines (and no-JS fallbacks) put the whole post in <noscript>; it was stripped with scripts."""
    paras = "".join(f"<p>{p}</p>" for p in BLOG_PARAS)
    page = _article_page(f"<div class='post-body'><script>render()</script><noscript>{paras}</noscript></div>"
                         "<noscript><img src='/pixel.gif'>Please enable JavaScript.</noscript>")
    res = extract_page(page, "https://garden.example/2024/seed-swap", rules=rules, settings=SETTINGS)
    assert res.outcome == "ok", res.error
    for p in BLOG_PARAS:
        assert p in res.article.text
    assert "enable JavaScript" not in res.article.text


def test_control_characters_do_not_lose_the_article(rules):
    """A stray C0 control character in a paragraph made trafilatura raise ("All strings must be XML
    compatible") and the page came out no_article."""
    paras = "".join(f"<p>{p}</p>" for p in BLOG_PARAS)
    paras = paras.replace("forty members", "forty\x08 members").replace("egg boxes", "egg\x0cboxes")
    res = extract_page(_article_page(f"<article>{paras}</article>").encode("utf-8"),
                       "https://garden.example/2024/seed-swap", rules=rules, settings=SETTINGS)
    assert res.outcome == "ok", res.error
    assert "more than forty members brought" in res.article.text
    assert "start tomatoes in egg boxes" in res.article.text


def test_precision_mode_empty_falls_back_to_a_recall_pass(rules):
    """trafilatura's precision mode drops blocks that are mostly link text (here every paragraph is one
    link in a <div>): the cleaned tree gives nothing in precision mode, the recall pass on the same cleaned
    tree gives the article, with text_path 'recall' and the text-level rules applied."""
    body = "".join(f"<div><a href='/garden/{i}'>{p}</a></div>" for i, p in enumerate(BLOG_PARAS))
    body += "<div><a href='/shop'>Advertisement</a></div>"
    res = extract_page(_article_page(f"<article>{body}</article>"), "https://garden.example/2024/seed-swap",
                       rules=rules, settings=SETTINGS)
    assert res.outcome == "ok", res.error
    assert res.article.text_path == "recall"
    for p in BLOG_PARAS:
        assert p in res.article.text
    assert "Advertisement" not in res.article.text
