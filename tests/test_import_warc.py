"""``import_warc``: a WARC generated here with warcio (HTML responses on two domains and two days, a
gzip-encoded response, a PDF, a truncated response, a request, a revisit and a warcinfo record) is imported
into a real warehouse through a real Prefect API; domain and date filters, skipped-record accounting,
idempotent re-import, a torn file, the CLI, and reprocessing of imported pages."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import random
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

WORDS = ("river council budget school harbour election winter festival library bridge farmers market "
         "railway museum hospital research coast mountain village ministry report season football "
         "orchestra theatre weather energy solar wind transport housing policy").split()

# (url, WARC-Date) of the HTML responses
HTML = [
    ("https://www.alpha.example/news/a-0.html", "2024-05-01T08:00:00Z"),
    ("https://www.alpha.example/news/a-1.html", "2024-05-01T09:00:00Z"),
    ("https://alpha.example/news/a-2.html", "2024-05-03T10:00:00Z"),
    ("https://news.beta.example/story/b-0.html", "2024-05-01T11:00:00Z"),
    ("https://news.beta.example/story/b-1.html", "2024-05-03T12:00:00Z"),
]
GZIPPED = ("https://news.beta.example/story/b-gz.html", "2024-05-03T13:00:00Z")
PDF = ("https://www.alpha.example/files/report.pdf", "2024-05-01T08:30:00Z")
TRUNCATED = ("https://news.beta.example/story/b-cut.html", "2024-05-01T11:30:00Z")
N_HTML = len(HTML) + 1  # + the gzip-encoded one


def page(url: str, seed: int) -> bytes:
    rng = random.Random(seed)
    paras = "\n".join("<p>" + " ".join(rng.choice(WORDS) for _ in range(40)).capitalize() + ".</p>"
                      for _ in range(5))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Story {seed}</title>
<link rel="canonical" href="{url}"></head><body><article><h1>Story {seed} on {rng.choice(WORDS)}</h1>
{paras}</article></body></html>""".encode()


def write_warc(path: Path, compress: bool = True) -> Path:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    def response(w, url, date, body, ctype="text/html; charset=utf-8", extra=(), length=None):
        headers = [("Content-Type", ctype), ("Content-Length", str(length if length is not None else len(body))),
                   *extra]
        http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
        rec = w.create_warc_record(url, "response", payload=io.BytesIO(body), length=len(body),
                                   http_headers=http, warc_headers_dict={"WARC-Date": date})
        w.write_record(rec)

    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=compress)
        w.write_record(w.create_warcinfo_record(path.name, {"software": "test"}))
        for i, (url, date) in enumerate(HTML):
            req = w.create_warc_record(url, "request", payload=io.BytesIO(b""), length=0,
                                       http_headers=StatusAndHeaders(f"GET {url} HTTP/1.1", [("Host", "x")],
                                                                     is_http_request=True),
                                       warc_headers_dict={"WARC-Date": date})
            w.write_record(req)
            response(w, url, date, page(url, i))
            if i == 1:
                response(w, PDF[0], PDF[1], b"%PDF-1.4 not a web page", ctype="application/pdf")
            if i == 3:
                body = page(TRUNCATED[0], 99)[:300]  # payload cut: shorter than its Content-Length
                response(w, TRUNCATED[0], TRUNCATED[1], body, length=5000)
        zipped = gzip.compress(page(GZIPPED[0], 42))
        response(w, GZIPPED[0], GZIPPED[1], zipped, extra=[("Content-Encoding", "gzip")])
        revisit = w.create_revisit_record(HTML[0][0], digest="sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                          refers_to_uri=HTML[0][0], refers_to_date="2024-05-01T08:00:00Z",
                                          http_headers=StatusAndHeaders("200 OK", [("Content-Type", "text/html")],
                                                                        protocol="HTTP/1.1"))
        w.write_record(revisit)
    return path


def q(root: Path, sql: str, params=None):
    from newsmill.warehouse.catalog import connect

    with contextlib.closing(connect(root)) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture(scope="module")
def warc(tmp_path_factory) -> Path:
    return write_warc(tmp_path_factory.mktemp("warc") / "sample.warc.gz")


@pytest.fixture(scope="module")
def imported(prefect_api, warc, tmp_path_factory):
    from newsmill.flows.import_warc import import_warc

    wh = tmp_path_factory.mktemp("import-wh")
    counts = import_warc(files=[str(warc)], warehouse=str(wh)).asdict()
    return {"wh": wh, "counts": counts, "warc": warc}


def test_import_articles_and_pages(imported):
    wh, counts = imported["wh"], imported["counts"]
    assert counts["articles_written"] == N_HTML, counts
    assert counts["pages_imported"] == N_HTML + 2
    assert counts["skipped"] == {"not_html": 1, "truncated": 1}
    rec = counts["records"]
    assert rec["skipped:request"] == len(HTML)
    assert rec["skipped:revisit"] == 1 and rec["skipped:warcinfo"] == 1
    assert rec["response:html"] == N_HTML

    arts = q(wh, "select url, domain, source, fetched_at, extractor_version, text from articles order by url")
    assert {a[0] for a in arts} == {u for u, _ in HTML} | {GZIPPED[0]}
    assert {a[2] for a in arts} == {"warc-import"}
    assert all(a[4] and len(a[5]) > 200 for a in arts)
    dates = {a[0]: a[3] for a in arts}
    assert dates[HTML[0][0]] == datetime(2024, 5, 1, 8, tzinfo=timezone.utc)  # WARC-Date, not import time

    pages = {r[0]: r for r in q(wh, "select url, kind, outcome, attempts, warc_file, warc_offset, source, status "
                                    "from pages")}
    assert len(pages) == N_HTML + 2
    assert pages[PDF[0]][1:3] == ("article", "not_html")
    assert pages[TRUNCATED[0]][1:3] == ("article", "truncated")
    assert pages[PDF[0]][4] is None
    for url, _ in [*HTML, GZIPPED]:
        kind, outcome, attempts, warc_file, offset = pages[url][1:6]
        assert (kind, outcome, attempts) == ("article", "ok", 0)
        assert warc_file.startswith("raw/") and offset is not None


def test_imported_records_are_copied_into_the_warehouse_archive(imported):
    from newsmill.tasks.archive import decode_record, read_record

    wh = imported["wh"]
    for url, wf, off in q(wh, "select url, warc_file, warc_offset from pages where outcome = 'ok'"):
        assert (wh / wf).is_file()
        rec = read_record(wh, wf, off)
        assert rec.url == url
        html, _ = decode_record(rec)
        assert "<article>" in html  # the gzip-encoded one is stored decoded and readable
    assert not list(wh.glob("raw/**/*.open"))  # archive files sealed at the end of the run


def test_gzip_members_are_copied_verbatim(imported):
    """A ``.warc.gz`` record with a gzip member of its own is archived as that member, byte for byte (same
    record, headers and digests; nothing decoded, digested or compressed again)."""
    wh, src = imported["wh"], imported["warc"].read_bytes()
    rows = q(wh, "select url, warc_file, warc_offset, warc_length from pages where outcome = 'ok'")
    assert len(rows) == N_HTML
    for url, wf, off, length in rows:
        copy = (wh / wf).read_bytes()[off:off + length]
        at = src.find(copy)
        assert at >= 0 and src[at:at + 2] == b"\x1f\x8b"  # the source's own member, whole
        record = gzip.decompress(copy)
        assert record.count(b"WARC/1.") == 1 and f"WARC-Target-URI: {url}".encode() in record
    gz = next(r for r in rows if r[0] == GZIPPED[0])
    assert b"Content-Encoding: gzip" in gzip.decompress((wh / gz[1]).read_bytes()[gz[2]:gz[2] + gz[3]])


def test_uncompressed_warc_records_are_archived_decoded(prefect_api, tmp_path):
    """An uncompressed ``.warc`` has no members to copy: each record is written anew, gzipped, with the
    body's Content-Encoding removed (and said so in its headers); reprocess reads it back."""
    from newsmill.flows.import_warc import import_warc
    from newsmill.flows.reprocess import reprocess
    from newsmill.tasks.archive import decode_record, read_record

    plain = write_warc(tmp_path / "sample.warc", compress=False)
    wh = tmp_path / "wh"
    counts = import_warc(files=[str(plain)], warehouse=str(wh)).asdict()
    assert counts["articles_written"] == N_HTML
    for url, wf, off, length in q(wh, "select url, warc_file, warc_offset, warc_length from pages "
                                      "where outcome = 'ok'"):
        member = (wh / wf).read_bytes()[off:off + length]
        assert member[:2] == b"\x1f\x8b" and member not in plain.read_bytes()
        rec = read_record(wh, wf, off)
        assert rec.url == url and "<article>" in decode_record(rec)[0]
        if url == GZIPPED[0]:
            assert b"X-Newsmill-Original-Content-Encoding: gzip" in gzip.decompress(member)
    again = reprocess(warehouse=str(wh), source="warc-import").asdict()
    assert again["outcomes"] == {"ok": N_HTML} and again["articles_written"] == 0


def test_second_import_adds_no_duplicates(imported, prefect_api):
    from newsmill.flows.import_warc import import_warc

    wh = imported["wh"]
    before = {t: q(wh, f"select count(*) from {t}")[0][0] for t in ("article_versions", "pages", "boilerplate_all")}
    raw_before = sorted(p.name for p in wh.glob("raw/**/*.warc.gz"))
    again = import_warc(files=[str(imported["warc"])], warehouse=str(wh)).asdict()
    assert again["articles_written"] == 0
    assert again["pages_imported"] == 0
    assert again["batches_skipped_resume"] >= 1
    assert again["records_already_imported"] == N_HTML + 2
    after = {t: q(wh, f"select count(*) from {t}")[0][0] for t in before}
    assert after == before
    assert sorted(p.name for p in wh.glob("raw/**/*.warc.gz")) == raw_before
    runs = q(wh, "select flow, finished_at from runs where flow = 'import_warc'")
    assert len(runs) == 2 and all(r[1] is not None for r in runs)


def test_domain_filter(prefect_api, warc, tmp_path):
    from newsmill.flows.import_warc import import_warc

    counts = import_warc(files=[str(warc)], warehouse=str(tmp_path), domains=["beta.example"]).asdict()
    urls = {r[0] for r in q(tmp_path, "select url from articles")}
    assert urls == {HTML[3][0], HTML[4][0], GZIPPED[0]}
    assert counts["skipped"] == {"truncated": 1}  # the PDF is on alpha
    assert counts["records"]["filtered:domain"] == 4  # 3 alpha pages + the PDF


def test_date_filter(prefect_api, warc, tmp_path):
    from newsmill.flows.import_warc import import_warc

    counts = import_warc(files=[str(warc)], warehouse=str(tmp_path), since="2024-05-02", until="2024-05-03").asdict()
    urls = {r[0] for r in q(tmp_path, "select url from articles")}
    assert urls == {HTML[2][0], HTML[4][0], GZIPPED[0]}  # --until is inclusive of the day
    assert counts["records"]["filtered:date"] == 5
    counts = import_warc(files=[str(warc)], warehouse=str(tmp_path / "w2"), until="2024-05-01", source="cc").asdict()
    assert {r[0] for r in q(tmp_path / "w2", "select url from articles")} == {HTML[0][0], HTML[1][0], HTML[3][0]}
    assert {r[0] for r in q(tmp_path / "w2", "select distinct source from pages")} == {"cc"}


def test_torn_file_is_not_fatal(prefect_api, warc, tmp_path):
    from newsmill.flows.import_warc import import_warc

    data = warc.read_bytes()
    torn = tmp_path / "torn.warc.gz"
    torn.write_bytes(data[: len(data) - 700])  # cut inside the last records' gzip members
    counts = import_warc(files=[str(torn)], warehouse=str(tmp_path / "wh")).asdict()
    assert counts["articles_written"] >= len(HTML) - 1
    # the cut gzip member is either a truncated record (a pages row) or the torn end of the file (counted)
    assert counts["skipped"].get("truncated", 0) + counts["records"].get("truncated_file", 0) >= 1


def test_reprocess_works_on_imported_pages(imported, prefect_api):
    from newsmill.flows.reprocess import reprocess

    counts = reprocess(warehouse=str(imported["wh"]), source="warc-import").asdict()
    assert counts["pages_reprocessed"] == N_HTML
    assert counts["outcomes"] == {"ok": N_HTML}
    assert counts["articles_written"] == 0  # same rules, same extractor: nothing new


def test_cli_import_warc(prefect_api, warc, tmp_path):
    exe = Path(sys.executable).parent / "newsmill"
    p = subprocess.run([str(exe), "import-warc", str(warc), "--warehouse", str(tmp_path), "--domain",
                        "alpha.example", "--source", "cli-import", "--quiet"],
                       capture_output=True, text=True, env=prefect_api["env"], timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "import finished" in p.stdout and "not_html 1" in p.stdout
    rows = q(tmp_path, "select count(*), min(source) from articles")
    assert rows == [(3, "cli-import")]
    bad = subprocess.run([str(exe), "import-warc", str(tmp_path / "missing.warc.gz"), "--warehouse", str(tmp_path)],
                         capture_output=True, text=True, env=prefect_api["env"], timeout=120)
    assert bad.returncode != 0 and "no such file" in bad.stderr and "Traceback" not in bad.stderr
