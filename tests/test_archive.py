"""WARC archive writer and readers."""

from __future__ import annotations

import gzip
import io
import os
import threading
import tracemalloc
from datetime import datetime, timezone

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from newsmill.tasks.archive import RawRecord, Skipped, WarcArchive, decode_record, iter_warc_records, read_record

T = datetime(2025, 6, 15, 12, 0, tzinfo=timezone.utc)
HTML = b"<html><body><p>hello</p></body></html>"


def test_write_read_by_offset_and_seal(tmp_path):
    arc = WarcArchive(tmp_path, "run7")
    locs = [arc.write_response(f"http://a.example/{i}", 200, [("Content-Type", "text/html")], HTML + bytes([65 + i]),
                               T) for i in range(3)]
    rel = locs[0][0]
    assert rel.startswith("raw/date=2025-06-15/run7-") and rel.endswith(".warc.gz")
    assert not (tmp_path / rel).exists() and (tmp_path / (rel + ".open")).exists()
    assert list(tmp_path.glob("raw/*/*.warc.gz")) == []  # readers globbing never see the open file
    arc.close()
    assert (tmp_path / rel).exists() and not (tmp_path / (rel + ".open")).exists()
    for i, (path, offset, length) in enumerate(locs):
        rec = read_record(tmp_path, path, offset)
        assert rec.url == f"http://a.example/{i}" and rec.status == 200 and rec.body == HTML + bytes([65 + i])
        assert rec.fetched_at == T
        # each record is one gzip member: the slice alone decompresses
        with open(tmp_path / path, "rb") as fh:
            fh.seek(offset)
            member = gzip.decompress(fh.read(length))
        assert member.startswith(b"WARC/1") and member.rstrip().endswith(HTML + bytes([65 + i]))


def test_raw_encoded_body_and_chunked_header(tmp_path):
    arc = WarcArchive(tmp_path, "r")
    body = gzip.compress(HTML)
    path, off, _ = arc.write_response("http://a.example/", 200, [("Content-Type", "text/html"),
                                                                ("Content-Encoding", "gzip"),
                                                                ("Transfer-Encoding", "chunked")], body, T)
    arc.close()
    rec = read_record(tmp_path, path, off)
    assert rec.body == HTML
    names = [k.lower() for k, _ in rec.headers]
    assert "transfer-encoding" not in names and "x-crawler-transfer-encoding" in names


def test_encoded_body_is_stored_not_recompressed(tmp_path):
    """A body kept with its Content-Encoding goes into a stored (level 0) gzip member; a plain one is
    compressed. Both are single gzip members that warcio and gzip read back."""
    page = b"<html><body>" + b"<p>the same paragraph again and again</p>" * 400 + b"</body></html>"
    arc = WarcArchive(tmp_path, "r")
    enc = gzip.compress(page)
    p1, o1, n1 = arc.write_response("http://a.example/enc", 200, [("Content-Type", "text/html"),
                                                                  ("Content-Encoding", "gzip")], enc, T)
    p2, o2, n2 = arc.write_response("http://a.example/plain", 200, [("Content-Type", "text/html")], page, T)
    arc.close()
    assert read_record(tmp_path, p1, o1).body == page and read_record(tmp_path, p2, o2).body == page
    with open(tmp_path / p1, "rb") as fh:
        fh.seek(o1)
        member = fh.read(n1)
    record = gzip.decompress(member)
    assert enc in record  # the encoded body is in the member verbatim: no second deflate pass
    assert len(member) > len(record)  # stored blocks: the member is the record plus gzip framing
    assert n2 < len(page) / 5  # the plain body was compressed

def test_rotation_and_date_partition(tmp_path):
    arc = WarcArchive(tmp_path, "r", max_file_bytes=2000)
    big = b"<html>" + os.urandom(3000) + b"</html>"
    paths = {arc.write_response("http://a.example/", 200, [("Content-Type", "text/html")], big, T)[0]
             for _ in range(4)}
    other_day = arc.write_response("http://a.example/", 200, [], HTML, datetime(2025, 6, 16, tzinfo=timezone.utc))
    arc.close()
    assert len(paths) >= 3
    assert other_day[0].startswith("raw/date=2025-06-16/")
    assert not list(tmp_path.rglob("*.open"))


def test_thread_safe_writes(tmp_path):
    arc = WarcArchive(tmp_path, "r")
    out = []

    def work(n):
        for i in range(20):
            out.append((n, i, arc.write_response(f"http://a.example/{n}/{i}", 200, [("Content-Type", "text/html")],
                                                 HTML, T)))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    arc.close()
    for n, i, (path, off, _) in out:
        assert read_record(tmp_path, path, off).url == f"http://a.example/{n}/{i}"


def _cc_news_like(path, n_html=3):
    """A WARC like CC-NEWS: warcinfo, request+response pairs, a PDF, a 404, a truncated record."""
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=str(path).endswith(".gz"))
        w.write_record(w.create_warcinfo_record("x.warc.gz", {"software": "test"}))

        def resp(url, ctype, body, status="200 OK", date="2025-06-15T10:00:00Z", extra=None):
            http = StatusAndHeaders(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))],
                                    protocol="HTTP/1.1")
            headers = {"WARC-Date": date, **(extra or {})}
            w.write_record(w.create_warc_record(url, "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n"),
                                                warc_headers_dict={"WARC-Date": date}))
            w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(body), length=len(body),
                                                http_headers=http, warc_headers_dict=headers))

        for i in range(n_html):
            resp(f"https://www.news.example/a/{i}", "text/html; charset=utf-8", HTML)
        resp("https://other.example/x", "text/html", HTML, date="2025-06-01T00:00:00Z")
        resp("https://www.news.example/doc.pdf", "application/pdf", b"%PDF-1.4")
        resp("https://www.news.example/missing", "text/html", b"<html>404</html>", status="404 Not Found")
        resp("https://www.news.example/cut", "text/html", HTML, extra={"WARC-Truncated": "length"})
        resp("https://www.news.example/cp", "text/html",
             b'<meta charset="windows-1252"><p>\x93hi\x94 caf\xe9</p>')


def test_iter_warc_records_cc_news_like(tmp_path):
    for name in ("cc.warc.gz", "cc.warc"):
        p = tmp_path / name
        _cc_news_like(p)
        got = list(iter_warc_records(p))
        recs = [g for g in got if isinstance(g, RawRecord)]
        skipped = sorted((s.url.rsplit("/", 1)[1], s.reason) for s in got if isinstance(s, Skipped))
        assert len(recs) == 5
        assert skipped == [("cut", "truncated"), ("doc.pdf", "not_html"), ("missing", "http_status")]
        cp = next(r for r in recs if r.url.endswith("/cp"))
        text, enc = decode_record(cp)
        assert enc == "cp1252" and "\u201chi\u201d café" in text


def test_record_page_is_the_body_itself_only_when_it_is_strict_utf8():
    """Extraction gets a record's bytes only where they equal its decoded text encoded to UTF-8 again;
    everywhere else the decoded text, as before."""
    from newsmill.tasks.archive import record_page

    def rec(body: bytes, ctype: str | None = "text/html; charset=utf-8") -> RawRecord:
        return RawRecord(url="https://www.news.example/a", status=200, headers=(), body=body, fetched_at=None,
                         content_type=ctype)

    utf8 = "<p>Zürich — 北京 “quoted”</p>".encode("utf-8")
    for r in (rec(utf8), rec(utf8, None), rec(b"<p>plain ascii</p>", "text/html")):
        page = record_page(r)
        assert page is r.body and page == decode_record(r)[0].encode("utf-8")
    # a BOM is stripped from the text, a broken sequence after it replaced: the text, not the bytes
    bom = rec(b"\xef\xbb\xbf<p>caf\xc3\xa9 \xff</p>")
    assert record_page(bom) == decode_record(bom)[0] == "<p>café \ufffd</p>"
    # declared UTF-8 but not UTF-8 (falls through to windows-1252), and windows-1252 declared: the text
    for r in (rec(b"<p>caf\xe9</p>"), rec(b'<meta charset="windows-1252"><p>\x93hi\x94</p>', None)):
        page = record_page(r)
        assert isinstance(page, str) and page == decode_record(r)[0]


def test_iter_warc_records_filters(tmp_path):
    p = tmp_path / "cc.warc.gz"
    _cc_news_like(p)
    only = [g for g in iter_warc_records(p, domains=["news.example"]) if isinstance(g, RawRecord)]
    assert {r.url.split("/")[2] for r in only} == {"www.news.example"}
    since = datetime(2025, 6, 10, tzinfo=timezone.utc)
    recent = [g for g in iter_warc_records(p, since=since) if isinstance(g, RawRecord)]
    assert all("other.example" not in r.url for r in recent) and len(recent) == 4
    until = [g for g in iter_warc_records(p, until=since) if isinstance(g, RawRecord)]
    assert [r.url for r in until] == ["https://other.example/x"]


def test_torn_file_yields_skipped_not_crash(tmp_path):
    p = tmp_path / "torn.warc.gz"
    _cc_news_like(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 40])
    got = list(iter_warc_records(p))
    assert any(isinstance(g, RawRecord) for g in got)
    assert isinstance(got[-1], Skipped) and got[-1].reason == "truncated"


def test_iteration_memory_is_flat(tmp_path):
    p = tmp_path / "many.warc.gz"
    _cc_news_like(p, n_html=800)
    tracemalloc.start()
    n = 0
    for g in iter_warc_records(p):
        n += isinstance(g, RawRecord)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 802
    assert peak < 8 * 1024 * 1024


def test_idle_archive_seals_itself(tmp_path):
    """A writer nobody closes (a Dask worker's fetcher) seals its file after ``idle_seal_s`` without a
    write; the next write opens a new file."""
    import time

    arc = WarcArchive(tmp_path, "idle", idle_seal_s=0.3)
    rel, off, _ = arc.write_response("http://a.example/1", 200, [("Content-Type", "text/html")], HTML, T)
    assert (tmp_path / (rel + ".open")).exists()
    deadline = time.monotonic() + 10
    while (tmp_path / (rel + ".open")).exists():
        assert time.monotonic() < deadline, "the idle file was not sealed"
        time.sleep(0.05)
    assert read_record(tmp_path, rel, off).body == HTML
    rel2, _, _ = arc.write_response("http://a.example/2", 200, [("Content-Type", "text/html")], HTML, T)
    assert rel2 != rel and (tmp_path / (rel2 + ".open")).exists()
    arc.close()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        [os.path.basename(rel), os.path.basename(rel2)])


def test_recover_open_files_seals_a_dead_writers_file_and_leaves_a_live_one(tmp_path):
    """An unlocked ``.open`` file (its process is dead) is cut back to its last whole member, fsynced and
    renamed; every whole record stays readable at its offset. A locked one (a live writer) is left alone."""
    from newsmill.tasks.archive import recover_open_files

    live = WarcArchive(tmp_path, "live", idle_seal_s=None)
    locs = [live.write_response(f"http://a.example/{i}", 200, [("Content-Type", "text/html")],
                                HTML + bytes([65 + i]), T) for i in range(3)]
    rel = locs[0][0]
    whole = (tmp_path / (rel + ".open")).read_bytes()
    member = gzip.compress(b"WARC/1.1\r\nWARC-Type: response\r\n" + b"x" * 5000)
    dead_rel = rel.replace("live-", "dead-")
    (tmp_path / (dead_rel + ".open")).write_bytes(whole + member[: len(member) // 2])  # killed mid-write

    out = recover_open_files(tmp_path)
    assert out == {"sealed": [dead_rel], "removed": [], "live": [rel + ".open"]}
    assert (tmp_path / dead_rel).read_bytes() == whole
    for i, (_p, off, _n) in enumerate(locs):
        assert read_record(tmp_path, dead_rel, off).body == HTML + bytes([65 + i])
    assert (tmp_path / (rel + ".open")).exists()  # the live writer's file: untouched
    live.close()
    assert (tmp_path / rel).read_bytes() == whole


def test_large_records_are_read_member_by_member(tmp_path):
    """Members larger than one read (compressed > 8 KiB, inflated > 16 KiB): the member walker, the record
    reader, read_record and the takedown scan agree with warcio on every offset and length."""
    import random

    from warcio.archiveiterator import ArchiveIterator

    from newsmill.tasks.archive import scan_members

    rng = random.Random(5)
    words = [("".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(2, 9)))) for _ in range(3000)]
    bodies = [("<html><body>" + " ".join(rng.choice(words) for _ in range(rng.randint(2000, 40000)))
               + "</body></html>").encode() for _ in range(12)]
    arc = WarcArchive(tmp_path, "big", idle_seal_s=None)
    locs = [arc.write_response(f"http://a.example/{i}", 200, [("Content-Type", "text/html")], b, T)
            for i, b in enumerate(bodies)]
    arc.close()
    path = tmp_path / locs[0][0]
    with open(path, "rb") as fh:
        it = ArchiveIterator(fh)
        expected = [(it.get_record_offset(), it.get_record_length()) for _ in it]
    with open(path, "rb") as fh:
        spans = list(scan_members(fh))
    assert [(s.offset, s.length) for s in spans] == expected and all(s.whole for s in spans)
    assert [s.url for s in spans[1:]] == [f"http://a.example/{i}" for i in range(12)]
    assert [(o, n) for _p, o, n in locs] == expected[1:]
    assert [r.body for r in iter_warc_records(path)] == bodies
    for (p, off, _n), body in zip(locs, bodies):
        assert read_record(tmp_path, p, off).body == body
