"""run_query: one read-only statement, sandboxed to the warehouse, three output formats."""

from __future__ import annotations

import csv
import io
import json

import pytest

from newsmill.tasks.errors import NewsmillError, UnsafeQuery
from tests.test_warehouse import art, page
from newsmill.warehouse.query import check_query, run_query
from newsmill.warehouse.store import Warehouse


@pytest.fixture()
def root(tmp_path):
    wh = Warehouse(tmp_path / "wh")
    with wh.writer("r1") as w:
        w.commit_batch("b1", [page(i) for i in range(3)], [art(i) for i in range(3)], [], {})
    return wh.root


HOSTILE = [
    "COPY (SELECT 1) TO '/tmp/newsmill-pwned.csv'",
    "COPY articles TO 'out.parquet'",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/newsmill-pwned.csv'",
    "ATTACH '/tmp/newsmill-pwned.db' AS x",
    "DETACH memory",
    "INSTALL fts",
    "LOAD fts",
    "SET threads = 1",
    "RESET memory_limit",
    "PRAGMA version",
    "CREATE TABLE t AS SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "DROP VIEW articles",
    "INSERT INTO articles SELECT * FROM articles",
    "DELETE FROM pages",
    "UPDATE pages SET url = 'x'",
    "WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a",
    "EXPORT DATABASE '/tmp/newsmill-pwned'",
    "CALL pragma_version()",
    "SELECT 1; SELECT 2",
    "SELECT 1; DROP VIEW articles",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('/etc/*.parquet')",
    "",
    "   ;  ",
]


@pytest.mark.parametrize("sql", HOSTILE)
def test_hostile_sql_is_refused(root, sql):
    with pytest.raises(UnsafeQuery) as ei:
        run_query(root, sql)
    assert "\n" not in str(ei.value) and str(ei.value)


def test_replacement_scan_of_outside_file_fails(root):
    with pytest.raises(NewsmillError) as ei:  # disabled with external access: "table does not exist"
        run_query(root, "SELECT * FROM '/etc/passwd'")
    assert "root:" not in str(ei.value)


def test_path_escape_from_warehouse_refused(root):
    with pytest.raises(UnsafeQuery):
        run_query(root, f"SELECT * FROM read_text('{root}/../../../etc/passwd')")


def test_allowed_statements(root):
    for sql in ["SELECT count(*) FROM articles", "WITH a AS (SELECT * FROM pages) SELECT count(*) FROM a",
                "FROM articles SELECT url", "DESCRIBE articles", "SHOW TABLES", "SUMMARIZE pages",
                "EXPLAIN SELECT * FROM articles", "SELECT 1;"]:
        assert run_query(root, sql)
    assert check_query("select 1") == "select 1"


def test_formats(root):
    sql = "SELECT url, authors, published_at, copyright_year, paywalled FROM articles ORDER BY url"
    rows = json.loads(run_query(root, sql, fmt="json"))
    assert len(rows) == 3
    assert rows[0] == {"url": "https://example.com/news/0", "authors": ["Ann", "Bob"],
                       "published_at": "2024-05-01T12:00:00+00:00", "copyright_year": 2024, "paywalled": None}
    got = list(csv.reader(io.StringIO(run_query(root, sql, fmt="csv"))))
    assert got[0] == ["url", "authors", "published_at", "copyright_year", "paywalled"] and len(got) == 4
    assert got[1][1] == '["Ann", "Bob"]'
    table = run_query(root, sql, max_rows=2)
    assert "https://example.com/news/1" in table and "news/2" not in table and "truncated" in table
    assert len(json.loads(run_query(root, sql, fmt="json", max_rows=1))) == 1
    with pytest.raises(UnsafeQuery):
        run_query(root, sql, fmt="xml")


def test_query_errors_are_one_line(root):
    with pytest.raises(NewsmillError) as ei:
        run_query(root, "SELECT no_such_column FROM articles")
    assert "\n" not in str(ei.value)
    with pytest.raises(UnsafeQuery, match="parse"):
        run_query(root, "SELEC 1")


def test_empty_warehouse_queries(tmp_path):
    (tmp_path / "empty").mkdir()
    assert json.loads(run_query(tmp_path / "empty", "SELECT count(*) AS n FROM articles", fmt="json")) == [{"n": 0}]
