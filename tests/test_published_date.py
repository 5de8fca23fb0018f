"""``published_date`` (issue 12): the publisher's calendar date, through the real warehouse (Parquet written
by the writer, DuckDB views over it, an older file without the column, compaction) and ``newsmill extract``."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date, datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from newsmill.tasks.records import Article, PageLogEntry
from newsmill.warehouse.catalog import connect
from newsmill.warehouse.compact import compact
from newsmill.warehouse.schema import SCHEMAS
from newsmill.warehouse.store import Warehouse

FIXTURES = Path(__file__).parent / "fixtures" / "pages"
FETCHED = datetime(2022, 11, 8, 5, 0, tzinfo=timezone.utc)


def article(i: int, published_at: datetime | None, published_date: date | None) -> Article:
    url = f"https://www.example-zeitung.de/lokales/{i}"
    return Article(url=url, canonical_url=url, domain="example-zeitung.de", site_name="Example Zeitung",
                   title=f"Titel {i}", authors=("Lena Hartwig",), published_at=published_at, modified_at=None,
                   language="de", description=None, text=f"Text {i}", copyright_holder=None, copyright_year=None,
                   copyright_notice=None, license_url=None, content_hash=f"h{i}", fetched_at=FETCHED,
                   published_date=published_date, article_id=f"a{i}", extractor_version="t", source="s")


def page(i: int) -> PageLogEntry:
    return PageLogEntry(url=f"https://www.example-zeitung.de/lokales/{i}", final_url=None, kind="article",
                        status=200, outcome="ok", error=None, bytes=10, content_type="text/html",
                        fetched_at=FETCHED, elapsed_ms=1, run_id="r1", source="s")


def test_published_date_is_stored_and_daily_counts_count_by_it(tmp_path):
    just_after_midnight = datetime(2022, 11, 6, 23, 30, tzinfo=timezone.utc)  # 00:30 on the 7th in Berlin
    with Warehouse(tmp_path).writer("r1") as w:
        w.commit_batch("b1", [page(1), page(2), page(3)],
                       [article(1, just_after_midnight, date(2022, 11, 7)),
                        article(2, datetime(2022, 11, 7, 9, 0, tzinfo=timezone.utc), date(2022, 11, 7)),
                        article(3, None, None)], [], {})
    con = connect(tmp_path)
    assert con.execute("SELECT typeof(published_date) FROM articles LIMIT 1").fetchone()[0] == "DATE"
    rows = con.execute("SELECT article_id, published_date, published_at FROM articles ORDER BY article_id").fetchall()
    assert rows[0][1] == date(2022, 11, 7) and rows[0][2] == just_after_midnight
    assert rows[2][1] is None
    # the day filter a reader writes and the view agree: both articles of 7 November, none on the 6th
    assert con.execute("SELECT count(*) FROM articles WHERE published_date = DATE '2022-11-07'").fetchone()[0] == 2
    counts = dict(con.execute("SELECT day, articles FROM daily_counts").fetchall())
    assert counts == {date(2022, 11, 7): 2, date(2022, 11, 8): 1}  # no date at all: the fetch day


def test_files_written_before_the_column_still_read_and_compact(tmp_path):
    with Warehouse(tmp_path).writer("r1") as w:
        w.commit_batch("b1", [page(1)], [article(1, datetime(2022, 11, 6, 23, 30, tzinfo=timezone.utc),
                                                    date(2022, 11, 7))], [], {})
    # an older file: the same schema without published_date, dated by published_at only
    cols = [f for f in SCHEMAS["article_versions"] if f.name != "published_date"]
    values = {"article_id": "old", "url": "https://www.example-zeitung.de/alt", "text": "alt", "content_hash": "o",
              "published_at": datetime(2022, 11, 6, 23, 30, tzinfo=timezone.utc),
              "processed_at": datetime(2022, 11, 8, tzinfo=timezone.utc)}
    old = pa.table({f.name: pa.array([values.get(f.name)], type=f.type) for f in cols})
    gen = Path(os.path.realpath(tmp_path / "article_versions"))
    (gen / "date=2022-11-08").mkdir(exist_ok=True)
    pq.write_table(old, gen / "date=2022-11-08" / "part-old.parquet")
    for _ in range(2):  # as written, then after compaction conformed the old file to the current schema
        con = connect(tmp_path)
        assert con.execute("SELECT published_date FROM articles WHERE article_id = 'old'").fetchone() == (None,)
        counts = dict(con.execute("SELECT day, articles FROM daily_counts").fetchall())
        assert counts == {date(2022, 11, 6): 1, date(2022, 11, 7): 1}  # old row: the UTC day of published_at
        con.close()
        compact(tmp_path)


def test_newsmill_extract_json_has_published_date(newsmill_cmd):
    spec = json.loads((FIXTURES / "de_regional_body_byline.json").read_text(encoding="utf-8"))
    p = subprocess.run([newsmill_cmd, "extract", str(FIXTURES / "de_regional_body_byline.html"), "--url", spec["url"]],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    art = json.loads(p.stdout.strip().splitlines()[0])
    assert art["published_date"] == "2024-03-11"
    assert art["published_at"].startswith("2024-03-10T23:30:00")
    assert art["authors"] == ["Lena Hartwig", "Jonas Petersen"]
