"""Compaction and takedowns, both consistent for concurrent readers.

Readers glob the files of one *generation* directory (``catalog.connect`` resolves the
``<root>/<table>`` symlink once per connection). Both operations below take the writer lock and build
a **new generation**: untouched files are hard-linked, merged/rewritten files are written to
``_staging``, fsynced and renamed in; then the table symlink is swapped atomically
(``os.replace``). A reader therefore sees either the old file set or the new one — never the merged
file next to its sources (duplicates) and never a removed file (gaps).

* ``compact`` keeps the superseded generation for ``grace_s`` seconds (live readers may still be
  scanning it); the next writer/compaction removes it.
* ``delete_url`` (takedown) removes superseded generations of the affected tables immediately —
  the data must be gone from disk; a reader still scanning the old snapshot may get an I/O error,
  never wrong rows. The raw archive is searched **whole**: first the ``.warc.gz.open`` files left by
  killed runs are sealed (``tasks.archive.recover_open_files``; a live writer's is waited for), then
  every ``raw/**/*.warc.gz`` file is scanned member by member for records whose ``WARC-Target-URI`` is
  one of the takedown's URLs or that a matching ``pages`` row points at — a record of a batch that never
  committed (a failed or killed batch) has no ``pages`` row and is found too. Files holding such records
  are rewritten **under a new name** (``<stem>.d<id>.warc.gz``, all other gzip members copied
  byte-for-byte) and the remaining pages rows are updated to the new ``warc_file`` and ``warc_offset``
  (``warc_length`` is unchanged), so ``tasks.archive.read_record(root, warc_file, warc_offset)`` keeps
  working; the old WARC file is unlinked after the swap. The scan reads (inflates) every raw file once:
  a takedown's time grows with the size of ``raw/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from newsmill.tasks.errors import WarehouseError
from newsmill.tasks.urls import article_id as make_article_id
from newsmill.warehouse.schema import SCHEMAS, TABLES
from newsmill.warehouse.catalog import connect
from newsmill.warehouse.files import (
    GENERATION_GRACE_S,
    current_generation,
    finish_generation,
    fsync_dir,
    generations,
    link_file,
    new_generation_dir,
    staging_dir,
    utcnow,
    write_file_atomic,
)
from newsmill.warehouse.merge import compact_locked, read_file
from newsmill.warehouse.store import Warehouse

__all__ = ["compact", "delete_url"]

OPEN_WARC_WAIT_S = 60.0  # delete_url waits this long for a finishing run to seal its .open raw file


def compact(
    root: str | os.PathLike,
    table: str | None = None,
    *,
    grace_s: float = GENERATION_GRACE_S,
    wait_s: float | None = None,
) -> dict[str, Any]:
    """Merge the files of each partition (``date=...``) into one file per partition, for ``table``
    or every table. Returns ``{table: {partitions, merged_partitions, files_before, files_after,
    rows, generation}}``. Takes the writer lock (``WarehouseLocked`` if a run is writing)."""
    tables = list(TABLES) if table is None else [table]
    for t in tables:
        if t not in SCHEMAS:
            raise WarehouseError(f"unknown table {t!r}: one of {', '.join(TABLES)}")
    wh = Warehouse(root)
    with wh.writer("compact-" + utcnow().strftime("%Y%m%dT%H%M%S"), wait_s=wait_s):
        return compact_locked(wh.root, tables, grace_s=grace_s)


# ---------------------------------------------------------------------------------------------------
# takedown


def _warc_spans(root: Path, path: Path) -> list:
    """The gzip members of one raw WARC file (``tasks.archive.scan_members``)."""
    from newsmill.tasks.archive import scan_members

    src = path.resolve()
    if os.path.commonpath([str(root.resolve()), str(src)]) != str(root.resolve()):
        raise WarehouseError(f"WARC path outside the warehouse: {path}")
    with open(src, "rb") as f:
        return list(scan_members(f))


def _rewrite_warc(root: Path, rel: str, spans: list, drop: set[int]) -> tuple[str, dict[int, int]]:
    """Copy ``rel`` without the members at offsets ``drop`` to a new file; returns (new_rel,
    {old: new offset})."""
    src = (root / rel).resolve()
    name = src.name
    stem = name[: -len(".warc.gz")] if name.endswith(".warc.gz") else src.stem
    new_name = f"{stem}.d{uuid.uuid4().hex[:8]}.warc.gz"
    st = staging_dir(root)
    st.mkdir(parents=True, exist_ok=True)
    tmp = st / (new_name + ".tmp")
    mapping: dict[int, int] = {}
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        for span in spans:
            if span.offset in drop:
                continue
            fin.seek(span.offset)
            mapping[span.offset] = fout.tell()
            left = span.length
            while left:
                chunk = fin.read(min(left, 1 << 20))
                if not chunk:
                    break
                fout.write(chunk)
                left -= len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    dest = src.parent / new_name
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    new_rel = os.path.relpath(dest, root.resolve())
    return new_rel, mapping


def _isin(tbl: pa.Table, col: str, values: Iterable[str]) -> pa.ChunkedArray:
    if col not in tbl.column_names:
        return pa.chunked_array([pa.array([False] * tbl.num_rows)])
    return pc.fill_null(pc.is_in(tbl.column(col), value_set=pa.array(sorted(values), type=pa.string())), False)


def delete_url(root: str | os.PathLike, url: str, *, wait_s: float | None = None) -> dict[str, Any]:
    """Takedown of one article: remove its rows from article_versions, boilerplate, blocks, story_members and pages
    (matched by url, final_url, canonical_url and article_id) and its raw WARC records. Returns counts."""
    wh = Warehouse(root)
    root = wh.root
    report: dict[str, Any] = {"url": url, "rows": {}, "warc_records": 0, "warc_files": 0}
    with wh.writer("delete-" + utcnow().strftime("%Y%m%dT%H%M%S"), wait_s=wait_s):
        with contextlib.closing(connect(root)) as con:
            aid = make_article_id(url)
            urls = {url}
            ids: set[str] = set()
            for _ in range(2):  # url -> versions -> their urls/canonicals -> pages (final_url) -> ...
                rows = con.execute(
                    """SELECT DISTINCT article_id, url, canonical_url FROM article_versions
                       WHERE article_id = ? OR url IN (SELECT unnest(?::VARCHAR[]))
                          OR canonical_url IN (SELECT unnest(?::VARCHAR[]))""",
                    [aid, sorted(urls), sorted(urls)],
                ).fetchall()
                for i, u, c in rows:
                    ids.add(i)
                    urls.update(x for x in (u, c) if x)
                for u, fu in con.execute(
                    """SELECT DISTINCT url, final_url FROM pages WHERE url IN (SELECT unnest(?::VARCHAR[]))
                       OR final_url IN (SELECT unnest(?::VARCHAR[]))""",
                    [sorted(urls), sorted(urls)],
                ).fetchall():
                    urls.update(x for x in (u, fu) if x)
            warc_refs = con.execute(
                """SELECT warc_file, list(DISTINCT warc_offset) FROM pages
                   WHERE (url IN (SELECT unnest(?::VARCHAR[])) OR final_url IN (SELECT unnest(?::VARCHAR[])))
                     AND warc_file IS NOT NULL GROUP BY warc_file""",
                [sorted(urls), sorted(urls)],
            ).fetchall()
        report["article_ids"] = sorted(ids)

        # 1. raw WARC: open files of killed runs sealed, then every raw file searched (a record of a
        #    batch that never committed has no pages row); files with a matching record are rewritten
        #    under new names (old ones unlinked after the table swap)
        from newsmill.tasks.archive import recover_open_files

        recovered = recover_open_files(root, wait_s=OPEN_WARC_WAIT_S)
        if recovered["live"]:
            raise WarehouseError(f"{recovered['live'][0]}: still being written by a running process; "
                                 "run the delete again when it has finished")
        report["warc_open_sealed"] = len(recovered["sealed"]) + len(recovered["removed"])
        refs = {rel: {o for o in offsets if o is not None} for rel, offsets in warc_refs}
        remap: dict[str, tuple[str, dict[int, int]]] = {}
        searched = 0
        for path in sorted((root / "raw").rglob("*.warc.gz")) if (root / "raw").is_dir() else ():
            rel = os.path.relpath(path, root)
            spans = _warc_spans(root, path)
            searched += 1
            wanted = refs.get(rel, set())
            drop = {sp.offset for sp in spans if sp.offset in wanted or (sp.url is not None and sp.url in urls)}
            if not drop:
                continue
            new_rel, mapping = _rewrite_warc(root, rel, spans, drop)
            remap[rel] = (new_rel, mapping)
            report["warc_records"] += sum(1 for sp in spans if sp.offset in drop and sp.rec_type == "response")
            report["warc_files"] += 1
        report["warc_files_searched"] = searched

        # 2. tables: new generation with the affected files rewritten
        def drop_mask(t: str, tbl: pa.Table) -> pa.ChunkedArray | None:
            if t == "article_versions":
                m = pc.or_(_isin(tbl, "article_id", ids), _isin(tbl, "url", urls))
                return pc.or_(m, _isin(tbl, "canonical_url", urls))
            if t == "boilerplate":
                return _isin(tbl, "url", urls)
            if t in ("blocks", "story_members"):
                return _isin(tbl, "article_id", ids)
            if t == "pages":
                return pc.or_(_isin(tbl, "url", urls), _isin(tbl, "final_url", urls))
            return None

        key_cols = {"article_versions": ["article_id", "url", "canonical_url"], "boilerplate": ["url"],
                    "blocks": ["article_id"], "story_members": ["article_id"],
                    "pages": ["url", "final_url", "warc_file"]}
        changed: list[str] = []
        for t, cols in key_cols.items():
            gen = current_generation(root, t)
            if gen is None:
                continue
            plan: list[tuple[Path, bool]] = []
            for f in sorted(gen.glob("*/*.parquet")):
                pf = pq.ParquetFile(f)
                have = [c for c in cols if c in pf.schema_arrow.names]
                keys = pf.read(columns=have)
                hit = pc.any(drop_mask(t, keys)).as_py() or False
                if t == "pages" and remap and "warc_file" in have:
                    hit = hit or bool(pc.any(_isin(keys, "warc_file", remap)).as_py())
                plan.append((f, bool(hit)))
            if not any(h for _f, h in plan):
                report["rows"][t] = 0
                continue
            new_gen = new_generation_dir(root, t)
            removed = 0
            for f, hit in plan:
                dest = new_gen / f.parent.name / f.name
                if not hit:
                    link_file(f, dest)
                    continue
                tbl = read_file(f)
                mask = drop_mask(t, tbl)
                removed += int(pc.sum(mask.cast(pa.int64())).as_py() or 0)
                tbl = tbl.filter(pc.invert(mask))
                if t == "pages" and remap and tbl.num_rows:
                    files = tbl.column("warc_file").to_pylist()
                    offs = tbl.column("warc_offset").to_pylist()
                    for i, (wf, off) in enumerate(zip(files, offs)):
                        if wf in remap:
                            new_rel, mapping = remap[wf]
                            files[i] = new_rel
                            offs[i] = mapping.get(off) if off is not None else None
                    tbl = tbl.set_column(tbl.schema.get_field_index("warc_file"), "warc_file", pa.array(files, pa.string()))
                    tbl = tbl.set_column(tbl.schema.get_field_index("warc_offset"), "warc_offset", pa.array(offs, pa.int64()))
                if tbl.num_rows:
                    write_file_atomic(root, t, tbl, new_gen / f.parent.name / f"part-d{uuid.uuid4().hex[:8]}-{f.name.removeprefix('part-')}")
            finish_generation(root, t, new_gen)
            report["rows"][t] = removed
            changed.append(t)

        # 3. the data must be gone: drop every superseded generation of changed tables now
        for t in changed:
            cur = current_generation(root, t)
            for _n, p in generations(root, t):
                if p != cur:
                    shutil.rmtree(p, ignore_errors=True)
        for rel in remap:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(root / rel)
        report["tables"] = changed
    return report
