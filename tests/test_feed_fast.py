"""The lxml fast path of feed parsing (``tasks.discover._fast_feed``) against feedparser on the same bytes.

Every feed of the corpus below is read both ways: where the fast path answers, its entries (URL, date,
plain titles) must be feedparser's; the shapes it leaves to feedparser must be declined (None), and the
common shapes must not be (else the fast path would be dead code and this test vacuous)."""

from __future__ import annotations

import itertools

import pytest

from newsmill.tasks.discover import DocumentError, _fast_feed, _feedparser_entries, parse_feed

BASE = "https://news.example.org/feeds/world.xml"
DC = 'xmlns:dc="http://purl.org/dc/elements/1.1/"'
ATOM_NS = 'xmlns:atom="http://www.w3.org/2005/Atom"'

RFC_DATES = ["Mon, 14 Jul 2025 08:05:00 +0000", "Mon, 14 Jul 2025 08:05:00 GMT", "14 Jul 2025 10:05:09 +0200",
             "Mon, 14 Jul 2025 04:05:00 EDT", "Tue, 01 Apr 2025 23:59:59 -0800", "Mon, 14 Jul 2025 08:05:00 PST"]
ISO_DATES = ["2025-07-14T08:05:00Z", "2025-07-14T10:05:00+02:00", "2025-07-14T08:05:00.123456Z", "2025-07-14"]


def rss(items: list[str], ns: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" {ns}><channel><title>World</title>'
            f'<link>https://news.example.org/</link><description>d</description>{"".join(items)}'
            "</channel></rss>").encode()


def atom(entries: list[str]) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>W</title>'
            f'<id>urn:feed</id><updated>2025-07-14T08:00:00Z</updated>{"".join(entries)}</feed>').encode()


def rss_items() -> list[str]:
    out = []
    links = ["<link>https://news.example.org/2025/07/14/harbour-reopens</link>",
             "<link>\n  /2025/07/14/relative-path.html  \n</link>", ""]
    guids = ["", "<guid>https://news.example.org/p/1001</guid>",
             '<guid isPermaLink="false">https://news.example.org/p/1002</guid>',
             '<guid isPermaLink="false">urn:uuid:4b1c7c1e-1</guid>', '<guid isPermaLink="true">/p/1003</guid>']
    for link, guid in itertools.product(links, guids):
        for order in (0, 1):
            parts = [link, guid] if order == 0 else [guid, link]
            out.append(f"<item><title>Harbour &amp; port news</title>{''.join(parts)}</item>")
    for d in RFC_DATES:
        out.append(f"<item><title><![CDATA[Council votes]]></title><link>https://news.example.org/c/{len(out)}</link>"
                   f"<pubDate>{d}</pubDate></item>")
    for d in ISO_DATES:
        out.append(f"<item><title>t</title><link>https://news.example.org/d/{len(out)}</link><dc:date>{d}</dc:date></item>")
    out.append("<item><title>both</title><link>https://news.example.org/b/1</link><dc:date>2025-07-01T00:00:00Z"
               "</dc:date><pubDate>Mon, 14 Jul 2025 08:05:00 +0000</pubDate></item>")
    out.append('<item><title>enc</title><link>https://news.example.org/e/1</link><enclosure url="https://cdn.'
               'example.org/a.mp3" type="audio/mpeg" length="1"/><category>x</category><description>&lt;p&gt;'
               "Body&lt;/p&gt;</description></item>")
    out.append("<item><title>no link at all</title><description>nothing</description></item>")
    return out


def atom_entries() -> list[str]:
    out = []
    links = ['<link href="https://news.example.org/a/1"/>', '<link rel="alternate" href="/a/2"/>',
             '<link rel="alternate" type="text/html" href="https://news.example.org/a/3"/>',
             '<link rel="alternate" type="application/pdf" href="https://news.example.org/a/4.pdf"/>',
             '<link rel="self" href="https://news.example.org/a/5.atom"/>',
             '<link rel="related" href="https://other.example.com/x"/>',
             '<link rel="enclosure" type="audio/mpeg" href="https://cdn.example.org/a.mp3"/>']
    ids = ["<id>urn:uuid:1225c695-cfb8</id>", "<id>https://news.example.org/id/9</id>",
           "<id>tag:news.example.org,2025:1</id>"]
    for a, b in itertools.product(links, links):
        for i in ids[:2]:
            out.append(f"<entry><title>E</title>{a}{i}{b}<updated>2025-07-14T08:05:00Z</updated></entry>")
    for i in ids:
        out.append(f"<entry><title type=\"html\">Vote &amp;lt;b&amp;gt;</title>{i}<updated>2025-07-14T08:05:00Z"
                   "</updated></entry>")
    for d in ISO_DATES:
        out.append(f'<entry><title>t</title><link href="/d/{len(out)}"/><id>urn:{len(out)}</id>'
                   f"<published>{d}</published><updated>2025-01-01T00:00:00Z</updated></entry>")
    out.append('<entry><title>u</title><link href="/u/1"/><id>urn:u</id><updated>2025-07-10T00:00:00Z</updated>'
               "</entry>")
    return out


def rss1() -> bytes:
    items = "".join(f'<item rdf:about="https://news.example.org/r/{i}"><title>R{i}</title>'
                    f"<link>https://news.example.org/r/{i}</link><dc:date>2025-07-1{i}T10:00:00Z</dc:date></item>"
                    for i in range(3))
    return ('<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            f'xmlns="http://purl.org/rss/1.0/" {DC}><channel rdf:about="https://news.example.org/">'
            f"<title>R</title><link>https://news.example.org/</link></channel>{items}</rdf:RDF>").encode()


ACCEPTED = {
    "rss items": rss(rss_items(), DC),
    "atom entries": atom(atom_entries()),
    "rss 1.0": rss1(),
    "rss without declaration": rss(rss_items()[:6]).split(b"\n", 1)[1],
    "other schemes": rss(["<item><link>javascript:alert(1)</link><guid>https://x.example/2</guid></item>",
                          "<item><guid>urn:uuid:77</guid><title>u</title></item>",
                          "<item><link>mailto:desk@example.org</link></item>"]),
}

CASED = {  # feedparser lowercases element and attribute names and rel/type values
    "pubdate lowercase": rss(["<item><link>https://x.example/1</link><pubdate>Mon, 14 Jul 2025 08:05:00 +0000"
                              "</pubdate></item>", "<item><link>https://x.example/2</link></item>"]),
    "PubDate": rss(["<item><link>https://x.example/1</link><PubDate>Mon, 14 Jul 2025 08:05:00 +0000</PubDate>"
                    "</item>"]),
    "Link element": rss(["<item><Link>https://x.example/1</Link><guid>https://x.example/g</guid></item>"]),
    "ispermalink": rss(['<item><guid ispermalink="false">12345</guid></item>',
                        "<item><link>https://x.example/2</link></item>"]),
    "ISPERMALINK": rss(['<item><guid ISPERMALINK="false">https://x.example/p/9</guid></item>']),
    "rel ALTERNATE": atom(['<entry><link rel="ALTERNATE" href="https://x.example/1"/><id>urn:1</id></entry>']),
    "type TEXT/HTML": atom(['<entry><link type="TEXT/HTML" href="https://x.example/1"/><id>urn:1</id></entry>',
                            '<entry><link rel="alternate" type="Application/PDF" href="https://x.example/2"/>'
                            "<id>urn:2</id></entry>"]),
    "id in rss": rss(["<item><id>https://x.example/i/1</id><title>t</title></item>"]),
}

DECLINED = {
    "not well-formed": rss(["<item><title>a</title><link>https://x.example/1</item>"]),
    "undefined entity": rss(["<item><title>a&nbsp;b</title><link>https://x.example/1</link></item>"]),
    "latin-1 declared": rss(["<item><title>caf\xe9</title><link>https://x.example/1</link></item>"])
    .replace(b"UTF-8", b"ISO-8859-1").replace("\xe9".encode(), b"\xe9"),
    "invalid utf-8": rss(["<item><title>caf\xe9</title><link>https://x.example/1</link></item>"])
    .replace("\xe9".encode(), b"\xe9"),
    "xml:base": atom(['<entry xml:base="https://elsewhere.example/dir/"><link href="a"/><id>urn:1</id></entry>']),
    "atom link in rss": rss(['<item><atom:link rel="alternate" href="https://x.example/1"/><title>a</title></item>'],
                            ATOM_NS),
    "date without zone": rss(["<item><link>https://x.example/1</link><pubDate>Mon, 14 Jul 2025 08:05:00"
                              "</pubDate></item>"]),
    "unknown zone name": rss(["<item><link>https://x.example/1</link><pubDate>Mon, 14 Jul 2025 08:05:00 CEST"
                              "</pubDate></item>"]),
    "partial iso date": rss(["<item><link>https://x.example/1</link><dc:date>2025-07</dc:date></item>"], DC),
    "empty link": rss(["<item><link> </link><guid>https://x.example/2</guid></item>"]),
    "atom 0.3": b'<?xml version="1.0"?><feed version="0.3" xmlns="http://purl.org/atom/ns#"><entry>'
                b'<link rel="alternate" type="text/html" href="https://x.example/1"/></entry></feed>',
    "rss 0.91 with its DTD": b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
                             b'"http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel>'
                             b'<item><title>Caf&eacute;</title><link>https://x.example/1</link></item></channel></rss>',
    "rss 0.90": b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
                b'xmlns="http://my.netscape.com/rdf/simple/0.9/"><channel><title>T</title></channel>'
                b"<item><title>a</title><link>https://x.example/1</link></item></rdf:RDF>",
    "Item element": rss(["<Item><link>https://x.example/1</link></Item>"]),
    "nested items": rss(["<item><link>https://x.example/1</link><description><item><link>https://x.example/2"
                         "</link></item></description></item>"]),
    "empty href": atom(['<entry><link href=""/><id>urn:1</id></entry>']),
    "extra slashes": rss(["<item><link>https:///x.example/1</link></item>"]),
    "atom 0.3 link in rss": rss(['<item><a3:link xmlns:a3="http://purl.org/atom/ns#" rel="alternate" '
                                 'type="text/html" href="https://x.example/1"/></item>']),
    "no entries": rss([]),
    "no usable links": rss(["<item><title>a</title></item>"]),
    "date without comma space": rss(["<item><link>https://x.example/1</link><pubDate>Mon,14 Jul 2025 08:05:00 "
                                     "+0000</pubDate></item>"]),
    "two-digit year": rss(["<item><link>https://x.example/1</link><pubDate>Thu, 01 Jul 69 08:05:00 +0000"
                           "</pubDate></item>"]),
    "basic iso": rss(["<item><link>https://x.example/1</link><dc:date>20250714T080500Z</dc:date></item>"], DC),
    "iso week": rss(["<item><link>https://x.example/1</link><dc:date>2025-W28-1</dc:date></item>"], DC),
    "iso without zone": rss(["<item><link>https://x.example/1</link><dc:date>2025-07-14T08:05:00</dc:date>"
                             "</item>"], DC),
    "html page": b"<!DOCTYPE html><html><head><title>x</title></head><body><p>hi</p></body></html>",
    "charset header latin-1": rss(["<item><link>https://x.example/1</link></item>"]),
}


def _comparable(items, with_titles: bool):
    return [(i.url, i.date, i.title if with_titles else None) for i in items]


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_fast_path_reads_what_feedparser_reads(name):
    data = ACCEPTED[name]
    fast = _fast_feed(data, BASE, "application/rss+xml; charset=utf-8")
    assert fast is not None, f"{name}: the fast path declined a common feed shape"
    slow = _feedparser_entries(data, BASE, "application/rss+xml; charset=utf-8")
    plain_titles = name != "atom entries"  # feedparser unescapes type="html" titles (titles are only hints)
    assert _comparable(fast, plain_titles) == _comparable(slow, plain_titles)
    if name in ("rss items", "atom entries", "rss 1.0"):
        assert len(fast) > 10 if name != "rss 1.0" else len(fast) == 3
        assert any(i.date for i in fast) and any(i.date is None for i in fast) == (name == "rss items")
    assert parse_feed(data, BASE, "application/rss+xml") == fast


@pytest.mark.parametrize("name", sorted(CASED))
def test_names_are_matched_as_feedparser_matches_them(name):
    data = CASED[name]
    fast = _fast_feed(data, BASE, "application/rss+xml")
    slow = _feedparser_entries(data, BASE, "application/rss+xml")
    assert fast is not None and _comparable(fast, True) == _comparable(slow, True)


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_fast_path_leaves_other_shapes_to_feedparser(name):
    ctype = "application/rss+xml; charset=ISO-8859-1" if name == "charset header latin-1" else "text/xml"
    assert _fast_feed(DECLINED[name], BASE, ctype) is None


def test_an_empty_feed_keeps_feedparser_s_verdict():
    assert parse_feed(rss([]), BASE, "application/rss+xml") == []
    with pytest.raises(DocumentError):  # served as HTML, no entries: feedparser calls it broken
        parse_feed(rss(["<item><title>a</title></item>"]), BASE, "text/html")


def test_declined_feeds_still_parse_through_feedparser():
    items = parse_feed(DECLINED["latin-1 declared"], BASE, "application/rss+xml")
    assert [(i.url, i.title) for i in items] == [("https://x.example/1", "caf\xe9")]
    items = parse_feed(DECLINED["xml:base"], BASE, "application/atom+xml")
    assert [i.url for i in items] == ["https://elsewhere.example/dir/a"]


def test_a_feed_listed_as_a_sitemap_gives_the_feed_s_entries():
    from newsmill.tasks.discover import parse_sitemap

    for data in (ACCEPTED["rss items"], ACCEPTED["atom entries"], DECLINED["xml:base"]):
        kind, items = parse_sitemap(data, BASE, max_bytes=10_000_000)
        assert kind == "feed" and items == parse_feed(data, BASE) and items
