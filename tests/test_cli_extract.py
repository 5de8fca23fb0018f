"""`newsmill extract`: HTML files and WARC archives → JSON lines with the articles columns, no network."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from newsmill.cli.extract import ARTICLE_JSON_FIELDS

FIXTURES = Path(__file__).parent / "fixtures" / "pages"
CONTRACT = ("url, canonical_url, domain, site_name, title, authors, published_at, modified_at, language, "
            "description, text, copyright_holder, copyright_year, copyright_notice, license_url, "
            "content_hash, fetched_at, run_id").split(", ")


def _run(cmd, *args):
    return subprocess.run([cmd, "extract", *args], capture_output=True, text=True, timeout=120)


def test_html_file_with_url(newsmill_cmd):
    spec = json.loads((FIXTURES / "public_radio_npr_story.json").read_text())
    p = _run(newsmill_cmd, str(FIXTURES / "public_radio_npr_story.html"), "--url", spec["url"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1
    art = json.loads(lines[0])
    assert set(CONTRACT) <= set(art) and set(art) == set(ARTICLE_JSON_FIELDS)
    assert art["url"] == spec["url"]
    assert art["copyright_holder"] == spec["fields"]["copyright_holder"]
    assert art["copyright_year"] == spec["fields"]["copyright_year"]
    assert isinstance(art["authors"], list)
    for s in spec["must_not_contain"]:
        assert s not in art["text"]


def _warc(path: Path, records: list[tuple[str, str, bytes]]) -> None:
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        for url, ctype, body in records:
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))],
                                    protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))


def test_warc_file_every_html_response(tmp_path, newsmill_cmd):
    pages = []
    for name in ("local_daily_ap_wire", "de_paper_starkregen"):
        spec = json.loads((FIXTURES / f"{name}.json").read_text())
        pages.append((spec["url"], "text/html; charset=utf-8", (FIXTURES / f"{name}.html").read_bytes()))
    pages.append(("https://example.org/report.pdf", "application/pdf", b"%PDF-1.4 not html"))
    warc = tmp_path / "crawl.warc.gz"
    _warc(warc, pages)
    p = _run(newsmill_cmd, str(warc))
    assert p.returncode == 0, p.stderr
    arts = [json.loads(line) for line in p.stdout.strip().splitlines()]
    assert [a["url"] for a in arts] == [pages[0][0], pages[1][0]]
    assert {a["language"] for a in arts} == {"en", "de"}
    assert "report.pdf" in p.stderr  # the skipped record is reported, not fatal


def test_plain_warc_and_errors(tmp_path, newsmill_cmd):
    spec = json.loads((FIXTURES / "fr_paper_meta_only.json").read_text())
    gz = tmp_path / "a.warc.gz"
    _warc(gz, [(spec["url"], "text/html", (FIXTURES / "fr_paper_meta_only.html").read_bytes())])
    plain = tmp_path / "a.warc"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    p = _run(newsmill_cmd, str(plain))
    assert p.returncode == 0 and json.loads(p.stdout)["language"] == "fr"

    missing = _run(newsmill_cmd, str(tmp_path / "nope.html"))
    assert missing.returncode != 0 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    two = _run(newsmill_cmd, str(FIXTURES / "es_paper_local.html"), str(FIXTURES / "fr_paper_meta_only.html"),
               "--url", "https://x.org/a")
    assert two.returncode != 0 and "--url" in two.stderr
