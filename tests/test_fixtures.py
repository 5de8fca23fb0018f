"""Stored page fixtures with expected output (tests/fixtures/pages/NAME.html + NAME.json), run through the
real extraction path: ``tasks.extract.extract_page`` with ``tasks.clean.load_rules()``.

NAME.json::

    {"url": ..., "style": ..., "note": ...,
     "must_contain": [text that must be in article.text],
     "must_not_contain": [boilerplate that must not be in article.text],
     "fields": {<Article field>: expected, ...,
                "<field>_contains": substring expected in that field}}

Only the fields listed are asserted; ``null`` asserts None. Datetimes are ISO strings compared as instants
(the offset may differ); ``published_date`` is an ISO date string. Lists compare to tuples.

Also: every site in ``config/sites/`` has a fixture (the fixture URL on the site's domain or a subdomain of
it, with the domain as ``load_rules`` reads it: the ``domain`` key, else the file name), and at least one of
a site's fixtures fails its expectations when extracted without the site files (an override that changes
nothing is dead config, or the generic rules already do the job).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from newsmill.tasks.urls import domain_of

PAGES = Path(__file__).parent / "fixtures" / "pages"
SITES_DIR = Path(__file__).resolve().parent.parent / "config" / "sites"
FIXTURES = sorted(p.stem for p in PAGES.glob("*.json"))
DATE_FIELDS = {"published_at", "modified_at", "fetched_at"}


def _load(name: str) -> tuple[str, dict]:
    return (PAGES / f"{name}.html").read_text(encoding="utf-8"), json.loads(
        (PAGES / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def engine():
    try:
        from newsmill.tasks.clean import load_rules
        from newsmill.tasks.extract import extract_page
    except ImportError as exc:  # pragma: no cover - only while the clean/extract stage is being written
        pytest.skip(f"tasks.clean / tasks.extract not importable yet: {exc}")
    from newsmill.tasks.config import ExtractSettings

    return extract_page, load_rules(), ExtractSettings()


def _same(field: str, got, want) -> bool:
    if want is None:
        return got is None
    if field in DATE_FIELDS:
        return got is not None and got.tzinfo is not None and got == datetime.fromisoformat(want)
    if field == "published_date":  # a calendar date, compared as its ISO string
        return got is not None and got.isoformat() == want
    if isinstance(want, list):
        return tuple(got or ()) == tuple(want)
    return got == want


def test_fixture_set_is_complete():
    assert len(FIXTURES) >= 16
    styles = {json.loads((PAGES / f"{n}.json").read_text(encoding="utf-8")).get("style") for n in FIXTURES}
    assert len(styles) >= 8, styles
    for n in FIXTURES:
        assert (PAGES / f"{n}.html").exists(), n


def _problems(res, exp: dict) -> list[str]:
    """What differs between an ExtractResult and a fixture's expectations (empty when all hold)."""
    if res.outcome != "ok" or res.article is None:
        return [f"{res.outcome}: {res.error}"]
    art = res.article
    problems = []
    for key, want in exp.get("fields", {}).items():
        if key.endswith("_contains"):
            field = key[: -len("_contains")]
            got = getattr(art, field)
            if not (isinstance(got, str) and want in got):
                problems.append(f"{field}: {got!r} does not contain {want!r}")
            continue
        got = getattr(art, key)
        if not _same(key, got, want):
            problems.append(f"{key}: got {got!r}, want {want!r}")
    for s in exp.get("must_contain", []):
        if s not in art.text:
            problems.append(f"text is missing {s!r}")
    for s in exp.get("must_not_contain", []):
        if s in art.text:
            problems.append(f"text still contains {s!r}")
    return problems


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture(name, engine):
    extract_page, rules, settings = engine
    html, exp = _load(name)
    res = extract_page(html, exp["url"], rules=rules, settings=settings)
    assert res.outcome == "ok" and res.article is not None, f"{name}: {res.outcome}: {res.error}"
    problems = _problems(res, exp)
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


def _on_site(fixture_domain: str, site_domain: str) -> bool:
    return fixture_domain == site_domain or fixture_domain.endswith("." + site_domain)


def _site_fixtures(engine) -> dict[str, list[str]]:
    """Configured site domain (as load_rules reads it) -> the fixtures whose URL is on it."""
    _, rules, _ = engine
    urls = {n: domain_of(json.loads((PAGES / f"{n}.json").read_text(encoding="utf-8"))["url"]) for n in FIXTURES}
    return {s.domain: [n for n, d in urls.items() if _on_site(d, s.domain)] for s in rules.sites}


def test_every_configured_site_has_a_fixture(engine):
    by_site = _site_fixtures(engine)
    assert len(by_site) == len(list(SITES_DIR.glob("*.toml")))  # every site file was loaded
    missing = sorted(d for d, names in by_site.items() if not names)
    assert not missing, f"config/sites/ domains without a fixture in tests/fixtures/pages/: {missing}"


def test_site_overrides_matter(engine):
    """For each site, at least one of its fixtures misses its expectations with the generic rules only."""
    from newsmill.tasks.clean import load_rules

    extract_page, _, settings = engine
    generic = load_rules(sites_dir=None)
    assert generic.sites == ()
    for domain, names in _site_fixtures(engine).items():
        if not names:
            continue  # reported by test_every_configured_site_has_a_fixture
        failing = []
        for name in names:
            html, exp = _load(name)
            if _problems(extract_page(html, exp["url"], rules=generic, settings=settings), exp):
                failing.append(name)
        assert failing, f"{names} pass without the site file for {domain}: a dead override?"


def test_site_selector_and_phrase_remove_the_pledge_drive(engine):
    """sagebrushbasinradio.org: the pledge box (site selector, kind donation) and the underwriting credit
    (site phrase, kind ad) are removed only with the site file, and the removals name the site rules."""
    from newsmill.tasks.clean import load_rules

    extract_page, rules, settings = engine
    html, exp = _load("public_radio_site_pledge_drive")
    with_site = extract_page(html, exp["url"], rules=rules, settings=settings)
    without = extract_page(html, exp["url"], rules=load_rules(sites_dir=None), settings=settings)
    for text in ("Keep the lights on at 89.3", "Sagebrush Circle", "Alder Street Credit Union"):
        assert text in without.article.text and text not in with_site.article.text
    site_rules = {(r.kind, r.rule) for r in with_site.removals if r.rule.startswith("site:")}
    assert site_rules == {("donation", "site:sagebrushbasinradio.org:donation.pledge_drive"),
                          ("ad", "site:sagebrushbasinradio.org:ad.underwriting_credit")}
    assert not any(r.rule.startswith("site:") for r in without.removals)
    assert with_site.article.extractor_version != without.article.extractor_version  # rule data differs


def test_site_metadata_selectors_read_the_credit_line(engine):
    """larchmerecourier.co.uk (page on news.larchmerecourier.co.uk): author, date and site name come from
    the [metadata] hints; without them there is no author, the masthead's edition date and no site name."""
    from newsmill.tasks.clean import load_rules

    extract_page, rules, settings = engine
    html, exp = _load("uk_weekly_site_credit_line")
    site = rules.site("news.larchmerecourier.co.uk")
    assert site is not None and site.domain == "larchmerecourier.co.uk"
    assert rules.site_rule("www.larchmerecourier.co.uk") is site.metadata
    assert rules.site("larchmerecourier.com") is None and rules.site("co.uk") is None
    with_site = extract_page(html, exp["url"], rules=rules, settings=settings).article
    without = extract_page(html, exp["url"], rules=load_rules(sites_dir=None), settings=settings).article
    assert with_site.authors == ("Maren Ashby",) and without.authors == ()
    assert with_site.published_at == datetime.fromisoformat("2026-03-03T06:10:00+00:00")
    assert without.published_at == datetime.fromisoformat("2026-03-14T00:00:00+00:00")  # the edition date
    assert (with_site.site_name, without.site_name) == ("The Larchmere Courier", None)
    assert with_site.text == without.text  # metadata hints only: the cleaning is the generic one


# ---- the bundled demo site (config/demo/site), without a server ----------------------------------------

DEMO_SITE = Path(__file__).resolve().parent.parent / "config" / "demo" / "site"
DEMO_BASE = "http://127.0.0.1:8719"
SEED = Path(__file__).resolve().parent.parent.parent / "shared" / "seed" / "000_79dfae7a4934c738.txt"
SEED_BOILERPLATE = ("300x250 Ad", "Support quality journalism", "Copyright 2019 NPR", "To see more, visit")


def _demo_articles(engine):
    extract_page, rules, settings = engine
    out = {}
    for f in sorted(DEMO_SITE.rglob("*.html")):
        if f.parent == DEMO_SITE:  # the site's index page, not an article
            continue
        url = DEMO_BASE + "/" + f.relative_to(DEMO_SITE).as_posix()
        html = f.read_text(encoding="utf-8").replace("{base_url}", DEMO_BASE)
        out[url] = extract_page(html, url, rules=rules, settings=settings)
    return out


def test_demo_site_pages_extract(engine):
    results = _demo_articles(engine)
    arts = [r.article for r in results.values() if r.article is not None]
    assert len(arts) >= 8, {u: (r.outcome, r.error) for u, r in results.items() if r.article is None}
    assert len({a.language for a in arts}) >= 2
    assert all(a.title and a.published_at and a.canonical_url.startswith(DEMO_BASE) for a in arts)
    feed = (DEMO_SITE / "feed.xml").read_text(encoding="utf-8")
    sitemap = (DEMO_SITE / "sitemap.xml").read_text(encoding="utf-8")
    assert feed.count("<item>") > len(arts) and ".pdf</link>" in feed  # + non-article entries (PDF, 404)
    assert sitemap.count("<loc>{base_url}/") == len(arts)
    assert "Sitemap: {base_url}/sitemap.xml" in (DEMO_SITE / "robots.txt").read_text(encoding="utf-8")


def test_demo_seed_story_is_clean(engine):
    results = _demo_articles(engine)
    seed_arts = [r for r in results.values() if r.article is not None and "Xi Jinping" in r.article.text]
    assert len(seed_arts) == 1
    res = seed_arts[0]
    art = res.article
    if SEED.exists():
        paras = [p.strip() for p in SEED.read_text(encoding="utf-8").split("\n") if len(p.strip()) > 80]
        for p in paras:
            if not any(b in p for b in SEED_BOILERPLATE):
                assert p in art.text, p[:60]
    for b in SEED_BOILERPLATE:
        assert b not in art.text
    assert (art.copyright_holder, art.copyright_year, art.syndicated) == ("NPR", 2019, True)
    assert art.copyright_source == "body_line" and art.copyright_notice.startswith("Copyright 2019 NPR")
    kinds = {r.kind for r in res.removals}
    assert {"ad", "donation", "copyright"} <= kinds
