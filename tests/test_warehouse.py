"""Warehouse: real DuckDB over real Parquet (writes, dedupe, lock, crash safety, compaction, takedown)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from newsmill.tasks.errors import WarehouseLocked
from newsmill.tasks.records import Article, PageLogEntry, Removal, RunRecord
from newsmill.tasks.urls import article_id
from newsmill.warehouse.catalog import VIEW_NAMES, connect, views_sql
from newsmill.warehouse.compact import compact, delete_url
from newsmill.warehouse.schema import SCHEMA_VERSION, SCHEMAS
from newsmill.warehouse.files import sanitize
from newsmill.warehouse.store import Warehouse

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def art(i: int, text: str = "body", ev: str = "1", fetched: datetime = T0, **kw) -> Article:
    url = f"https://example.com/news/{i}"
    return Article(
        url=url, canonical_url=url, domain="example.com", site_name="Example", title=f"Title {i}",
        authors=("Ann", "Bob"), published_at=fetched, modified_at=None, language="en", description=None,
        text=f"{text} {i}", copyright_holder="Example Inc", copyright_year=2024, copyright_notice=None,
        license_url=None, content_hash=f"h-{text}-{i}", fetched_at=fetched, tags=("a",),
        extractor_version=ev, source="ex", **kw,
    )


def page(i: int, fetched: datetime = T0, run_id: str = "r1", **kw) -> PageLogEntry:
    d = dict(url=f"https://example.com/news/{i}", final_url=None, kind="article", status=200, outcome="ok",
             error=None, bytes=100, content_type="text/html", fetched_at=fetched, elapsed_ms=3, run_id=run_id,
             source="ex", etag=f'"e{i}"', last_modified="Wed, 01 May 2024 12:00:00 GMT")
    d.update(kw)
    return PageLogEntry(**d)


def count(root, view: str) -> int:
    con = connect(root)
    try:
        return con.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
    finally:
        con.close()


def all_views_query(root) -> None:
    con = connect(root)
    try:
        for v in VIEW_NAMES:
            con.execute(f"SELECT * FROM {v}").fetchall()
    finally:
        con.close()


def parquet_files(root: Path) -> list[Path]:
    return sorted((root / "_data").rglob("*.parquet"))


# ---------------------------------------------------------------------------------------------------


def test_empty_warehouse_has_typed_views(tmp_path):
    con = connect(tmp_path)
    for v in VIEW_NAMES:
        assert con.execute(f"SELECT count(*) FROM {v}").fetchone()[0] == 0
    cols = dict((r[0], r[1]) for r in con.execute("DESCRIBE articles").fetchall())
    assert cols["authors"] == "VARCHAR[]" and cols["copyright_year"] == "INTEGER"
    assert cols["processed_at"] == "TIMESTAMP WITH TIME ZONE" and cols["paywalled"] == "BOOLEAN"


def test_write_read_and_idempotent_reruns(tmp_path):
    wh = Warehouse(tmp_path)
    assert not wh.has_pages()
    with wh.writer("r1") as w:
        s1 = w.commit_batch("b1", [page(1), page(2)], [art(1), art(2)],
                            [Removal("https://example.com/news/1", "ad", "ad.label", "Advertisement")],
                            [("example.com", "blk1", article_id("https://example.com/news/1"), "h-body-1")])
        assert (s1.new_versions, s1.duplicate_versions, s1.pages, s1.removals, s1.blocks) == (2, 0, 2, 1, 1)
        assert wh.has_pages()
        s2 = w.commit_batch("b1-again", [], [art(1), art(2)],
                            [Removal("https://example.com/news/1", "ad", "ad.label", "Advertisement")],
                            [("example.com", "blk1", article_id("https://example.com/news/1"), "h-body-1")])
        assert (s2.new_versions, s2.duplicate_versions, s2.removals, s2.blocks) == (0, 2, 0, 0)
        w.write_run(RunRecord("r1", "ingest", T0, None, "{}", "{}"))
        w.write_run(RunRecord("r1", "ingest", T0, T0 + timedelta(minutes=5), '{"x": 1}', '{"ok": 2}'))
    # same article content in a new run adds nothing
    with wh.writer("r2") as w:
        s3 = w.commit_batch("b1", [page(1, run_id="r2")], [art(1, fetched=T0 + timedelta(days=1))],
                            [Removal("https://example.com/news/1", "ad", "ad.label", "Advertisement")], {})
        assert s3.removals == 0
        assert (s3.new_versions, s3.duplicate_versions) == (0, 1)
    assert count(tmp_path, "article_versions") == 2
    assert count(tmp_path, "articles") == 2
    assert count(tmp_path, "boilerplate") == 1
    assert count(tmp_path, "blocks") == 1
    assert wh.done_batches("r1") == {"b1"} and wh.done_batches("r2") == {"b1"}
    con = connect(tmp_path)
    assert con.execute("SELECT finished_at IS NOT NULL, counts FROM runs").fetchall() == [(True, '{"ok": 2}')]
    assert con.execute("SELECT sum(articles) FROM daily_counts").fetchone()[0] == 2
    assert con.execute("SELECT copyright_holder, articles FROM copyright_by_holder").fetchall() == [("Example Inc", 2)]
    assert con.execute("SELECT authors FROM articles LIMIT 1").fetchone()[0] == ["Ann", "Bob"]
    # every file carries the schema version; _meta.json too
    for f in parquet_files(tmp_path):
        assert pq.ParquetFile(f).schema_arrow.metadata[b"newsmill.schema_version"] == str(SCHEMA_VERSION).encode()
    assert json.loads((tmp_path / "_meta.json").read_text())["schema_version"] == SCHEMA_VERSION


def test_new_version_and_reprocess_with_newer_extractor(tmp_path):
    wh = Warehouse(tmp_path)
    with wh.writer("r1") as w:
        w.commit_batch("b1", [page(1)], [art(1)], [Removal("https://example.com/news/1", "ad", "ad.x", "Buy")], {})
    with wh.writer("r2") as w:  # text changed -> new version
        assert w.commit_batch("b1", [], [art(1, text="changed")], [], {}).new_versions == 1
    con = connect(tmp_path)
    assert con.execute("SELECT text FROM articles").fetchall() == [("changed 1",)]
    with wh.writer("reprocess") as w:  # same text as before, newer extractor (metadata fixed)
        s = w.commit_batch("rp1", [], [art(1, text="changed", ev="2").with_context(title="Fixed title")],
                           [Removal("https://example.com/news/1", "donation", "donate.en", "Give!")], {})
        assert s.new_versions == 1
    con = connect(tmp_path)
    assert con.execute("SELECT title, extractor_version FROM articles").fetchall() == [("Fixed title", "2")]
    assert count(tmp_path, "article_versions") == 3
    # boilerplate shows only the latest extraction; history keeps both
    assert con.execute("SELECT kind FROM boilerplate").fetchall() == [("donation",)]
    assert count(tmp_path, "boilerplate_history") == 2
    # a later extraction that removes nothing hides the older removals
    with wh.writer("reprocess2") as w:
        w.commit_batch("rp2", [], [art(1, text="changed", ev="3")], [], {})
    assert count(tmp_path, "boilerplate") == 0


def test_conditional_state_reset_and_latest_pages(tmp_path):
    wh = Warehouse(tmp_path)
    with wh.writer("r1") as w:
        w.commit_batch("b1", [page(1), page(2, outcome="http_error", status=500, etag=None)], [], [], {})
        w.commit_batch("b2", [page(1, fetched=T0 + timedelta(hours=1), etag='"new"')], [], [], {})
    state = wh.conditional_state(["https://example.com/news/1", "https://example.com/news/2"])
    assert state == {"https://example.com/news/1": ('"new"', "Wed, 01 May 2024 12:00:00 GMT")}
    con = connect(tmp_path)
    assert con.execute("SELECT url FROM latest_pages WHERE outcome = 'ok'").fetchall() == [("https://example.com/news/1",)]
    assert con.execute("SELECT count(*), count(state_etag) FROM latest_pages").fetchone() == (2, 1)
    run_id = wh.reset_fetch_state(reason="test")
    assert wh.conditional_state(["https://example.com/news/1"]) == {}
    con = connect(tmp_path)
    assert con.execute("SELECT flow FROM runs WHERE run_id = ?", [run_id]).fetchone() == ("reset_fetch_state",)


def test_recurring_blocks_and_archived_pages(tmp_path):
    wh = Warehouse(tmp_path)
    arts = [art(i) for i in range(4)]
    blocks = {a.url: ["common", f"own{i}"] for i, a in enumerate(arts)}
    pages = [page(i, warc_file="raw/r1/a.warc.gz", warc_offset=100 * i, warc_length=99) for i in range(3)]
    pages.append(page(3, kind="feed"))
    with wh.writer("r1") as w:
        w.commit_batch("b1", pages, arts, [], blocks)
    assert wh.recurring_blocks(["example.com", "other.org"], 3) == {
        "example.com": frozenset({"common"}), "other.org": frozenset()}
    ap = wh.archived_pages()
    assert [a.warc_offset for a in ap] == [0, 100, 200] and ap[0].warc_file == "raw/r1/a.warc.gz"
    assert wh.archived_pages(domain="example.com", source="ex") == ap
    assert wh.archived_pages(domain="other.org") == []
    assert wh.archived_pages(since=T0 + timedelta(seconds=1)) == []


def test_path_traversal_ids_stay_inside(tmp_path):
    root = tmp_path / "wh"
    wh = Warehouse(root)
    with wh.writer("../../x") as w:
        w.commit_batch("../../../etc/y", [page(1, run_id="../../x", source="../../s")], [art(1)], [], {})
        w.write_run(RunRecord("../../x", "ingest", T0, None, "{}", "{}"))
    assert sanitize("../../x") == "_.._x" and "/" not in sanitize("a/b") and sanitize("") == "_"
    outside = [p for p in tmp_path.rglob("*") if not str(p).startswith(str(root))]
    assert outside == []
    for f in parquet_files(root):
        assert os.path.realpath(f).startswith(os.path.realpath(root))
    assert wh.done_batches("../../x") == {"../../../etc/y"}


def test_schema_evolution_old_file_missing_columns(tmp_path):
    wh = Warehouse(tmp_path)
    with wh.writer("r1") as w:
        w.commit_batch("b1", [page(1)], [art(1)], [], {})
    # an "older" file without tags/processed_at/extractor_version/batch_id, written in the layout
    old_cols = [f for f in SCHEMAS["article_versions"] if f.name not in ("tags", "processed_at", "extractor_version")]
    old = pa.table({f.name: pa.array([None], type=f.type) for f in old_cols})
    old = old.set_column(old.schema.get_field_index("article_id"), "article_id", pa.array(["old-id"]))
    old = old.set_column(old.schema.get_field_index("text"), "text", pa.array(["old text"]))
    gen = Path(os.path.realpath(tmp_path / "article_versions"))
    (gen / "date=2023-01-01").mkdir()
    pq.write_table(old, gen / "date=2023-01-01" / "part-old.parquet")
    con = connect(tmp_path)
    assert con.execute("SELECT count(*) FROM articles").fetchone()[0] == 2
    assert con.execute("SELECT tags, processed_at FROM articles WHERE article_id='old-id'").fetchone() == (None, None)
    all_views_query(tmp_path)
    # a warehouse whose files all lack a column still has it in the views
    root2 = tmp_path / "w2"
    gen2 = root2 / "_data" / "pages" / "g000001" / "date=2023-01-01"
    gen2.mkdir(parents=True)
    os.symlink("_data/pages/g000001", root2 / "pages")
    pcols = [f for f in SCHEMAS["pages"] if f.name not in ("batch_id", "etag", "warc_file")]
    pq.write_table(pa.table({f.name: pa.array([None], type=f.type) for f in pcols}), gen2 / "p.parquet")
    all_views_query(root2)
    assert Warehouse(root2).done_batches("r") == set()
    # writing into it works too (compaction conforms old files)
    with Warehouse(root2).writer("r") as w:
        w.commit_batch("b", [page(1, run_id="r")], [], [], {})
    compact(root2)
    assert count(root2, "pages") == 2 and Warehouse(root2).done_batches("r") == {"b"}


def test_lock_contention_and_wait(tmp_path):
    wh = Warehouse(tmp_path)
    with wh.writer("first"):
        with pytest.raises(WarehouseLocked) as ei:
            with Warehouse(tmp_path).writer("second"):
                pass
        msg = str(ei.value)
        assert f"pid {os.getpid()}" in msg and "first" in msg and "\n" not in msg
        t = time.monotonic()
        with pytest.raises(WarehouseLocked, match="after waiting"):
            with wh.writer("third", wait_s=0.3):
                pass
        assert time.monotonic() - t >= 0.3
        with pytest.raises(WarehouseLocked):
            compact(tmp_path)
    with wh.writer("second"):  # released
        pass


def test_lock_waits_for_release(tmp_path):
    wh = Warehouse(tmp_path)
    ready = threading.Event()

    def hold():
        with wh.writer("holder"):
            ready.set()
            time.sleep(0.5)

    th = threading.Thread(target=hold)
    th.start()
    ready.wait()
    with wh.writer("waiter", wait_s=10):
        pass
    th.join()


CRASH_WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    from tests.test_warehouse import art, page
    from newsmill.warehouse.store import Warehouse
    wh = Warehouse({root!r})
    with wh.writer("crashy") as w:
        print("locked", flush=True)
        done = wh.done_batches("crashy")
        for b in range(10_000):
            if f"b{{b}}" in done:
                continue
            ids = range(b * 20, b * 20 + 20)
            w.commit_batch(f"b{{b}}", [page(i, run_id="crashy") for i in ids], [art(i) for i in ids], [], {{}})
            if b >= {stop}:
                break
    print("finished", flush=True)
    """
)


def test_kill_9_during_writes_then_clean_reads_and_rerun(tmp_path):
    root = tmp_path / "wh"
    script = tmp_path / "writer.py"
    script.write_text(CRASH_WRITER.format(repo=str(REPO), root=str(root), stop=10_000))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, cwd=REPO)
    assert proc.stdout.readline().strip() == b"locked"
    deadline = time.monotonic() + 60
    while len(list((root / "_data" / "pages").rglob("*.parquet"))) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.137)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # readers: every view works, no torn files, every committed batch is complete
    for f in parquet_files(root):
        pq.ParquetFile(f).read()
    all_views_query(root)
    wh = Warehouse(root)
    done = wh.done_batches("crashy")
    assert done
    con = connect(root)
    stored = {r[0] for r in con.execute("SELECT DISTINCT url FROM articles").fetchall()}
    for b in done:
        n = int(b[1:])
        assert {f"https://example.com/news/{i}" for i in range(n * 20, n * 20 + 20)} <= stored
    assert con.execute("SELECT count(*) = count(DISTINCT url) FROM pages").fetchone()[0]
    # rerun: lock is free (flock died with the process), staging is cleaned, no duplicates
    last = max(int(b[1:]) for b in done)
    script.write_text(CRASH_WRITER.format(repo=str(REPO), root=str(root), stop=last + 2))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert b"finished" in out.stdout
    assert not any((root / "_staging").glob("*.tmp"))
    con = connect(root)
    n_versions, n_distinct = con.execute("SELECT count(*), count(DISTINCT article_id) FROM article_versions").fetchone()
    assert n_versions == n_distinct == (last + 3) * 20
    assert con.execute("SELECT count(*) = count(DISTINCT url) FROM pages").fetchone()[0]


def test_staging_leftovers_cleaned_by_next_writer(tmp_path):
    wh = Warehouse(tmp_path)
    with wh.writer("r1"):
        pass
    junk = tmp_path / "_staging" / "part-x.parquet.abcd.tmp"
    junk.write_bytes(b"PAR1 torn")
    all_views_query(tmp_path)  # readers never look at staging
    with wh.writer("r2"):
        assert not junk.exists()


def _reader_loop(root, stop: threading.Event, check, errors: list, seen: list):
    while not stop.is_set():
        try:
            con = connect(root)
            try:
                # pages first: a batch's pages are committed after its articles
                p = con.execute("SELECT count(*) FROM pages").fetchone()[0]
                v = con.execute("SELECT count(*) FROM article_versions").fetchone()[0]
            finally:
                con.close()
            seen.append((v, p))
            msg = check(v, p)
            if msg:
                errors.append(msg)
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))


def _reader_catches_up(seen: list, n: int, timeout: float = 10.0) -> None:
    """Wait until the reader has taken a sample after the writer's last step (so reads interleave with the
    writes however busy the machine is: a timing-only interleaving left the reader 3 samples on a loaded
    machine)."""
    end = time.monotonic() + timeout
    while len(seen) <= n and time.monotonic() < end:
        time.sleep(0.005)


def test_concurrent_reader_during_writes_and_compaction(tmp_path):
    wh = Warehouse(tmp_path)
    with wh.writer("r0") as w:
        for b in range(30):
            ids = range(b * 10, b * 10 + 10)
            w.commit_batch(f"b{b}", [page(i, run_id="r0") for i in ids], [art(i) for i in ids], [], {})
    truth = (300, 300)

    # during writes: pages lag articles, never a partial batch, never duplicates
    stop, errors, seen = threading.Event(), [], []

    def check_write(v, p):
        if p % 10 or v % 10 or p > v or v > 600:
            return f"inconsistent during write: versions={v} pages={p}"

    th = threading.Thread(target=_reader_loop, args=(tmp_path, stop, check_write, errors, seen))
    th.start()
    with wh.writer("r1") as w:
        for b in range(30, 60):
            ids = range(b * 10, b * 10 + 10)
            w.commit_batch(f"b{b}", [page(i, run_id="r1") for i in ids], [art(i) for i in ids], [], {})
            _reader_catches_up(seen, len(seen))
    stop.set()
    th.join()
    assert not errors, errors[:3]
    assert len(seen) > 3
    truth = (600, 600)

    # during compaction: counts always equal the truth (no duplicates, no gaps)
    stop, errors, seen = threading.Event(), [], []
    th = threading.Thread(target=_reader_loop, args=(
        tmp_path, stop, lambda v, p: None if (v, p) == truth else f"saw {v},{p} != {truth}", errors, seen))
    th.start()
    files_before = len(parquet_files(tmp_path))
    reports = [compact(tmp_path)]
    _reader_catches_up(seen, len(seen))
    # more rounds so the reader overlaps swaps
    for r in range(3):
        with wh.writer(f"x{r}") as w:
            w.commit_batch("dup", [], [art(i) for i in range(10)], [], {})  # all duplicates
        reports.append(compact(tmp_path, "pages"))
        _reader_catches_up(seen, len(seen))
    time.sleep(0.2)
    stop.set()
    th.join()
    assert not errors, errors[:3]
    assert len(seen) > 3
    assert reports[0]["article_versions"]["files_after"] == 1
    assert reports[0]["pages"]["rows"] == 600
    assert count(tmp_path, "articles") == 600
    cur = Path(os.path.realpath(tmp_path / "pages"))
    assert len(list(cur.glob("*/*.parquet"))) == 1
    assert len(list((tmp_path / "_data").rglob("*.parquet"))) >= files_before  # old gens kept for grace
    # grace over: superseded generations are collected
    compact(tmp_path, grace_s=0)
    assert {p.name for p in (tmp_path / "_data" / "pages").iterdir()} == {cur.name}


def _warc(path: Path, urls: list[str]) -> dict[str, tuple[int, int]]:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    loc = {}
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for u in urls:
            off = f.tell()
            h = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(u, "response", payload=io.BytesIO(f"<p>{u}</p>".encode()),
                                                http_headers=h))
            loc[u] = (off, f.tell() - off)
    return loc


def _read_warc_at(path: Path, offset: int) -> tuple[str, bytes]:
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as f:
        f.seek(offset)
        rec = next(iter(ArchiveIterator(f)))
        return rec.rec_headers.get_header("WARC-Target-URI"), rec.content_stream().read()


def test_delete_url_removes_rows_and_warc_records(tmp_path):
    wh = Warehouse(tmp_path)
    urls = [f"https://example.com/news/{i}" for i in range(4)]
    loc = _warc(tmp_path / "raw" / "r1" / "a.warc.gz", urls)
    pages = [page(i, warc_file="raw/r1/a.warc.gz", warc_offset=loc[u][0], warc_length=loc[u][1])
             for i, u in enumerate(urls)]
    with wh.writer("r1") as w:
        w.commit_batch("b1", pages, [art(i) for i in range(4)],
                       [Removal(urls[1], "ad", "ad.x", "Buy"), Removal(urls[2], "ad", "ad.x", "Buy")],
                       {u: ["blk"] for u in urls})
    with wh.writer("r2") as w:  # a second version of the victim in another file
        w.commit_batch("b2", [], [art(1, text="v2")], [], {})
    rep = delete_url(tmp_path, urls[1])
    assert rep["rows"] == {"article_versions": 2, "boilerplate": 2, "blocks": 1, "story_members": 0, "pages": 1}  # removal + "removed nothing" marker
    assert rep["warc_records"] == 1 and rep["warc_files"] == 1
    con = connect(tmp_path)
    for view, col in [("article_versions", "url"), ("boilerplate", "url"), ("pages", "url")]:
        assert con.execute(f"SELECT count(*) FROM {view} WHERE {col} = ?", [urls[1]]).fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM articles").fetchone()[0] == 3
    assert con.execute("SELECT count(*) FROM blocks").fetchone()[0] == 3
    # the old WARC is gone, the remaining records are readable at the updated offsets
    assert not (tmp_path / "raw" / "r1" / "a.warc.gz").exists()
    rows = con.execute("SELECT url, warc_file, warc_offset FROM pages ORDER BY url").fetchall()
    for u, wf, off in rows:
        assert wf != "raw/r1/a.warc.gz"
        got_uri, body = _read_warc_at(tmp_path / wf, off)
        assert got_uri == u and u.encode() in body
    from warcio.archiveiterator import ArchiveIterator

    with open(tmp_path / rows[0][1], "rb") as f:
        assert [r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(f)] == [
            urls[0], urls[2], urls[3]]
    # no superseded generation keeps the data on disk
    for t in ("article_versions", "pages", "blocks", "boilerplate"):
        assert len(list((tmp_path / "_data" / t).iterdir())) == 1
    found = []
    for f in parquet_files(tmp_path):
        tbl = pq.read_table(f)
        if "url" in tbl.column_names:
            found += [u for u in tbl.column("url").to_pylist() if u == urls[1]]
    assert found == []
    assert delete_url(tmp_path, urls[1])["rows"] == {"article_versions": 0, "boilerplate": 0, "blocks": 0, "story_members": 0, "pages": 0}


def test_views_sql_runs_in_a_fresh_duckdb(tmp_path):
    import duckdb

    wh = Warehouse(tmp_path)
    with wh.writer("r1") as w:
        w.commit_batch("b1", [page(1)], [art(1)], [], {})
    text = (tmp_path / "views.sql").read_text()
    assert text == views_sql(tmp_path) and str(tmp_path) in text
    con = duckdb.connect()
    for stmt in duckdb.extract_statements(text):
        con.execute(stmt.query)
    assert con.execute("SELECT count(*) FROM articles").fetchone()[0] == 1


def test_consolidate_leaves_one_file_per_partition_and_keeps_resume_state(tmp_path):
    wh = Warehouse(tmp_path)
    with wh.writer("r1") as w:
        for b in range(4):
            w.commit_batch(f"b{b}", [page(b * 10 + i) for i in range(3)],
                           [art(b * 10 + i) for i in range(3)], [], [])
        before = {p.parent.parent.name for p in parquet_files(tmp_path)}
        assert len([p for p in parquet_files(tmp_path) if "pages" in str(p)]) > 1
        w.consolidate()
    per_dir: dict = {}
    for table in ("pages", "article_versions"):  # the current generation (what readers see)
        for p in (tmp_path / table).resolve().rglob("*.parquet"):
            per_dir.setdefault(p.parent, []).append(p)
    assert len(per_dir) >= 2 and all(len(v) == 1 for v in per_dir.values()), per_dir
    assert count(tmp_path, "pages") == 12 and count(tmp_path, "articles") == 12
    assert wh.done_batches("r1") == {"b0", "b1", "b2", "b3"}
    assert before  # something was written before consolidating
    all_views_query(tmp_path)


def test_consolidation_merges_tables_side_by_side_and_a_failed_table_keeps_its_files(tmp_path, monkeypatch):
    """Tables are merged COMPACT_THREADS at a time (two merges observed in flight at once); an error
    in one table's merge reaches the caller and leaves that table's generation as it was, while the
    tables merged beside it are consolidated."""
    import newsmill.warehouse.merge as wm

    wh = Warehouse(tmp_path)
    with wh.writer("r1") as w:
        for b in range(3):
            w.commit_batch(f"b{b}", [page(b * 10 + i) for i in range(3)],
                           [art(b * 10 + i) for i in range(3)], [], [])
        gen_before = {t: (tmp_path / t).resolve() for t in ("pages", "article_versions")}
        real_merge, lock, state = wm.merge_files, threading.Lock(), {"now": 0, "max": 0}
        both = threading.Barrier(2, timeout=10)

        def merge(root, table, files, dest):
            with lock:
                state["now"] += 1
                state["max"] = max(state["max"], state["now"])
            try:
                if table in ("pages", "article_versions"):
                    both.wait()  # the two merges of this test overlap, or the barrier breaks (error)
                if table == "article_versions":
                    raise OSError("disk full")
                return real_merge(root, table, files, dest)
            finally:
                with lock:
                    state["now"] -= 1

        monkeypatch.setattr(wm, "merge_files", merge)
        with pytest.raises(OSError, match="disk full"):
            wm.compact_locked(tmp_path, ["pages", "article_versions"],
                              partitions={t: set(w.touched[t]) for t in ("pages", "article_versions")})
    assert state["max"] == 2
    assert (tmp_path / "article_versions").resolve() == gen_before["article_versions"]  # untouched
    assert (tmp_path / "pages").resolve() != gen_before["pages"]  # merged beside it
    assert all(len(list(d.glob("*.parquet"))) == 1 for d in (tmp_path / "pages").resolve().iterdir()
               if d.is_dir())
    assert count(tmp_path, "pages") == 9 and count(tmp_path, "articles") == 9


def test_merge_files_streams_row_groups_and_conforms_schemas(tmp_path, monkeypatch):
    """Consolidation streams: rows of several files (one missing a column, one with an extra column)
    come out in file order in one file of several row groups, never as one table in memory."""
    import newsmill.warehouse.merge as wc
    from newsmill.warehouse.schema import to_table

    (tmp_path / "in").mkdir()
    files = []
    for k in range(3):
        tbl = to_table("blocks", [dict(domain="example.com", block_hash=f"h{k}-{i:05d}", article_id=f"a{i}",
                                       content_hash="c", run_id="r", processed_at=T0) for i in range(5000)])
        if k == 0:
            tbl = tbl.drop_columns(["run_id"])  # an older file
        if k == 2:
            tbl = tbl.append_column("later_column", pa.array(["x"] * tbl.num_rows))  # a newer one
        files.append(tmp_path / "in" / f"f{k}.parquet")
        pq.write_table(tbl, files[-1])
    monkeypatch.setattr(wc, "MERGE_BATCH_ROWS", 1000)
    monkeypatch.setattr(wc, "MERGE_BUFFER_BYTES", 16 * 1024)  # every batch read is written out
    dest = tmp_path / "out" / "merged.parquet"
    assert wc.merge_files(tmp_path, "blocks", files, dest) == 15000
    pf = pq.ParquetFile(dest)
    assert pf.metadata.num_rows == 15000 and pf.metadata.num_row_groups == 15
    out = pf.read()
    assert out.column("block_hash").to_pylist()[::5000] == ["h0-00000", "h1-00000", "h2-00000"]
    assert out.column("run_id").null_count == 5000 and out.column("later_column").null_count == 10000
    assert out.schema.names[:len(SCHEMAS["blocks"].names)] == SCHEMAS["blocks"].names
    assert pf.schema_arrow.metadata[b"newsmill.table"] == b"blocks"
    assert not list((tmp_path / "_staging").glob("*"))  # staged, then renamed into place
