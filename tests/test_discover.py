"""discover_source against the fault server on 127.0.0.2."""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib
from datetime import datetime, timedelta, timezone

import pytest

from faultserver import FaultServer, respond
from newsmill.tasks.config import FetchSettings, Source
from newsmill.tasks.discover import discover_source, parse_sitemap
from newsmill.tasks.fetch import Fetcher

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=timezone.utc)
RSS_T = "application/rss+xml"
XML_T = "application/xml"


def rfc822(dt: datetime) -> str:
    return dt.strftime("%a, %d %b %Y %H:%M:%S +0000")


@pytest.fixture
def server():
    with FaultServer("127.0.0.2") as srv:
        yield srv


@pytest.fixture
def fetcher():
    s = FetchSettings(user_agent="newsmill-test/1.0", timeout_s=2, per_host_delay_s=0, retries=0, backoff_s=0.05,
                      allow_networks=("127.0.0.2/32",), max_sitemap_depth=3, max_sitemap_bytes=2_000_000)
    f = Fetcher(s, run_id="d", archive=None)
    yield f
    f.close()


def rss(items: list[tuple[str, datetime | None, str]]) -> str:
    body = []
    for link, date, title in items:
        d = f"<pubDate>{rfc822(date)}</pubDate>" if date else ""
        body.append(f"<item><title>{title}</title><link>{link}</link>{d}</item>")
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
            f'<link>http://x/</link>{"".join(body)}</channel></rss>')


def test_rss_scope_dedupe_and_age(server, fetcher):
    recent, old = NOW - timedelta(days=1), NOW - timedelta(days=30)
    b = server.base
    feed = rss([
        (f"{b}/news/one?utm_source=rss&utm_medium=feed", recent, "One"),
        (f"{b}/news/one?utm_campaign=x#frag", recent, "One again"),
        ("/news/relative", None, "Relative undated"),
        (f"{b}/news/old", old, "Old"),
        (f"{b}/sport/match", recent, "Sport"),
        (f"{b}/news/video/clip", recent, "Video"),
        ("javascript:alert(1)", recent, "JS"),
        ("mailto:desk@example.org", recent, "Mail"),
        (f"{b}/news/two", recent, "Two"),
        (f"{b}/news/three", recent, "Three"),
    ])
    server.route("/feed.xml", respond(feed, ctype=RSS_T))
    src = Source(name="s", feeds=(server.url("/feed.xml"),), include=(r"/news/",), exclude=(r"/video/",),
                 max_age_days=7, max_pages=3)
    res = discover_source(src, fetcher, run_id="d", now=NOW)
    assert [u.url for u in res.urls] == [f"{b}/news/one", f"{b}/news/relative", f"{b}/news/two"]
    assert res.urls[0].via == "feed" and res.urls[0].origin == server.url("/feed.xml")
    assert res.urls[0].published_hint == recent.replace(microsecond=0) and res.urls[0].title_hint == "One"
    assert res.urls[1].published_hint is None
    assert res.skipped == {"duplicate": 1, "too_old": 1, "excluded": 2, "blocked_url": 2, "max_pages": 1}
    kinds = [(e.kind, e.outcome) for e in res.log]
    assert ("feed", "ok") in kinds and ("robots", "ok") not in kinds  # robots.txt is a 404 here
    assert server.count("/feed.xml") == 1


def test_atom_and_rss1(server, fetcher):
    atom = ('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
            '<entry><title>E</title><link rel="alternate" href="/a/1"/><id>urn:x</id>'
            '<updated>2025-06-14T10:00:00Z</updated></entry></feed>')
    rdf = ('<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
           'xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
           '<channel rdf:about="x"><title>R</title><link>http://x/</link></channel>'
           f'<item rdf:about="{server.base}/r/1"><title>R1</title><link>{server.base}/r/1</link>'
           '<dc:date>2025-06-14T10:00:00Z</dc:date></item></rdf:RDF>')
    server.route("/atom", respond(atom, ctype="application/atom+xml"))
    server.route("/rdf", respond(rdf, ctype="application/rdf+xml"))
    src = Source(name="s", feeds=(server.url("/atom"), server.url("/rdf")), max_age_days=7)
    res = discover_source(src, fetcher, run_id="d", now=NOW)
    assert [u.url for u in res.urls] == [server.url("/a/1"), server.url("/r/1")]
    assert all(u.published_hint == datetime(2025, 6, 14, 10, tzinfo=timezone.utc) for u in res.urls)


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY lol "lol">\n'
    + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % ("" if i == 1 else i - 1)) * 10}">\n' for i in range(1, 10))
    + ']>\n<rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title>'
    '<link>http://127.0.0.2/x</link></item></channel></rss>')


def test_billion_laughs_feed_is_parse_error(server, fetcher):
    server.route("/lol.xml", respond(BILLION_LAUGHS, ctype=RSS_T))
    server.route("/lol-sitemap.xml", respond(BILLION_LAUGHS.replace("rss", "urlset"), ctype=XML_T))
    src = Source(name="s", feeds=(server.url("/lol.xml"),), sitemaps=(server.url("/lol-sitemap.xml"),))
    tracemalloc.start()
    t = time.monotonic()
    res = discover_source(src, fetcher, run_id="d", now=NOW)
    took = time.monotonic() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows = {e.url.rsplit("/", 1)[1]: e for e in res.log if e.kind in ("feed", "sitemap")}
    assert rows["lol.xml"].outcome == "parse_error" and "entit" in rows["lol.xml"].error
    assert rows["lol-sitemap.xml"].outcome == "parse_error"
    assert res.urls == ()
    assert took < 2 and peak < 20 * 1024 * 1024


def test_feed_body_naming_a_local_file_is_not_read(server, fetcher, tmp_path):
    local = tmp_path / "feed.xml"
    local.write_text(rss([("http://leak.example/secret", None, "leak")]))
    server.route("/pathfeed", respond(str(local), ctype=RSS_T))
    res = discover_source(Source(name="s", feeds=(server.url("/pathfeed"),)), fetcher, run_id="d", now=NOW)
    assert res.urls == ()
    assert res.log[0].outcome == "parse_error"


def test_broken_feeds_are_rows(server, fetcher):
    server.route("/bad.xml", respond("<rss><channel><item><link>", ctype=RSS_T))
    server.route("/page.html", respond("<html>no feed</html>", ctype="image/png"))
    src = Source(name="s", feeds=(server.url("/bad.xml"), server.url("/missing.xml"), server.url("/page.html")))
    res = discover_source(src, fetcher, run_id="d", now=NOW)
    got = {e.url.rsplit("/", 1)[1]: (e.kind, e.outcome) for e in res.log if e.kind == "feed"}
    assert got == {"bad.xml": ("feed", "parse_error"), "missing.xml": ("feed", "http_error"),
                   "page.html": ("feed", "not_html")}


def urlset(entries: list[tuple[str, str | None]]) -> str:
    rows = "".join(f"<url><loc>{loc}</loc>{f'<lastmod>{lm}</lastmod>' if lm else ''}</url>" for loc, lm in entries)
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{rows}</urlset>'


def index(locs: list[str]) -> str:
    rows = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{rows}</sitemapindex>'


def test_sitemap_index_cycle(server, fetcher):
    server.route("/idx-a.xml", respond(index([server.url("/idx-b.xml"), server.url("/pages.xml")]), ctype=XML_T))
    server.route("/idx-b.xml", respond(index([server.url("/idx-a.xml")]), ctype=XML_T))
    server.route("/pages.xml", respond(urlset([(server.url("/p/1"), "2025-06-14")]), ctype=XML_T))
    res = discover_source(Source(name="s", sitemaps=(server.url("/idx-a.xml"),)), fetcher, run_id="d", now=NOW)
    assert [u.url for u in res.urls] == [server.url("/p/1")]
    assert res.urls[0].via == "sitemap" and res.urls[0].published_hint == datetime(2025, 6, 14, tzinfo=timezone.utc)
    assert res.skipped == {"sitemap_cycle": 1}
    assert server.count("/idx-a.xml") == 1 and server.count("/idx-b.xml") == 1


def test_sitemap_depth_limit(server, fetcher):
    server.route("/d0.xml", respond(index([server.url("/d1.xml")]), ctype=XML_T))
    server.route("/d1.xml", respond(index([server.url("/d2.xml")]), ctype=XML_T))
    server.route("/d2.xml", respond(urlset([(server.url("/deep"), None)]), ctype=XML_T))
    res = discover_source(Source(name="s", sitemaps=(server.url("/d0.xml"),)), fetcher, run_id="d", now=NOW,
                          max_depth=1)
    assert res.urls == () and res.skipped == {"sitemap_depth": 1}
    assert server.count("/d2.xml") == 0


def test_gzipped_sitemap_and_cap(server, fetcher):
    server.route("/sm.xml.gz", respond(gzip.compress(urlset([(server.url("/gz/1"), None)]).encode()),
                                       ctype="application/x-gzip"))
    co = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = co.compress(b"<urlset>" + b" " * 50_000_000) + co.flush()
    server.route("/bomb.xml.gz", respond(bomb, ctype="application/gzip"))
    src = Source(name="s", sitemaps=(server.url("/sm.xml.gz"), server.url("/bomb.xml.gz")))
    res = discover_source(src, fetcher, run_id="d", now=NOW)
    assert [u.url for u in res.urls] == [server.url("/gz/1")]
    bomb_row = next(e for e in res.log if e.url.endswith("/bomb.xml.gz"))
    assert bomb_row.outcome == "too_large" and bomb_row.kind == "sitemap"


def test_news_sitemap_publication_date_and_max_age(server, fetcher):
    def news(loc, pub):
        return (f"<url><loc>{loc}</loc><news:news><news:publication><news:name>N</news:name>"
                f"<news:language>en</news:language></news:publication>"
                f"<news:publication_date>{pub}</news:publication_date><news:title>T {loc[-1]}</news:title>"
                f"</news:news><lastmod>2025-06-15</lastmod></url>")

    body = ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">'
            + news(server.url("/n/1"), "2025-06-14T08:00:00+02:00")
            + news(server.url("/n/2"), "2025-05-01T08:00:00Z")
            + f"<url><loc>{server.url('/n/3')}</loc></url></urlset>")
    server.route("/news.xml", respond(body, ctype="text/xml"))
    res = discover_source(Source(name="s", sitemaps=(server.url("/news.xml"),), max_age_days=2), fetcher,
                          run_id="d", now=NOW)
    assert [u.url for u in res.urls] == [server.url("/n/1"), server.url("/n/3")]
    assert res.urls[0].published_hint == datetime(2025, 6, 14, 6, tzinfo=timezone.utc)
    assert res.urls[0].title_hint == "T 1"
    assert res.skipped == {"too_old": 1}


def test_robots_sitemap_lines(server, fetcher):
    server.route("/robots.txt", respond(f"User-agent: *\nAllow: /\nSitemap: {server.url('/from-robots.xml')}\n",
                                        ctype="text/plain"))
    server.route("/from-robots.xml", respond(urlset([(server.url("/r/1"), None)]), ctype=XML_T))
    src = Source(name="s", urls=(server.url("/listed"), server.url("/listed?utm_source=x")))
    res = discover_source(src, fetcher, run_id="d", now=NOW)
    assert [(u.url, u.via) for u in res.urls] == [(server.url("/listed"), "list"), (server.url("/r/1"), "robots")]
    assert res.skipped == {"duplicate": 1}
    assert [(e.kind, e.outcome) for e in res.log] == [("sitemap", "ok"), ("robots", "ok")]


def test_text_sitemap():
    kind, items = parse_sitemap(b"http://a.example/1\n\nhttp://a.example/2\n", "http://a.example/s.txt",
                                max_bytes=1000)
    assert kind == "text" and [i.url for i in items] == ["http://a.example/1", "http://a.example/2"]


def test_sitemap_index_fan_out_is_capped(server, fetcher):
    """An index of 1,000 children (issue 15: 10,000 at 1 s per host is ~2.8 h) fetches at most
    ``fetch.max_sitemaps`` documents per source; the rest are counted, not fetched."""
    import dataclasses

    n = 1000
    server.route("/big-index.xml", respond(index([server.url(f"/child-{i}.xml") for i in range(n)]), ctype=XML_T))
    for i in range(n):
        server.route(f"/child-{i}.xml", respond(urlset([(server.url(f"/a/{i}"), None)]), ctype=XML_T))
    f = Fetcher(dataclasses.replace(fetcher.settings, max_sitemaps=5), run_id="d", archive=None)
    try:
        res = discover_source(Source(name="s", sitemaps=(server.url("/big-index.xml"),), max_age_days=None), f,
                              run_id="d", now=NOW)
    finally:
        f.close()
    assert [u.url for u in res.urls] == [server.url(f"/a/{i}") for i in range(4)]
    assert res.skipped == {"sitemap_limit": n - 4}
    assert sum(server.count(f"/child-{i}.xml") for i in range(n)) == 4
