"""Publish: a consistent snapshot of the local warehouse mirrored to file:// and fsspec memory://,
read back with DuckDB from the published views.sql (same rows as the local views)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import timedelta
from pathlib import Path

import duckdb
import fsspec
import pytest

from newsmill.tasks.errors import WarehouseLocked
from newsmill.tasks.records import Removal, RunRecord
from newsmill.tasks.urls import article_id
from test_warehouse import T0, art, page
from newsmill.warehouse import publish as publish_mod
from newsmill.warehouse.catalog import VIEW_NAMES, connect
from newsmill.warehouse.compact import compact, delete_url
from newsmill.warehouse.publish import PublishError, manifest_files, publish, read_manifest
from newsmill.warehouse.schema import SCHEMA_VERSION, TABLES
from newsmill.warehouse.store import Warehouse


def build(root: Path) -> Warehouse:
    """Two runs over two days, several files per partition, every table non-empty, a reprocessed
    article (two extractor versions: the articles view must pick the latest)."""
    wh = Warehouse(root)
    day2 = T0 + timedelta(days=1)
    with wh.writer("r1") as w:
        w.write_run(RunRecord("r1", "ingest", T0, None, "{}", "{}"))
        for b in range(3):
            ids = range(b * 3, b * 3 + 3)
            w.commit_batch(f"b{b}", [page(i) for i in ids], [art(i) for i in ids],
                           [Removal(f"https://example.com/news/{i}", "ad", "ad.x", "Buy") for i in ids],
                           [("example.com", "blk1", article_id(f"https://example.com/news/{i}"), f"h-body-{i}")
                            for i in ids], processed_at=T0)
        w.write_run(RunRecord("r1", "ingest", T0, T0 + timedelta(minutes=5), "{}", '{"ok": 9}'))
    with wh.writer("r2") as w:
        w.commit_batch("b0", [page(i, fetched=day2, run_id="r2") for i in range(9, 12)],
                       [art(i, fetched=day2) for i in range(9, 12)], [], {}, processed_at=day2)
        w.commit_batch("rp", [], [art(1, ev="2").with_context(title="Fixed")], [], {}, processed_at=day2)
    return wh


def rows(con: duckdb.DuckDBPyConnection) -> dict[str, list]:
    return {v: con.execute(f"SELECT * FROM {v} ORDER BY ALL").fetchall() for v in VIEW_NAMES}


def local_rows(root: Path) -> dict[str, list]:
    con = connect(root)
    try:
        return rows(con)
    finally:
        con.close()


def published_rows(views_sql: str, fs=None) -> dict[str, list]:
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        if fs is not None:
            con.register_filesystem(fs)
        con.execute(views_sql)
        return rows(con)
    finally:
        con.close()


def dest_files(dest: Path) -> set[str]:
    return {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}


def test_publish_file_uri_roundtrip_idempotent_and_after_compaction(tmp_path):
    root, dest = tmp_path / "wh", tmp_path / "pub"
    build(root)
    truth = local_rows(root)
    assert truth["articles"] and truth["boilerplate"] and truth["blocks"] and truth["runs"]
    assert ("Fixed",) in [(r[5],) for r in truth["articles"]]

    rep = publish(root, dest.as_uri())
    assert rep["copied"] == rep["files"] > len(TABLES) and rep["skipped"] == 0 and rep["removed"] == 0
    assert rep["bytes_copied"] == rep["bytes_total"] > 0
    views = (dest / "views.sql").read_text()
    assert f"read_parquet('{dest}/articles" not in views and f"read_parquet('{dest}/article_versions/**/*.parquet'" in views
    assert str(root) not in views  # reads the published copy, not the local warehouse
    assert published_rows(views) == truth

    m = json.loads((dest / "_manifest.json").read_text())
    assert m["schema_version"] == SCHEMA_VERSION and m["published_at"] and set(m["tables"]) == set(TABLES)
    listed = {f for t in m["tables"].values() for f in t["files"]}
    # paths stay inside dest: relative, under their table directory, no traversal; nothing else written
    for t, entry in m["tables"].items():
        for f in entry["files"]:
            assert f.startswith(f"{t}/date=") and ".." not in f and not f.startswith("/")
            assert (dest / f).resolve().is_relative_to(dest.resolve())
    assert dest_files(dest) == listed | {"_manifest.json", "views.sql"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pub", "wh"]
    assert sum(e["rows"] for e in m["tables"].values()) == sum(
        len(truth[v]) for v in ("article_versions", "pages", "blocks", "boilerplate_all", "runs_history"))

    # idempotent: nothing copied again
    rep2 = publish(root, dest.as_uri())
    assert (rep2["copied"], rep2["removed"], rep2["skipped"]) == (0, 0, rep["files"])
    assert rep2["bytes_copied"] == 0

    # compaction locally -> merged files published, their sources removed at the destination
    compact(root)
    assert local_rows(root) == truth
    rep3 = publish(root, dest.as_uri())
    assert rep3["removed"] > 0 and rep3["copied"] > 0 and rep3["files"] < rep["files"]
    m3 = json.loads((dest / "_manifest.json").read_text())
    listed3 = {f for t in m3["tables"].values() for f in t["files"]}
    assert dest_files(dest) == listed3 | {"_manifest.json", "views.sql"}
    assert published_rows((dest / "views.sql").read_text()) == truth
    # no empty partition directories left behind, no temp files
    assert all(any(d.iterdir()) for d in dest.rglob("date=*"))


def test_publish_fsspec_memory(tmp_path):
    root = tmp_path / "wh"
    build(root)
    truth = local_rows(root)
    name = f"nm-{uuid.uuid4().hex[:8]}"
    uri = f"memory://{name}/warehouse"
    mem = fsspec.filesystem("memory")
    try:
        rep = publish(root, uri)
        assert rep["copied"] == rep["files"] > 0
        # everything is under the destination prefix
        assert all(p.startswith(f"/{name}/warehouse/") for p in mem.find(f"/{name}"))
        views = mem.cat(f"/{name}/warehouse/views.sql").decode()
        assert f"read_parquet('{uri}/pages/**/*.parquet'" in views
        assert published_rows(views, fs=mem) == truth  # DuckDB reads memory:// through the fsspec fs
        # the manifest as a reader's file list
        files = manifest_files(uri, "pages")
        assert files and all(f.startswith(f"{uri}/pages/date=") for f in files)
        assert read_manifest(uri)["tables"]["pages"]["rows"] == len(truth["pages"])

        rep2 = publish(root, uri)
        assert (rep2["copied"], rep2["removed"]) == (0, 0)
        compact(root)
        rep3 = publish(root, uri)
        assert rep3["removed"] > 0
        present = {p.removeprefix(f"/{name}/warehouse/") for p in mem.find(f"/{name}/warehouse")}
        listed = {f for t in read_manifest(uri)["tables"].values() for f in t["files"]}
        assert present == listed | {"_manifest.json", "views.sql"}
        assert published_rows(mem.cat(f"/{name}/warehouse/views.sql").decode(), fs=mem) == truth
    finally:
        mem.rm(f"/{name}", recursive=True)


def test_takedown_is_propagated_and_table_subset_keeps_other_entries(tmp_path):
    root, dest = tmp_path / "wh", tmp_path / "pub"
    build(root)
    publish(root, str(dest))  # a plain path works too
    url = "https://example.com/news/4"
    delete_url(root, url)
    rep = publish(root, dest.as_uri(), tables=["pages", "article_versions"])
    assert set(rep["tables"]) == {"pages", "article_versions"}
    con = duckdb.connect()
    con.execute((dest / "views.sql").read_text())
    assert con.execute("SELECT count(*) FROM pages WHERE url = ?", [url]).fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM articles WHERE url = ?", [url]).fetchone()[0] == 0
    # the tables not published this time keep their previous manifest entries (and views)
    m = json.loads((dest / "_manifest.json").read_text())
    assert set(m["tables"]) == set(TABLES)
    assert con.execute("SELECT count(*) FROM blocks").fetchone()[0] > 0
    with pytest.raises(PublishError, match="unknown table"):
        publish(root, dest.as_uri(), tables=["nope"])


def test_publish_refuses_while_a_writer_holds_the_lock_and_bad_destinations(tmp_path):
    root, dest = tmp_path / "wh", tmp_path / "pub"
    wh = build(root)
    with wh.writer("busy"):
        with pytest.raises(WarehouseLocked):
            publish(root, dest.as_uri())
    assert not (dest / "_manifest.json").exists()
    with pytest.raises(PublishError, match="overlaps"):
        publish(root, (root / "published").as_uri())
    with pytest.raises(PublishError, match="not a newsmill warehouse"):
        publish(tmp_path / "empty", dest.as_uri())


def test_source_removed_during_publish_leaves_the_published_snapshot_untouched(tmp_path, monkeypatch):
    root, dest = tmp_path / "wh", tmp_path / "pub"
    build(root)
    publish(root, dest.as_uri())
    before = (dest / "_manifest.json").read_text()
    with Warehouse(root).writer("r3") as w:  # something new to publish
        w.commit_batch("b9", [page(99, run_id="r3")], [art(99)], [], {}, processed_at=T0)

    real = publish_mod._snapshot

    def snapshot_then_compact(*a, **kw):
        out = real(*a, **kw)
        compact(root, grace_s=0)  # merges and collects the listed generation right away
        return out

    monkeypatch.setattr(publish_mod, "_snapshot", snapshot_then_compact)
    with pytest.raises(PublishError, match="run publish again"):
        publish(root, dest.as_uri())
    assert (dest / "_manifest.json").read_text() == before
    monkeypatch.undo()
    publish(root, dest.as_uri())
    assert published_rows((dest / "views.sql").read_text()) == local_rows(root)


def test_cli_publish_prints_report(tmp_path, capsys):
    from newsmill.cli import main

    root, dest = tmp_path / "wh", tmp_path / "pub"
    build(root)
    assert main(["publish", dest.as_uri(), "--warehouse", str(root), "--table", "pages"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep["tables"]) == {"pages"} and rep["copied"] > 0
    assert os.path.exists(dest / "_manifest.json")
