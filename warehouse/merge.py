"""Merging the small files of a table's partitions into one file per partition in a new generation: the
work of ``newsmill compact`` (``warehouse/compact.py``) and of the end-of-run consolidation of a writer
(``WarehouseWriter.consolidate``). The caller holds the writer lock."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from newsmill.warehouse.files import (
    GENERATION_GRACE_S,
    current_generation,
    finish_generation,
    gc_generations,
    link_file,
    new_generation_dir,
    staged_file,
    stats_columns,
    with_file_metadata,
)
from newsmill.warehouse.schema import SCHEMAS

__all__ = ["compact_locked", "merge_files"]


def partition_files(gen: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for p in sorted(gen.glob("*/*.parquet")):
        out.setdefault(p.parent.name, []).append(p)
    return out


def conform(table: str, tbl: pa.Table) -> pa.Table:
    """Current schema column order (missing columns as NULL), unknown extra columns kept at the end."""
    schema = SCHEMAS[table]
    cols, fields = [], []
    for f in schema:
        if f.name in tbl.column_names:
            c = tbl.column(f.name)
            try:
                c = c.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                f = pa.field(f.name, c.type)
        else:
            c = pa.nulls(tbl.num_rows, type=f.type)
        cols.append(c)
        fields.append(pa.field(f.name, c.type))
    for name in tbl.column_names:
        if name not in schema.names and name != "date":
            cols.append(tbl.column(name))
            fields.append(pa.field(name, tbl.column(name).type))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def read_file(path: Path) -> pa.Table:
    return pq.read_table(path, partitioning=None)


def align(tbl: pa.Table, schema: pa.Schema) -> pa.Table:
    """``tbl`` with exactly ``schema``'s columns, in order (cast; absent ones NULL)."""
    cols = [tbl.column(f.name).cast(f.type) if f.name in tbl.column_names else pa.nulls(tbl.num_rows, f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


MERGE_BUFFER_BYTES = 64 * 2**20  # rows buffered per row group while merging (memory stays flat)
MERGE_BATCH_ROWS = 8192  # rows read at a time


def merge_files(root: Path, table: str, files: list[Path], dest: Path) -> int:
    """Stream the rows of ``files`` (conformed to the current schema, in file order) into one Parquet
    file at ``dest``, atomically; returns the row count. Reads record batches and writes row groups of
    about ``MERGE_BUFFER_BYTES``, so merging a night's partition does not hold it in memory."""
    schemas = [conform(table, pq.read_schema(f).empty_table()).schema for f in files]
    schema = with_file_metadata(table, pa.unify_schemas(schemas, promote_options="permissive"))
    rows = 0
    with staged_file(root, dest) as fh:
        with pq.ParquetWriter(fh, schema, compression="zstd",
                              write_statistics=stats_columns(table, schema.empty_table())) as writer:
            buf: list[pa.Table] = []
            size = 0
            for f in files:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=MERGE_BATCH_ROWS):
                    buf.append(align(conform(table, pa.Table.from_batches([batch])), schema))
                    size += batch.nbytes
                    rows += batch.num_rows
                    if size >= MERGE_BUFFER_BYTES:
                        writer.write_table(pa.concat_tables(buf))
                        buf, size = [], 0
            if buf:
                writer.write_table(pa.concat_tables(buf))
    return rows


COMPACT_THREADS = 2  # tables merged at once (each streams through its own MERGE_BUFFER_BYTES buffer)


def compact_locked(
    root: Path,
    tables: Iterable[str],
    *,
    partitions: dict[str, set[str]] | None = None,
    grace_s: float = GENERATION_GRACE_S,
) -> dict[str, Any]:
    """The work of :func:`compact`, for a caller that already holds the writer lock. With
    ``partitions`` (``{table: {"date=...", ...}}``) only those partitions are merged (an ingest run
    consolidates the partitions it wrote, so a night leaves one file per partition). Tables are
    independent (each has its own generations) and merged :data:`COMPACT_THREADS` at a time: Parquet
    decoding, zstd and fsync release the GIL, so the end of a run uses both cores of a small machine."""
    tables = list(tables)

    def one(t: str) -> dict[str, Any]:
        return _compact_table(root, t, None if partitions is None else partitions.get(t, set()), grace_s)

    if len(tables) < 2:
        return {t: one(t) for t in tables}
    with ThreadPoolExecutor(max_workers=COMPACT_THREADS, thread_name_prefix="compact") as pool:
        futures = {t: pool.submit(one, t) for t in tables}
    return {t: f.result() for t, f in futures.items()}  # the first table's error, if any, is raised


def _compact_table(root: Path, t: str, wanted: set[str] | None, grace_s: float) -> dict[str, Any]:
    """Merge table ``t``'s partitions (those in ``wanted``; all when None) into a new generation."""
    gen = current_generation(root, t)
    parts = partition_files(gen) if gen else {}
    before = sum(len(v) for v in parts.values())
    info = {"partitions": len(parts), "merged_partitions": 0, "files_before": before,
            "files_after": before, "rows": 0, "generation": gen.name if gen else None}
    if not any(len(v) > 1 and (wanted is None or k in wanted) for k, v in parts.items()):
        info["removed_generations"] = gc_generations(root, t, grace_s)
        return info
    new_gen = new_generation_dir(root, t)
    after = 0
    for part, files in parts.items():
        if len(files) == 1 or (wanted is not None and part not in wanted):
            for f in files:
                link_file(f, new_gen / part / f.name)
                if wanted is None:
                    info["rows"] += pq.ParquetFile(f).metadata.num_rows
            after += len(files)
            continue
        name = f"part-compacted-{uuid.uuid4().hex[:12]}.parquet"
        info["rows"] += merge_files(root, t, files, new_gen / part / name)
        info["merged_partitions"] += 1
        after += 1
    finish_generation(root, t, new_gen)
    info["files_after"] = after
    info["generation"] = new_gen.name
    info["removed_generations"] = gc_generations(root, t, grace_s)
    return info
