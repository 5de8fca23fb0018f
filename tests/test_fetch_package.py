"""What ``newsmill.tasks.fetch`` exposes beyond ``Fetcher``: the bounded decoder used by sitemap discovery.

Its surface (``__all__`` only, private modules, nobody reaching in) and the line cap are checked for every
split package in ``tests/test_packages.py``."""

from __future__ import annotations

import gzip

import pytest

import newsmill.tasks.fetch as fetch


def test_decode_capped_is_the_bounded_decoder():
    page = b"<urlset>" + b"<url><loc>https://example.org/a</loc></url>" * 100 + b"</urlset>"
    assert fetch.decode_capped(gzip.compress(page), "gzip", 1 << 20) == (page, True)
    # concatenated gzip members are one stream
    assert fetch.decode_capped(gzip.compress(page) + gzip.compress(page), "gzip", 1 << 20) == (page * 2, True)
    zipped = gzip.compress(page)
    out, complete = fetch.decode_capped(zipped[: len(zipped) // 2], "gzip", 1 << 20)
    assert not complete and page.startswith(out)
    with pytest.raises(fetch.TooLarge):
        fetch.decode_capped(gzip.compress(b"\0" * (8 << 20)), "gzip", 1 << 20)
    with pytest.raises(fetch.DecodingError):
        fetch.decode_capped(b"\x1f\x8b\x08\x00garbage-not-deflate", "gzip", 1 << 20)


def test_discover_reads_gzipped_sitemaps_through_it():
    from newsmill.tasks.discover import DocumentError, parse_sitemap

    sm = (b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
          + b"".join(b"<url><loc>https://example.org/%d</loc></url>" % i for i in range(50)) + b"</urlset>")
    kind, items = parse_sitemap(gzip.compress(sm), "https://example.org/sm.xml.gz", max_bytes=1 << 20)
    assert kind == "urlset" and len(items) == 50
    with pytest.raises(DocumentError, match="truncated"):
        parse_sitemap(gzip.compress(sm)[:-20], "https://example.org/sm.xml.gz", max_bytes=1 << 20)
    with pytest.raises(DocumentError) as bomb:
        parse_sitemap(gzip.compress(b"\0" * (4 << 20)), "https://example.org/sm.xml.gz", max_bytes=1 << 20)
    assert bomb.value.outcome == "too_large"
