"""Issue 15 item 2: a takedown removes the raw response, and a run seals what it archived.

Real parts: a loopback site (``tests/faultserver.py``) with article pages carrying unique markers, the
``newsmill ingest`` CLI against the session's real Prefect API, ``newsmill delete --url``, and the raw
files grepped after decompression (every file under ``raw/``, whatever its name).

1. A finished ingest leaves no ``.open`` file; ``delete --url`` removes the page's raw bytes from every
   file and keeps the other records readable at their (rewritten) offsets.
2. An ingest killed with SIGKILL mid-batch leaves ``.open`` files, with records of committed batches and
   records of a batch that never committed (orphans, no pages row). ``delete --url`` of such an orphan
   and of a committed page removes both from disk; the next run leaves no ``.open`` file, and every
   ``pages.warc_file/warc_offset`` reads back with its own marker.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from email.utils import format_datetime
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from faultserver import FaultServer, respond, stall  # noqa: E402
from hostile import article_html, gunzip_members  # noqa: E402

pytestmark = pytest.mark.slow


def _marker(i: int) -> str:
    return f"zqtakedown{i:02d}q"


def _site(srv: FaultServer, n: int, stalled: set[int] = frozenset(), stall_s: float = 90) -> list[str]:
    urls = [srv.url(f"/a/{i:02d}.html") for i in range(n)]
    now = format_datetime(datetime.now(timezone.utc), usegmt=True)
    items = "".join(f"<item><title>Story {i}</title><link>{u}</link><pubDate>{now}</pubDate></item>"
                    for i, u in enumerate(urls))
    srv.route("/robots.txt", respond("User-agent: *\nAllow: /\n", ctype="text/plain"))
    srv.route("/feed.xml", respond(f'<?xml version="1.0"?><rss version="2.0"><channel><title>Courier</title>'
                                   f"<link>{srv.base}/</link><description>d</description>{items}</channel></rss>",
                                   ctype="application/rss+xml"))
    for i, u in enumerate(urls):
        page = respond(article_html(u, _marker(i), i))
        srv.route(f"/a/{i:02d}.html", stall(stall_s) if i in stalled else page)
    return urls


def _config(path: Path, base: str, batch_size: int) -> Path:
    path.write_text(f"""
[fetch]
allow_networks = ["127.0.0.0/8"]
per_host_delay_s = 0
retries = 0
timeout_s = 120
concurrency = 8
per_host_concurrency = 8

[extract]
workers = 1
batch_size = {batch_size}

[runner]
task_runner = "threads"
max_workers = 4

[[sources]]
name = "courier"
feeds = ["{base}/feed.xml"]
""", encoding="utf-8")
    return path


def _raw_files(wh: Path) -> list[Path]:
    return sorted(p for p in (wh / "raw").rglob("*") if p.is_file())


def _raw_text(wh: Path) -> bytes:
    """Every byte under raw/, gzip members decompressed (a torn tail tolerated), plus the bytes as stored."""
    out = []
    for p in _raw_files(wh):
        data = p.read_bytes()
        out += [data, gunzip_members(data)]
    return b"\n".join(out)


def _ingest(newsmill_cmd, prefect_api, cfg, wh, **popen):
    return [newsmill_cmd, "ingest", "--config", str(cfg), "--warehouse", str(wh), "--quiet"], dict(
        env=prefect_api["env"], **popen)


def _delete(newsmill_cmd, wh, url) -> dict:
    p = subprocess.run([newsmill_cmd, "delete", "--url", url, "--warehouse", str(wh)], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)


def _q(wh: Path, sql: str):
    from newsmill.warehouse.catalog import connect

    with contextlib.closing(connect(wh)) as con:
        return con.execute(sql).fetchall()


def _assert_refs_readable(wh: Path, urls: list[str]) -> int:
    from newsmill.tasks.archive import read_record

    rows = _q(wh, "select url, warc_file, warc_offset from pages where kind = 'article' and warc_file is not null")
    for url, wf, off in rows:
        rec = read_record(wh, wf, off)
        assert rec.url == url
        assert _marker(urls.index(url)).encode() in rec.body
    return len(rows)


def test_finished_run_seals_its_archive_and_delete_removes_the_raw_response(prefect_api, tmp_path, newsmill_cmd):
    wh = tmp_path / "wh"
    with FaultServer("127.0.0.2") as srv:
        urls = _site(srv, 6)
        cfg = _config(tmp_path / "c.toml", srv.base, batch_size=3)
        cmd, kw = _ingest(newsmill_cmd, prefect_api, cfg, wh)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert p.returncode == 0, p.stderr[-3000:]
    files = _raw_files(wh)
    assert files and not [f.name for f in files if not f.name.endswith(".warc.gz")]  # all sealed
    raw = _raw_text(wh)
    assert all(_marker(i).encode() in raw for i in range(6))

    report = _delete(newsmill_cmd, wh, urls[1])
    assert report["warc_records"] == 1, report
    raw = _raw_text(wh)
    assert _marker(1).encode() not in raw
    assert all(_marker(i).encode() in raw for i in (0, 2, 3, 4, 5))
    assert not [f for f in _raw_files(wh) if not f.name.endswith(".warc.gz")]
    assert _assert_refs_readable(wh, urls) == 5


def test_killed_run_open_files_are_sealed_and_searched_by_delete(prefect_api, tmp_path, newsmill_cmd):
    wh = tmp_path / "wh"
    n, size = 12, 4  # batches (sorted URLs): 00-03, 04-07, 08-11; 10 and 11 stall
    with FaultServer("127.0.0.2") as srv:
        port = srv.port
        urls = _site(srv, n, stalled={10, 11})
        cfg = _config(tmp_path / "c.toml", srv.base, batch_size=size)
        cmd, kw = _ingest(newsmill_cmd, prefect_api, cfg, wh)
        log = open(tmp_path / "ingest.log", "wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kw)
        try:
            deadline = time.monotonic() + 180
            while True:
                assert proc.poll() is None, (tmp_path / "ingest.log").read_text()[-3000:]
                done = 0
                if (wh / "pages").exists():
                    with contextlib.suppress(Exception):
                        done = _q(wh, "select count(*) from pages where kind = 'article'")[0][0]
                if done >= 8 and srv.count("/a/10.html") and srv.count("/a/11.html") \
                        and _marker(9).encode() in _raw_text(wh) and _marker(8).encode() in _raw_text(wh):
                    break
                assert time.monotonic() < deadline, "two committed batches and a stalled third"
                time.sleep(0.3)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            log.close()
    assert [f for f in _raw_files(wh) if f.name.endswith(".open")]  # the crash left its open files
    assert not _q(wh, f"select * from pages where url = '{urls[9]}'")  # 09: archived, never committed

    # takedown of an orphan (no pages row) and of a committed page: both gone from every raw file
    report = _delete(newsmill_cmd, wh, urls[9])
    assert report["warc_records"] == 1, report
    report = _delete(newsmill_cmd, wh, urls[2])
    assert report["warc_records"] == 1 and report["rows"]["pages"] == 1, report
    raw = _raw_text(wh)
    assert _marker(9).encode() not in raw and _marker(2).encode() not in raw
    assert _marker(8).encode() in raw and _marker(0).encode() in raw
    assert not [f.name for f in _raw_files(wh) if not f.name.endswith(".warc.gz")]  # sealed by delete
    assert _assert_refs_readable(wh, urls) == 7  # the committed pages but 02, at their offsets

    # the next run (pages answer now) archives the rest and leaves nothing open
    with FaultServer("127.0.0.2", port) as srv:  # same address: same URLs
        urls2 = _site(srv, n)
        assert urls2 == urls
        cmd, kw = _ingest(newsmill_cmd, prefect_api, cfg, wh)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert p.returncode == 0, p.stderr[-3000:]
    assert not [f.name for f in _raw_files(wh) if not f.name.endswith(".warc.gz")]
    assert _assert_refs_readable(wh, urls) >= n
