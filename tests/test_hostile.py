"""The hostile-input corpus of ``tests/hostile.py`` through newsmill's real entry points.

Charset labels (issue 15 item 1): ``decode_body`` directly, the fetcher against a loopback server,
``newsmill extract`` and ``newsmill import-warc`` on one WARC mixing good and hostile records (the whole
file imports; the good records are written), and a real ingest from a loopback HTTP server."""

from __future__ import annotations

import contextlib
import encodings.aliases
import json
import subprocess
import sys
from pathlib import Path

import pytest
import webencodings

sys.path.insert(0, str(Path(__file__).parent))
from faultserver import FaultServer, respond  # noqa: E402
from hostile import charset_cases, charset_warc, good_pages  # noqa: E402

from newsmill.tasks.fetch import decode_body  # noqa: E402

CASES = charset_cases()


def _check_text(case, text: str) -> None:
    for s in case.expect:
        assert s in text, f"{case.name}: {s!r} missing"
    for s in case.forbid:
        assert s not in text, f"{case.name}: {s!r} present (the hostile label was obeyed)"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_decode_body(case):
    text, enc = decode_body(case.body, case.content_type)
    _check_text(case, text)
    if case.encoding:
        assert enc == case.encoding


PY_CODECS = sorted(set(encodings.aliases.aliases.values()) | {"undefined", "punycode", "idna", "unicode_escape",
                                                               "raw_unicode_escape", "utf_7", "rot_13", "hex_codec",
                                                               "base64_codec", "zlib_codec", "uu_codec"})
BODIES = [
    b"<!doctype html><html><head><title>Harbour</title></head><body><p>Ferry news.</p></body></html>",
    "<html><body><p>Caf\u00e9 \u201cnews\u201d</p></body></html>".encode("utf-8"),
    b"<html><body><p>caf\xe9 \x93news\x94 \x81\x8d</p></body></html>",
    bytes(range(256)) * 3,
]


@pytest.mark.parametrize("body", BODIES, ids=["ascii", "utf8", "cp1252", "binary"])
def test_no_label_makes_decoding_raise_and_only_web_labels_count(body):
    """Every Python codec name, in the header and in ``<meta>``: decoding never raises, and a name that is
    not a WHATWG encoding label changes nothing (the result is the one without any label)."""
    plain = decode_body(body, "text/html")
    empty_meta = '<meta charset="">'
    unlabelled_text, unlabelled_enc = decode_body(empty_meta.encode() + body, "text/html")
    for name in PY_CODECS:
        for label in (name, name.replace("_", "-")):
            meta = f'<meta charset="{label}">'
            via_header = decode_body(body, f"text/html; charset={label}")
            via_meta = decode_body(meta.encode() + body, "text/html")
            assert isinstance(via_header[0], str) and isinstance(via_meta[0], str)
            if webencodings.lookup(label) is None:
                assert via_header == plain, label
                assert via_meta == (meta + unlabelled_text[len(empty_meta):], unlabelled_enc), label


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_fetcher_over_loopback(case):
    from newsmill.tasks.config import FetchSettings
    from newsmill.tasks.fetch import Fetcher

    with FaultServer("127.0.0.2") as srv:
        url = srv.route(case.path, respond(case.body, ctype=case.content_type))
        settings = FetchSettings(user_agent="newsmill-test/1.0", allow_networks=("127.0.0.2/32",),
                                 per_host_delay_s=0.0, retries=0, timeout_s=5.0)
        with Fetcher(settings, run_id="hostile") as f:
            r = f.fetch(url, kind="article")
    assert (r.log.outcome, r.log.error) == ("ok", None)
    _check_text(case, r.html)


def _articles_by_url(lines: list[dict]) -> dict[str, dict]:
    return {a["url"]: a for a in lines}


def test_extract_cli_reads_the_whole_warc(tmp_path, newsmill_cmd):
    warc, cases = charset_warc(tmp_path / "charsets.warc.gz")
    p = subprocess.run([newsmill_cmd, "extract", str(warc)], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    arts = _articles_by_url([json.loads(line) for line in p.stdout.splitlines()])
    assert sorted(arts) == sorted("https://www.hostile.example" + c.path for c in cases)
    for c in cases:
        _check_text(c, arts["https://www.hostile.example" + c.path]["text"])


def _q(root: Path, sql: str):
    from newsmill.warehouse.catalog import connect

    with contextlib.closing(connect(root)) as con:
        return con.execute(sql).fetchall()


def _check_warehouse(wh: Path, base: str, cases) -> None:
    pages = dict(_q(wh, "select url, outcome from pages where kind = 'article'"))
    assert pages == {base + c.path: "ok" for c in cases}
    texts = dict(_q(wh, "select url, text from articles"))
    assert sorted(texts) == sorted(base + c.path for c in cases)
    for c in cases:
        _check_text(c, texts[base + c.path])


@pytest.mark.slow
def test_import_warc_cli_imports_the_whole_warc(prefect_api, tmp_path, newsmill_cmd):
    warc, cases = charset_warc(tmp_path / "charsets.warc.gz")
    wh = tmp_path / "wh"
    p = subprocess.run([newsmill_cmd, "import-warc", str(warc), "--warehouse", str(wh), "--quiet"],
                       capture_output=True, text=True, env=prefect_api["env"], timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    _check_warehouse(wh, "https://www.hostile.example", cases)


@pytest.mark.slow
def test_ingest_from_a_loopback_server(prefect_api, tmp_path):
    from newsmill.flows.ingest import ingest

    cases = [good_pages(1)[0], *CASES]
    wh = tmp_path / "wh"
    with FaultServer("127.0.0.2") as srv:
        for c in cases:
            srv.route(c.path, respond(c.body, ctype=c.content_type))
        urls = ", ".join(f'"{srv.url(c.path)}"' for c in cases)
        cfg = tmp_path / "site.toml"
        cfg.write_text(f"""
[fetch]
allow_networks = ["127.0.0.2/32"]
per_host_delay_s = 0.0
retries = 0
timeout_s = 10

[[sources]]
name = "hostile"
urls = [{urls}]
""", encoding="utf-8")
        ingest(config=str(cfg), warehouse=str(wh))
        base = srv.base
    _check_warehouse(wh, base, cases)
