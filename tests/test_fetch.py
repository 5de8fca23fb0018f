"""Fetcher against a real fault-injecting server on 127.0.0.2 (blocked targets aim at a canary on
127.0.0.3 that must never be connected to)."""

from __future__ import annotations

import dataclasses
import email.utils
import gzip
import time
import tracemalloc

import brotli
import pytest

from faultserver import (Canary, FaultServer, drip, gzip_bomb, redirect, respond, sequence, stall,
                         truncated)
from newsmill.tasks.archive import WarcArchive, read_record
from newsmill.tasks.config import FetchSettings
from newsmill.tasks.fetch import AddressGuard, Conditional, FetchRequest, Fetcher, decode_body, parse_robots

UA = "newsmill-test/1.0 (+https://example.org/contact)"


def settings(**kw) -> FetchSettings:
    base = dict(user_agent=UA, timeout_s=2.0, connect_timeout_s=1.0, per_host_delay_s=0.0, retries=2,
                backoff_s=0.05, max_retry_after_s=1.5, max_bytes=1_000_000, allow_networks=("127.0.0.2/32",),
                concurrency=4, per_host_concurrency=2, archive_warc=True)
    base.update(kw)
    return FetchSettings(**base)


@pytest.fixture
def server():
    with FaultServer("127.0.0.2") as srv:
        yield srv


@pytest.fixture
def canary():
    c = Canary("127.0.0.3")
    yield c
    c.stop()


@pytest.fixture
def fetcher_factory():
    made = []

    def make(**kw):
        archive = kw.pop("archive", None)
        resolver = kw.pop("resolver", None)
        f = Fetcher(settings(**kw), run_id="t", archive=archive, resolver=resolver)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


HTML = "<!doctype html><html><head><title>t</title></head><body><p>hello</p></body></html>"


# ---- retries ---------------------------------------------------------------------------------------


def test_flaky_503_then_200_is_retried(server, fetcher_factory):
    url = server.route("/flaky", sequence(respond("busy", 503), respond("busy", 503), respond(HTML)))
    r = fetcher_factory().fetch(url, kind="article")
    assert r.ok and r.log.outcome == "ok"
    assert r.log.attempts == 3
    assert server.count("/flaky") == 3


def test_retries_exhausted_keeps_status(server, fetcher_factory):
    url = server.route("/down", respond("down", 502))
    r = fetcher_factory(retries=1).fetch(url, kind="article")
    assert (r.log.outcome, r.log.status, r.log.attempts) == ("http_error", 502, 2)
    assert server.count("/down") == 2


@pytest.mark.parametrize("status", [404, 410, 403])
def test_terminal_4xx_not_retried(server, fetcher_factory, status):
    url = server.route(f"/gone{status}", respond("no", status))
    r = fetcher_factory().fetch(url, kind="article")
    assert (r.log.outcome, r.log.status, r.log.attempts) == ("http_error", status, 1)
    assert server.count(f"/gone{status}") == 1


def test_429_retry_after_seconds_honoured(server, fetcher_factory):
    url = server.route("/slowdown", sequence(respond("wait", 429, headers={"Retry-After": "1"}), respond(HTML)))
    r = fetcher_factory().fetch(url, kind="article")
    assert r.ok and r.log.attempts == 2
    t0, t1 = (e.t for e in server.requests("/slowdown"))
    assert t1 - t0 >= 0.95


def test_503_retry_after_http_date_honoured(server, fetcher_factory):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    url = server.route("/maint", sequence(respond("wait", 503, headers={"Retry-After": when}), respond(HTML)))
    r = fetcher_factory(max_retry_after_s=5).fetch(url, kind="article")
    assert r.ok and r.log.attempts == 2
    t0, t1 = (e.t for e in server.requests("/maint"))
    assert 0.9 <= t1 - t0 <= 3.0


def test_retry_after_above_cap_defers_host(server, fetcher_factory):
    url = server.route("/later", respond("later", 503, headers={"Retry-After": "3600"}))
    other = server.route("/other", respond(HTML))
    f = fetcher_factory()
    r = f.fetch(url, kind="article")
    assert r.log.outcome == "http_error" and "deferred" in r.log.error
    assert r.log.attempts == 1
    assert f.deferred_hosts == {f"127.0.0.2:{server.port}"}
    r2 = f.fetch(other, kind="article")
    assert r2.log.outcome == "http_error" and "deferred" in r2.log.error
    assert server.count("/later") == 1 and server.count("/other") == 0


# ---- deadlines -------------------------------------------------------------------------------------


def test_stall_before_headers_times_out(server, fetcher_factory):
    url = server.route("/stall", stall(10))
    t = time.monotonic()
    r = fetcher_factory(timeout_s=1.0, retries=0).fetch(url, kind="article")
    took = time.monotonic() - t
    assert r.log.outcome == "timeout"
    assert 0.9 <= took < 1.8


def test_drip_ends_at_total_deadline(server, fetcher_factory):
    url = server.route("/drip", drip(total=10_000, interval=0.1))
    t = time.monotonic()
    r = fetcher_factory(timeout_s=1.0, retries=0).fetch(url, kind="article")
    took = time.monotonic() - t
    assert r.log.outcome == "timeout", r.log
    assert 0.9 <= took < 1.6


def test_timeout_is_retried(server, fetcher_factory):
    url = server.route("/stall2", sequence(stall(5), respond(HTML)))
    r = fetcher_factory(timeout_s=0.5, retries=1).fetch(url, kind="article")
    assert r.ok and r.log.attempts == 2


# ---- redirects and the address guard ----------------------------------------------------------------


def test_redirect_followed(server, fetcher_factory):
    target = server.route("/final", respond(HTML))
    url = server.route("/start", redirect("/final", 301))
    r = fetcher_factory().fetch(url, kind="article")
    assert r.ok and r.log.final_url == target


def test_redirect_loop(server, fetcher_factory):
    url = server.route("/a", redirect("/b"))
    server.route("/b", redirect("/a"))
    r = fetcher_factory().fetch(url, kind="article")
    assert r.log.outcome == "too_many_redirects" and "loop" in r.log.error
    assert server.count("/a") == 1 and server.count("/b") == 1


def test_redirect_chain_capped(server, fetcher_factory):
    for i in range(6):
        server.route(f"/r{i}", redirect(f"/r{i + 1}"))
    r = fetcher_factory(max_redirects=3).fetch(server.url("/r0"), kind="article")
    assert r.log.outcome == "too_many_redirects"
    assert server.count("/r4") == 0


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.2/x", "javascript:alert(1)"])
def test_redirect_to_non_http_scheme_blocked(server, fetcher_factory, location):
    url = server.route("/evil", redirect(location))
    r = fetcher_factory().fetch(url, kind="article")
    assert r.log.outcome == "blocked_url"


def test_redirect_to_loopback_outside_allowlist_blocked(server, canary, fetcher_factory):
    url = server.route("/to-canary", redirect(canary.url("/meta")))
    r = fetcher_factory().fetch(url, kind="article")
    assert r.log.outcome == "blocked_url"
    time.sleep(0.2)
    assert canary.connections == 0


def test_direct_blocked_and_non_http_urls(canary, fetcher_factory):
    f = fetcher_factory()
    for url in (canary.url("/"), "file:///etc/passwd", "ftp://example.org/", "http://[::1]:9/",
                f"http://2130706435:{canary.port}/"):  # 2130706435 == 127.0.0.3
        assert f.fetch(url, kind="article").log.outcome == "blocked_url", url
    time.sleep(0.2)
    assert canary.connections == 0
    assert f.stats.get("requests", 0) == 0


def test_hostname_resolving_to_refused_address_blocked(canary, fetcher_factory):
    f = fetcher_factory(resolver=lambda host, port: ["127.0.0.3"])
    r = f.fetch(f"http://news.test:{canary.port}/", kind="article")
    assert r.log.outcome == "blocked_url"
    time.sleep(0.1)
    assert canary.connections == 0


def test_dns_pinned_against_rebinding(server, canary, fetcher_factory):
    """The resolver answers the allowed address first and the canary afterwards: the connection goes to
    the checked address every time."""
    answers = iter([["127.0.0.2"]] + [["127.0.0.3"]] * 10)
    f = fetcher_factory(resolver=lambda host, port: next(answers))
    server.route("/p1", respond(HTML))
    server.route("/p2", respond(HTML))
    for p in ("/p1", "/p2"):
        assert f.fetch(f"http://rebind.test:{server.port}{p}", kind="article").ok
    assert canary.connections == 0
    assert server.requests("/p1")[0].headers["host"] == f"rebind.test:{server.port}"


def test_guard_refuses_special_addresses():
    g = AddressGuard(allow_networks=["127.0.0.2/32"])
    for ip in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.0.1", "169.254.169.254", "0.0.0.0",
               "224.0.0.1", "100.64.0.1", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "240.0.0.1"):
        assert not g.address_allowed(ip), ip
    assert g.address_allowed("127.0.0.2")
    assert g.address_allowed("93.184.216.34")


# ---- bodies ----------------------------------------------------------------------------------------


def test_huge_body_too_large(server, fetcher_factory):
    url = server.route("/huge", respond(b"x" * 3_000_000))
    r = fetcher_factory().fetch(url, kind="article")
    assert r.log.outcome == "too_large"


def test_huge_body_without_length_stops_at_cap(server, fetcher_factory):
    def endless(h):
        h.send(200, b"", {"Content-Type": "text/html"}, content_length=False)
        for _ in range(100):
            h.wfile.write(b"y" * 65536)

    url = server.route("/endless", endless)
    r = fetcher_factory().fetch(url, kind="article")
    assert r.log.outcome == "too_large"
    assert r.log.bytes <= 1_000_000 + 65536


def test_gzip_bomb_stops_near_cap(server, fetcher_factory):
    url = server.route("/bomb", gzip_bomb(200 * 1024 * 1024))
    f = fetcher_factory()
    tracemalloc.start()
    t = time.monotonic()
    r = f.fetch(url, kind="article")
    took = time.monotonic() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert r.log.outcome == "too_large"
    assert 1_000_000 < r.log.bytes <= 1_000_000 + 65536
    assert peak < 16 * 1024 * 1024
    assert took < 2


def test_gzip_and_brotli_bodies_decoded(server, fetcher_factory):
    server.route("/gz", respond(gzip.compress(HTML.encode()), headers={"Content-Encoding": "gzip"}))
    server.route("/br", respond(brotli.compress(HTML.encode()), headers={"Content-Encoding": "br"}))
    f = fetcher_factory()
    for p in ("/gz", "/br"):
        r = f.fetch(server.url(p), kind="article")
        assert r.ok and r.html == HTML and r.log.bytes == len(HTML)


def test_pdf_is_not_html_and_not_retried(server, fetcher_factory):
    url = server.route("/doc.pdf", respond(b"%PDF-1.7 ...", ctype="application/pdf"))
    r = fetcher_factory().fetch(url, kind="article")
    assert r.log.outcome == "not_html" and r.log.attempts == 1
    assert server.count("/doc.pdf") == 1


def test_feed_kind_accepts_xml(server, fetcher_factory):
    url = server.route("/feed.xml", respond("<rss version='2.0'></rss>", ctype="application/rss+xml"))
    assert fetcher_factory().fetch(url, kind="feed").log.outcome == "ok"


def test_cp1252_declared_only_in_meta(server, fetcher_factory):
    body = (b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'
            b"</head><body><p>\x93Quoted\x94 caf\xe9 \x96 na\xefve</p></body></html>")
    url = server.route("/cp1252", respond(body, ctype="text/html"))
    r = fetcher_factory().fetch(url, kind="article")
    assert r.ok and r.encoding == "cp1252"
    assert "\u201cQuoted\u201d café \u2013 naïve" in r.html
    assert "\ufffd" not in r.html


def test_charset_logic():
    assert decode_body("café".encode("latin-1"), "text/html; charset=iso-8859-1") == ("café", "cp1252")
    # header says utf-8 but bytes are windows-1252: no silent U+FFFD
    text, enc = decode_body(b"<p>\x93hi\x94 caf\xe9</p>", "text/html; charset=utf-8")
    assert "\ufffd" not in text and "\u201chi\u201d" in text
    assert decode_body(b"\xef\xbb\xbfcaf\xc3\xa9", "text/html; charset=latin-1") == ("café", "utf-8")
    assert decode_body(b'<meta charset="utf-8"><p>caf\xc3\xa9</p>', None)[1] == "utf-8"


def test_empty_body(server, fetcher_factory):
    url = server.route("/empty", respond(b""))
    r = fetcher_factory().fetch(url, kind="article")
    assert r.log.outcome == "not_html" and r.log.error == "empty body"
    assert not r.ok and server.count("/empty") == 1


def test_truncated_body(server, fetcher_factory):
    url = server.route("/cut", truncated(b"<html><body>half", declared=5000))
    r = fetcher_factory().fetch(url, kind="article")
    assert r.log.outcome == "truncated" and not r.ok
    assert server.count("/cut") == 1


def test_missing_content_type_sniffed(server, fetcher_factory):
    server.route("/noct", respond(HTML, ctype=None))
    server.route("/noct-bin", respond(b"\x00\x01binary", ctype=None))
    f = fetcher_factory()
    assert f.fetch(server.url("/noct"), kind="article").ok
    assert f.fetch(server.url("/noct-bin"), kind="article").log.outcome == "not_html"


# ---- robots.txt ------------------------------------------------------------------------------------


def test_robots_disallow(server, fetcher_factory):
    server.route("/robots.txt", respond("User-agent: *\nDisallow: /private\nSitemap: /sm.xml\n"
                                        "Sitemap: http://127.0.0.2/abs.xml\n", ctype="text/plain"))
    server.route("/private/x", respond(HTML))
    server.route("/public", respond(HTML))
    f = fetcher_factory()
    r = f.fetch(server.url("/private/x"), kind="article")
    assert r.log.outcome == "robots_disallowed" and r.log.attempts == 0
    assert f.fetch(server.url("/public"), kind="article").ok
    assert server.count("/private/x") == 0
    assert server.count("/robots.txt") == 1
    rows = f.drain_log()
    assert [(e.kind, e.outcome) for e in rows] == [("robots", "ok")]
    assert f.drain_log() == []
    assert "http://127.0.0.2/abs.xml" in f.robots_sitemaps(server.url("/"))


def test_robots_404_allows_all(server, fetcher_factory):
    server.route("/page", respond(HTML))
    f = fetcher_factory()
    assert f.fetch(server.url("/page"), kind="article").ok
    assert server.count("/robots.txt") == 1


def test_robots_500_disallows_all(server, fetcher_factory):
    server.route("/robots.txt", respond("oops", 500, ctype="text/plain"))
    server.route("/page", respond(HTML))
    f = fetcher_factory(retries=1)
    r = f.fetch(server.url("/page"), kind="article")
    assert r.log.outcome == "robots_disallowed" and "unreachable" in r.log.error
    assert f.fetch(server.url("/page"), kind="article").log.outcome == "robots_disallowed"
    assert server.count("/page") == 0
    assert server.count("/robots.txt") == 2  # one retry, then not again this run


def test_crawl_delay_honoured(server, fetcher_factory):
    server.route("/robots.txt", respond("User-agent: *\nCrawl-delay: 0.5\n", ctype="text/plain"))
    for p in ("/c1", "/c2", "/c3"):
        server.route(p, respond(HTML))
    f = fetcher_factory(max_crawl_delay_s=0.6)
    results = list(f.fetch_many([FetchRequest(server.url(p)) for p in ("/c1", "/c2", "/c3")]))
    assert all(r.ok for r in results)
    times = sorted(e.t for e in server.requests())
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) == 4 and min(gaps) >= 0.45, gaps  # robots.txt request included


def test_robots_parser_rfc9309():
    rules = parse_robots("User-agent: other\nDisallow: /\n\nUser-agent: newsmill-test\nUser-agent: x\n"
                         "Disallow: /a\nAllow: /a/b\nDisallow: /*.pdf$\n", UA)
    assert rules.allowed("/") and not rules.allowed("/a/c") and rules.allowed("/a/b/c")
    assert not rules.allowed("/x/file.pdf") and rules.allowed("/x/file.pdf?x=1")
    star = parse_robots("User-agent: *\nDisallow: /\n", UA)
    assert not star.allowed("/anything") and star.allowed("/robots.txt")


# ---- conditional requests, UA, politeness -----------------------------------------------------------


def test_etag_then_not_modified(server, fetcher_factory):
    def page(h):
        if h.headers.get("If-None-Match") == '"v1"':
            h.send(304, b"", {"ETag": '"v1"'}, content_length=False)
        else:
            respond(HTML, headers={"ETag": '"v1"', "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT"})(h)

    url = server.route("/etag", page)
    f = fetcher_factory()
    first = f.fetch(url, kind="article")
    assert first.ok and first.log.etag == '"v1"'
    assert first.log.last_modified == "Wed, 01 Jan 2025 00:00:00 GMT"
    second = f.fetch(url, kind="article", conditional=Conditional(first.log.etag, first.log.last_modified))
    assert second.log.outcome == "not_modified" and second.log.status == 304
    req = server.requests("/etag")[1]
    assert req.headers["if-none-match"] == '"v1"'
    assert req.headers["if-modified-since"] == "Wed, 01 Jan 2025 00:00:00 GMT"


def test_user_agent_on_every_request(server, fetcher_factory):
    server.route("/robots.txt", respond("User-agent: *\nAllow: /\n", ctype="text/plain"))
    server.route("/u1", sequence(respond("x", 503), respond(HTML)))
    server.route("/u2", redirect("/u1"))
    f = fetcher_factory()
    f.fetch(server.url("/u2"), kind="article")
    f.fetch(server.url("/missing"), kind="article")
    reqs = server.requests()
    assert len(reqs) == 5  # robots, /u2, /u1 (503), /u1, /missing
    assert all(r.headers.get("user-agent") == UA for r in reqs)


def test_per_host_delay_and_concurrency(server, fetcher_factory):
    paths = [f"/d{i}" for i in range(4)]
    for p in paths:
        server.route(p, respond(HTML))
    f = fetcher_factory(per_host_delay_s=0.3, concurrency=4, per_host_concurrency=2)
    results = list(f.fetch_many(server.url(p) for p in paths))
    assert len(results) == 4 and all(r.ok for r in results)
    times = sorted(e.t for e in server.requests())  # robots.txt + 4 pages
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.28, gaps
    assert f.stats["requests"] == 5


def test_fetch_many_is_concurrent_across_hosts(fetcher_factory):
    with FaultServer("127.0.0.2") as a, FaultServer("127.0.0.2") as b:
        for srv in (a, b):
            srv.route("/robots.txt", respond("User-agent: *\nAllow: /\n", ctype="text/plain"))
            for i in range(2):
                srv.route(f"/s{i}", stall(0.5))
        f = fetcher_factory(per_host_concurrency=2, concurrency=4)
        t = time.monotonic()
        results = list(f.fetch_many([srv.url(f"/s{i}") for srv in (a, b) for i in range(2)]))
        took = time.monotonic() - t
        assert len(results) == 4 and all(r.ok for r in results)
        assert took < 1.8  # four 0.5 s requests overlapped (sequential: 2 s)


# ---- WARC ------------------------------------------------------------------------------------------


def test_successful_responses_archived(server, tmp_path, fetcher_factory):
    server.route("/arch", respond(gzip.compress(HTML.encode()), headers={"Content-Encoding": "gzip"}))
    archive = WarcArchive(tmp_path, "run1")
    f = fetcher_factory(archive=archive)
    r = f.fetch(server.url("/arch"), kind="article")
    assert r.ok and r.log.warc_file and r.log.warc_file.startswith("raw/date=")
    rec = read_record(tmp_path, r.log.warc_file, r.log.warc_offset)  # while still .open
    assert rec.url == server.url("/arch") and rec.status == 200 and rec.body == HTML.encode()
    archive.close()
    assert (tmp_path / r.log.warc_file).exists()
    assert read_record(tmp_path, r.log.warc_file, r.log.warc_offset).body == HTML.encode()
    robots = f.drain_log()[0]
    assert robots.warc_file is None  # 404 robots.txt is not archived


def test_settings_roundtrip_is_frozen():
    s = settings()
    assert dataclasses.replace(s, retries=0).retries == 0


# ---- substituted dependencies (no sockets) ----------------------------------------------------------


def test_mock_transport_and_backoff_schedule():
    import httpx

    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.url.path == "/robots.txt":
            return httpx.Response(404)
        return httpx.Response(503)

    sleeps = []
    f = Fetcher(settings(retries=3, backoff_s=1.0, allow_networks=()), run_id="m",
                transport=httpx.MockTransport(handler), resolver=lambda host, port: ["93.184.216.34"],
                sleep=sleeps.append)
    r = f.fetch("https://news.example/a", kind="article")
    f.close()
    assert (r.log.outcome, r.log.status, r.log.attempts) == ("http_error", 503, 4)
    assert len(sleeps) == 3
    for n, d in enumerate(sleeps):
        assert 2 ** n / 2 <= d <= 2 ** n
    assert all(c.headers["user-agent"] == UA for c in calls)
    assert f.stats["retries"] == 3 and f.stats["requests"] == 5


def test_chunked_body_cut_is_truncated(server, fetcher_factory):
    def cut(h):
        h.send(200, b"", {"Content-Type": "text/html", "Transfer-Encoding": "chunked"}, content_length=False)
        h.wfile.write(b"10\r\n<html><body>abc\r\n")
        h.wfile.flush()
        h.connection.shutdown(2)

    url = server.route("/chunk-cut", cut)
    r = fetcher_factory().fetch(url, kind="article")
    assert r.log.outcome == "truncated" and server.count("/chunk-cut") == 1


# ---- keep-alive ------------------------------------------------------------------------------------


class _KeepAliveSite:
    """HTTP/1.1 keep-alive server on 127.0.0.1 that counts TCP connections: /p/N answers 200 with an
    ETag, 304 to a matching If-None-Match; /small-404 a short error page; /big-404 a 200 KB one."""

    def __init__(self):
        import http.server
        import threading

        site = self
        self.connections = 0

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                site.connections += 1

            def log_message(self, *a):
                pass

            def _send(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                if status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)

            def do_GET(self):
                if self.path == "/robots.txt":
                    return self._send(404, b"no robots")
                if self.path == "/small-404":
                    return self._send(404, b"<html><body>gone</body></html>", [("Content-Type", "text/html")])
                if self.path == "/big-404":
                    return self._send(404, b"x" * 200_000, [("Content-Type", "text/html")])
                etag = f'"v1-{self.path}"'
                if self.headers.get("If-None-Match") == etag:
                    return self._send(304, headers=[("ETag", etag)])
                self._send(200, HTML.encode(), [("Content-Type", "text/html; charset=utf-8"), ("ETag", etag)])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_not_modified_and_small_error_pages_keep_the_connection(fetcher_factory):
    """A 304 (or a short error page) is read to its end so its keep-alive connection is reused; a big
    unused body is not downloaded, its connection is closed instead."""
    site = _KeepAliveSite()
    try:
        f = fetcher_factory(concurrency=1, allow_networks=("127.0.0.1/32",))
        first = [f.fetch(f"{site.base}/p/{i}", kind="article") for i in range(10)]
        assert all(r.ok for r in first)
        after_first = site.connections
        again = [f.fetch(f"{site.base}/p/{i}", kind="article",
                         conditional=Conditional(etag=r.log.etag)) for i, r in enumerate(first)]
        assert [r.log.outcome for r in again] == ["not_modified"] * 10
        for _ in range(3):
            assert f.fetch(f"{site.base}/small-404", kind="article").log.outcome == "http_error"
        assert site.connections == after_first  # 10 304s and 3 error pages on the same connection
        assert f.fetch(f"{site.base}/big-404", kind="article").log.outcome == "http_error"
        assert f.fetch(f"{site.base}/p/0", kind="article").ok
        assert site.connections == after_first + 1  # the big body's connection was dropped, not read
    finally:
        site.close()


# ---- HTTPS through the pinned transport ------------------------------------------------------------


def _tls_site(tmp_path, hostname: str):
    """An HTTPS server on 127.0.0.2 with a certificate for ``hostname`` issued by a throwaway CA.
    Returns (server, port, CA PEM path)."""
    import datetime as dt
    import http.server
    import ssl
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def cert(subject, issuer, key, sign_key, ca: bool, san=None):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
             .not_valid_after(now + dt.timedelta(days=2))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return b.sign(sign_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "newsmill test CA")])
    ca = cert(ca_name, ca_name, ca_key, ca_key, True)
    leaf = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]), ca_name, key, ca_key, False, hostname)
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    (tmp_path / "ca.pem").write_bytes(pem(ca))
    (tmp_path / "leaf.pem").write_bytes(pem(leaf) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            body = b"User-agent: *\nAllow: /\n" if self.path == "/robots.txt" else HTML.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain" if self.path == "/robots.txt" else "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.2", 0), H)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "leaf.pem")
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, httpd.server_address[1], tmp_path / "ca.pem"


def test_https_pinned_address_verifies_the_hostname_and_ca(tmp_path, fetcher_factory):
    """HTTPS goes to the pinned (guard-checked) address while TLS verifies the URL's hostname; a CA the
    fetcher does not trust, or a certificate for another name, is a network_error value, not retried."""
    httpd, port, ca = _tls_site(tmp_path, "news.example.test")
    resolver = lambda host, port: ["127.0.0.2"]  # noqa: E731  (news.example.test and other.example.test)
    try:
        trusted = fetcher_factory(ca_bundle=str(ca), resolver=resolver)
        r = trusted.fetch(f"https://news.example.test:{port}/story", kind="article")
        assert r.ok and r.log.status == 200 and "hello" in r.html
        # with robots on, an unreachable robots.txt disallows the host for the run (RFC 9309)
        assert trusted.fetch(f"https://other.example.test:{port}/story", kind="article").log.outcome \
            == "robots_disallowed"
        no_robots = fetcher_factory(ca_bundle=str(ca), resolver=resolver, respect_robots=False)
        wrong_name = no_robots.fetch(f"https://other.example.test:{port}/story", kind="article")
        assert wrong_name.log.outcome == "network_error" and "certificate" in wrong_name.log.error.lower()
        assert wrong_name.log.attempts == 1
        untrusted = fetcher_factory(resolver=resolver, respect_robots=False).fetch(
            f"https://news.example.test:{port}/story", kind="article")
        assert untrusted.log.outcome == "network_error" and "certificate" in untrusted.log.error.lower()
        assert untrusted.log.attempts == 1  # a certificate problem is not transient
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("bundle", ["certifi", "ca_bundle"])
def test_fetcher_loads_its_trusted_cas_once(tmp_path, monkeypatch, bundle):
    """Loading a CA bundle costs ~45 ms of CPU, paid in every run's process: the fetcher builds one TLS
    context (httpx's transport used to build a second, unused one), and that one verifies its requests
    (the test above checks what it trusts)."""
    import ssl

    kw = {}
    if bundle == "ca_bundle":
        httpd, _port, ca = _tls_site(tmp_path, "news.example.test")
        httpd.shutdown()
        httpd.server_close()
        kw["ca_bundle"] = str(ca)
    loads = []
    real = ssl.SSLContext.load_verify_locations

    def counted(self, *a, **k):
        loads.append(self)
        return real(self, *a, **k)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    f = Fetcher(settings(**kw), run_id="t")
    try:
        assert len(loads) == 1
        assert f._client._transport._pool._ssl_context is loads[0]
    finally:
        f.close()


def test_ca_bundle_must_exist(tmp_path):
    from newsmill.tasks.config import load_settings
    from newsmill.tasks.errors import ConfigError

    cfg = tmp_path / "c.toml"
    cfg.write_text('[fetch]\nca_bundle = "/nonexistent/ca.pem"\n[[sources]]\nname = "s"\nurls = ["https://a.example/"]\n')
    with pytest.raises(ConfigError, match="fetch.ca_bundle"):
        load_settings(str(cfg))
