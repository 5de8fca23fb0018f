"""Issue 15 item 3: hostile WARC files (generated in ``tests/hostile.py``): a response record without
``WARC-Target-URI`` in the middle and a last gzip member cut inside its HTML. Every good record before
and after the bad one is kept, the bad one is counted and reported, the torn end becomes a ``truncated``
row — through the reader, ``newsmill import-warc`` (real Prefect API, real warehouse) and ``newsmill
extract``; ``read_record`` (reprocess) refuses a torn member instead of returning a cut body."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hostile import hostile_warc, warc_response  # noqa: E402


@pytest.fixture(params=["gzip", "plain"])
def hw(request, tmp_path):
    if request.param == "gzip":
        return hostile_warc(tmp_path / "hostile.warc.gz")
    return hostile_warc(tmp_path / "hostile.warc", gzip_members=False)


def test_reader_keeps_every_good_record_and_counts_the_bad_one(hw):
    from newsmill.flows.import_warc import WarcScanner
    from newsmill.tasks.archive import RawRecord, Skipped, iter_warc_records

    got = list(iter_warc_records(hw.path))
    assert [r.url for r in got if isinstance(r, RawRecord)] == hw.good
    for r in got:
        if isinstance(r, RawRecord):
            assert hw.markers[r.url].encode() in r.body
    skipped = [(r.url, r.reason) for r in got if isinstance(r, Skipped)]
    assert skipped == [(None, "unreadable"), (hw.torn_url, "truncated")]
    assert "WARC-Target-URI" in next(r.detail for r in got if isinstance(r, Skipped) and r.url is None)

    scanner = WarcScanner(hw.path)
    entries = list(scanner)
    assert [e.url for e in entries if e.record is not None] == hw.good
    assert [(e.url, e.reason) for e in entries if e.record is None] == [(hw.torn_url, "truncated")]
    assert len({e.offset for e in entries}) == len(entries)  # batch ids need distinct offsets
    assert scanner.stats["skipped:unreadable:no_target_uri"] == 1
    assert scanner.stats["truncated_file"] == 1
    assert scanner.stats["response:html"] == len(hw.good)
    assert scanner.position == scanner.size


def test_cut_in_the_gzip_trailer_is_a_truncated_record(tmp_path):
    """A member cut in its last bytes (CRC/size trailer) still inflates to a whole-looking body; it is
    still a torn record, not an ``ok`` page."""
    from newsmill.tasks.archive import RawRecord, Skipped, iter_warc_records

    a = warc_response("https://news.courier.example/a.html", b"<html><body><p>first</p></body></html>")
    b = warc_response("https://news.courier.example/b.html", b"<html><body><p>second</p></body></html>")
    p = tmp_path / "trailer.warc.gz"
    p.write_bytes(a + b[:-3])
    got = list(iter_warc_records(p))
    assert isinstance(got[0], RawRecord)
    assert isinstance(got[1], Skipped) and (got[1].url, got[1].reason) == ("https://news.courier.example/b.html",
                                                                        "truncated")


def test_corrupt_gzip_member_in_the_middle_is_skipped_and_reading_goes_on(tmp_path):
    from newsmill.tasks.archive import RawRecord, Skipped, iter_warc_records

    urls = [f"https://news.courier.example/{i}.html" for i in range(3)]
    members = [warc_response(u, f"<html><body><p>story {i} {'words ' * 200}</p></body></html>".encode())
               for i, u in enumerate(urls)]
    bad = bytearray(members[1])
    for i in range(30, len(bad) - 20, 7):  # scribble over the deflate data, keep the gzip header
        bad[i] ^= 0x5A
    p = tmp_path / "corrupt.warc.gz"
    p.write_bytes(members[0] + bytes(bad) + members[2])
    got = list(iter_warc_records(p))
    assert [r.url for r in got if isinstance(r, RawRecord)] == [urls[0], urls[2]]
    assert all(r.reason in ("unreadable", "truncated") for r in got if isinstance(r, Skipped))
    assert any(isinstance(r, Skipped) for r in got)


def test_read_record_refuses_a_torn_member(tmp_path):
    from newsmill.tasks.archive import read_record

    a = warc_response("https://news.courier.example/a.html", b"<html><body><p>first</p></body></html>")
    b = warc_response("https://news.courier.example/b.html", b"<html><body><p>second</p></body></html>")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "f.warc.gz").write_bytes(a + b[:-3])
    assert read_record(tmp_path, "raw/f.warc.gz", 0).body.endswith(b"first</p></body></html>")
    with pytest.raises(ValueError, match="torn|truncated"):
        read_record(tmp_path, "raw/f.warc.gz", len(a))


def _q(root: Path, sql: str):
    from newsmill.warehouse.catalog import connect

    with contextlib.closing(connect(root)) as con:
        return con.execute(sql).fetchall()


def test_import_warc_cli_keeps_good_records_counts_the_bad_one_and_rows_the_torn_end(prefect_api, tmp_path,
                                                                                      newsmill_cmd):
    hw = hostile_warc(tmp_path / "hostile.warc.gz")
    wh = tmp_path / "wh"
    p = subprocess.run([newsmill_cmd, "import-warc", str(hw.path), "--warehouse", str(wh), "--quiet"],
                       capture_output=True, text=True, env=prefect_api["env"], timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    assert "truncated 1" in p.stdout and "skipped:unreadable:no_target_uri 1" in p.stdout, p.stdout
    rows = dict(_q(wh, "select url, outcome from pages"))
    assert rows == {**{u: "ok" for u in hw.good}, hw.torn_url: "truncated"}
    assert {r[0] for r in _q(wh, "select url from articles")} == set(hw.good)
    counts = json.loads(_q(wh, "select counts from runs where finished_at is not null")[0][0])
    assert counts["records"]["skipped:unreadable:no_target_uri"] == 1
    assert counts["records"]["truncated_file"] == 1


def test_extract_cli_on_a_hostile_warc(tmp_path, newsmill_cmd):
    hw = hostile_warc(tmp_path / "hostile.warc.gz")
    p = subprocess.run([newsmill_cmd, "extract", str(hw.path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    assert [json.loads(line)["url"] for line in p.stdout.splitlines()] == hw.good
    assert "WARC-Target-URI" in p.stderr
    assert f"skipped {hw.torn_url}: truncated" in p.stderr
