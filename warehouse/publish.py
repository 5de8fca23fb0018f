"""Publish: mirror a consistent snapshot of the local warehouse to any pyarrow/fsspec filesystem.

The local warehouse stays the single writer's home (``flock`` and atomic ``rename`` do not exist on
object stores). ``publish(root, dest_uri)`` copies the current generation of each table to::

    <dest>/<table>/date=YYYY-MM-DD/<file>.parquet     same Hive layout and file names as locally
    <dest>/views.sql                                   DuckDB views over <dest>/<table>/**/*.parquet
    <dest>/_manifest.json                              the published file list (the commit point)

Order of a publish (each object is one PUT on an object store, so each is atomic by itself; on a
local/mounted ``file://`` destination every file is written under a temporary name and renamed):

1. under the writer lock (``<root>/_lock``, so no run, compaction or takedown is between two tables)
   the current generation of every table is resolved and its files listed, and the views script is
   generated against exactly those files; the lock is then released (writers are blocked only for
   this listing, not for the upload);
2. files not yet at the destination (or with a different size) are uploaded; files already there are
   skipped (files are immutable and their names unique, so publishing is incremental and idempotent);
3. ``views.sql``, then ``_manifest.json`` are written — from this moment readers of the manifest see
   the new snapshot, complete;
4. files at the destination that are no longer in the snapshot (merged away by compaction, or removed
   by a takedown) are deleted.

Readers that **use the manifest** (``manifest_files(dest, table)``) always see one complete snapshot.
Readers that **glob** (``views.sql``, ``read_parquet('<dest>/pages/**/*.parquet')``, Spark, polars)
may, between steps 2 and 4 of a publish that follows a compaction, see the merged file *and* its
sources (duplicate rows) — use the manifest, or publish right after compacting at a quiet time (the
nightly run consolidates its own partitions, so a publish after each run rarely replaces files).
A reader that listed files just before step 4 may get a "not found" error for a removed file; retrying
reads the new snapshot.

Publishes of one warehouse are serialized by ``<root>/_publish.lock`` (a second publish waits or
fails). One destination must be fed by a single warehouse.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import fsspec.core
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from newsmill.tasks.errors import WarehouseError, WarehouseLocked
from newsmill.warehouse.schema import SCHEMA_VERSION, SCHEMAS, TABLES
from newsmill.warehouse.catalog import views_sql
from newsmill.warehouse.files import WriterLock, current_generation, parquet_files, utcnow

__all__ = ["publish", "resolve_filesystem", "read_manifest", "manifest_files", "PublishError", "MANIFEST"]

MANIFEST = "_manifest.json"
VIEWS = "views.sql"
MANIFEST_FORMAT = "newsmill-publish/1"
_CHUNK = 8 << 20
# what a warehouse file's path below its table directory looks like (anything else is never copied
# nor deleted): date=YYYY-MM-DD/<safe name>.parquet
_REL_RE = re.compile(r"^date=\d{4}-\d{2}-\d{2}/[A-Za-z0-9_][A-Za-z0-9._-]*\.parquet$")
_TMP_RE = re.compile(r"^date=\d{4}-\d{2}-\d{2}/\.[A-Za-z0-9._-]+\.parquet\.tmp-[0-9a-f]+$")


class PublishError(WarehouseError):
    """The snapshot could not be published (nothing the readers of the manifest see was changed)."""


# ---------------------------------------------------------------------------------------------------
# destination filesystem


def resolve_filesystem(dest_uri: str) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, base path)`` for a destination URI: ``pyarrow.fs.FileSystem.from_uri``
    (``file://``, local paths, ``s3://``, ``gs://``, ``abfs://``, ``hdfs://``), else fsspec
    (``memory://``, ``sftp://``, ...) wrapped in ``pyarrow.fs.PyFileSystem``."""
    uri = str(dest_uri)
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri).rstrip("/") or "/"
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as exc:  # ArrowInvalid is a ValueError: unknown scheme
        try:
            ffs, path = fsspec.core.url_to_fs(uri)
        except (ValueError, ImportError) as exc2:
            raise PublishError(f"cannot open {dest_uri}: {exc}; fsspec: {exc2}") from exc2
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(ffs))
    return fs, path.rstrip("/")


def _is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def _is_object_store(fs: pafs.FileSystem) -> bool:
    return fs.type_name in ("s3", "gcs", "abfs")


def _join(base: str, rel: str) -> str:
    return f"{base}/{rel}" if base else rel


def _reader_base(dest_uri: str) -> str:
    """The base URL written into views.sql: the destination URI without query/fragment (credentials
    and endpoint options stay out of the script); ``file://`` becomes a plain local path."""
    uri = str(dest_uri)
    if "://" not in uri:
        return os.path.abspath(uri).rstrip("/")
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return unquote(parts.path or "/").rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _mkdirs(fs: pafs.FileSystem, path: str) -> None:
    if _is_object_store(fs) or not path:
        return  # no directories on object stores (create_dir would add marker objects)
    with contextlib.suppress(OSError, NotImplementedError):
        fs.create_dir(path, recursive=True)


def _put_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """One object write: a single PUT on object stores; temp name + rename on a local filesystem."""
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    _mkdirs(fs, parent)
    if _is_local(fs):
        tmp = f"{parent}/.{path.rsplit('/', 1)[-1]}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return
    with fs.open_output_stream(path) as out:
        out.write(data)


def _put_file(fs: pafs.FileSystem, src: Path, path: str) -> int:
    parent = path.rsplit("/", 1)[0]
    _mkdirs(fs, parent)
    n = 0
    if _is_local(fs):
        tmp = f"{parent}/.{path.rsplit('/', 1)[-1]}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            with open(src, "rb") as inp, open(tmp, "wb") as out:
                while chunk := inp.read(_CHUNK):
                    out.write(chunk)
                    n += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return n
    # an object store makes the object visible only when the stream is closed (PUT, or the
    # completion of a multipart upload): readers never see a partial file
    with open(src, "rb") as inp, fs.open_output_stream(path) as out:
        while chunk := inp.read(_CHUNK):
            out.write(chunk)
            n += len(chunk)
    return n


def _listing(fs: pafs.FileSystem, base: str, table: str) -> dict[str, int]:
    """``{rel path below <base>/<table>: size}`` of the files at the destination."""
    sel = pafs.FileSelector(_join(base, table), recursive=True, allow_not_found=True)
    try:
        infos = fs.get_file_info(sel)
    except FileNotFoundError:
        return {}
    prefix = _join(base, table).rstrip("/") + "/"
    out: dict[str, int] = {}
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        p = info.path
        if not p.startswith(prefix):
            # some fsspec handlers return paths with a leading "/" (memory://)
            stripped = p.lstrip("/")
            if not stripped.startswith(prefix.lstrip("/")):
                continue
            p = "/" + stripped if prefix.startswith("/") else stripped
        out[p[len(prefix):]] = info.size if info.size is not None else -1
    return out


# ---------------------------------------------------------------------------------------------------
# snapshot


@dataclass(frozen=True)
class _File:
    rel: str  # date=YYYY-MM-DD/name.parquet
    src: Path
    size: int
    rows: int


@contextlib.contextmanager
def _publish_lock(root: Path, wait_s: float | None):
    fd = os.open(root / "_publish.lock", os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + (wait_s or 0.0)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if wait_s is None or time.monotonic() >= deadline:
                    raise WarehouseLocked(f"another publish of {root} is running") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the flock


def _snapshot(root: Path, tables: list[str], all_tables: list[str], base: str, wait_s: float | None):
    """Under the writer lock: ``({table: (generation name, [files])}, views.sql text)``."""
    lock = WriterLock(root, "publish-" + utcnow().strftime("%Y%m%dT%H%M%S"), wait_s)
    lock.acquire()
    try:
        snap: dict[str, tuple[str | None, list[_File]]] = {}
        for t in tables:
            gen = current_generation(root, t)
            files = []
            for p in parquet_files(gen):
                rel = f"{p.parent.name}/{p.name}"
                if not _REL_RE.match(rel):
                    raise PublishError(f"unexpected file name in the warehouse: {p}")
                st = p.stat()
                files.append(_File(rel, p, st.st_size, pq.read_metadata(p).num_rows))
            snap[t] = (gen.name if gen else None, files)
        views = views_sql(root, base=base, tables=all_tables)
    finally:
        lock.release()
    return snap, views


def _source(root: Path, table: str, f: _File) -> Path:
    """The snapshot's file, or the same immutable file hard-linked into a newer generation (after the
    lock was released, a compaction/takedown may have superseded and collected the snapshot's)."""
    if f.src.exists():
        return f.src
    cur = current_generation(root, table)
    if cur is not None:
        alt = cur / f.rel
        if alt.exists() and alt.stat().st_size == f.size:
            return alt
    raise PublishError(
        f"{table}/{f.rel} was removed from the warehouse during the publish (compaction or takedown); "
        "nothing readers of the manifest see has changed: run publish again"
    )


# ---------------------------------------------------------------------------------------------------
# public


def publish(
    root: str | os.PathLike,
    dest_uri: str,
    *,
    tables: list[str] | tuple[str, ...] | None = None,
    wait_s: float | None = None,
    views_base: str | None = None,
) -> dict[str, Any]:
    """Mirror the current snapshot of the warehouse at ``root`` to ``dest_uri`` (see the module doc).

    ``tables``: only these (default: all); the manifest keeps the previously published entries of the
    others. ``wait_s``: wait up to this many seconds for the writer lock (default: fail at once with
    ``WarehouseLocked`` when a run holds it). ``views_base``: base URL the views in ``views.sql`` read
    (default: ``dest_uri`` without its query string; e.g. ``abfss://...`` or ``az://...`` when DuckDB
    names the store differently than pyarrow). Returns the report (files copied/skipped/removed and
    bytes, per table and in total)."""
    t0 = time.monotonic()
    root = Path(os.path.abspath(root))
    if not (root / "_meta.json").exists() and not any((root / t).is_symlink() for t in TABLES):
        raise PublishError(f"{root} is not a newsmill warehouse (no _meta.json)")
    wanted = list(TABLES) if tables is None else list(dict.fromkeys(tables))
    for t in wanted:
        if t not in SCHEMAS:
            raise PublishError(f"unknown table {t!r}: one of {', '.join(TABLES)}")
    fs, base = resolve_filesystem(dest_uri)
    reader_base = (views_base or _reader_base(dest_uri)).rstrip("/")
    if _is_local(fs):
        real_root = os.path.realpath(root)
        real_dest = os.path.realpath(base)
        if os.path.commonpath([real_root, real_dest]) in (real_root, real_dest):
            raise PublishError(f"destination {base} overlaps the warehouse {root}")

    report: dict[str, Any] = {
        "dest": str(dest_uri), "tables": {}, "copied": 0, "skipped": 0, "removed": 0,
        "bytes_copied": 0, "bytes_total": 0, "files": 0,
    }
    with _publish_lock(root, wait_s):
        previous = read_manifest(dest_uri, _fs=(fs, base)) or {}
        prev_tables = previous.get("tables", {}) if previous.get("format") == MANIFEST_FORMAT else {}
        others = [t for t in TABLES if t not in wanted and t in prev_tables]
        snap, views = _snapshot(root, wanted, [t for t in TABLES if t in wanted or t in others], reader_base, wait_s)
        now = utcnow().isoformat()

        # 2. upload what is missing
        listings: dict[str, dict[str, int]] = {}
        for t in wanted:
            _gen, files = snap[t]
            there = listings[t] = _listing(fs, base, t)
            info = {"files": len(files), "copied": 0, "skipped": 0, "removed": 0, "bytes_copied": 0,
                    "bytes_total": sum(f.size for f in files), "rows": sum(f.rows for f in files),
                    "generation": _gen}
            for f in files:
                if there.get(f.rel) == f.size:
                    info["skipped"] += 1
                    continue
                info["bytes_copied"] += _put_file(fs, _source(root, t, f), _join(base, f"{t}/{f.rel}"))
                info["copied"] += 1
            report["tables"][t] = info

        # 3. views.sql, then the manifest (the commit point for manifest readers)
        _put_bytes(fs, _join(base, VIEWS), views.encode())
        entries = {t: prev_tables[t] for t in others}
        for t in wanted:
            gen, files = snap[t]
            entries[t] = {
                "generation": gen,
                "published_at": now,
                "rows": sum(f.rows for f in files),
                "bytes": sum(f.size for f in files),
                "files": [f"{t}/{f.rel}" for f in files],
                "sizes": [f.size for f in files],
            }
        manifest = {
            "format": MANIFEST_FORMAT,
            "schema_version": _schema_version(root),
            "published_at": now,
            "base": reader_base,
            "tables": {t: entries[t] for t in TABLES if t in entries},
        }
        _put_bytes(fs, _join(base, MANIFEST), (json.dumps(manifest, indent=1) + "\n").encode())

        # 4. only now remove what the snapshot no longer has
        for t in wanted:
            keep = {f.rel for f in snap[t][1]}
            stale = [r for r in listings[t] if r not in keep and (_REL_RE.match(r) or _TMP_RE.match(r))]
            for r in sorted(stale):
                with contextlib.suppress(FileNotFoundError):
                    fs.delete_file(_join(base, f"{t}/{r}"))
                if _REL_RE.match(r):
                    report["tables"][t]["removed"] += 1
            if _is_local(fs):
                for part in sorted({r.split("/", 1)[0] for r in stale}):
                    with contextlib.suppress(OSError):
                        os.rmdir(_join(base, f"{t}/{part}"))  # only if now empty

    for info in report["tables"].values():
        for k in ("copied", "skipped", "removed", "bytes_copied", "bytes_total", "files"):
            report[k] += info[k]
    report["manifest"] = _join(reader_base, MANIFEST)
    report["views"] = _join(reader_base, VIEWS)
    report["published_at"] = now
    report["elapsed_s"] = round(time.monotonic() - t0, 3)
    return report


def _schema_version(root: Path) -> int:
    try:
        v = json.loads((root / "_meta.json").read_text()).get("schema_version")
    except (OSError, ValueError):
        v = None
    return v if isinstance(v, int) else SCHEMA_VERSION


def read_manifest(dest_uri: str, *, _fs: tuple[pafs.FileSystem, str] | None = None) -> dict | None:
    """The published ``_manifest.json`` of ``dest_uri`` (None when nothing was published yet)."""
    fs, base = _fs or resolve_filesystem(dest_uri)
    try:
        with fs.open_input_stream(_join(base, MANIFEST)) as f:
            data = f.read()
    except (FileNotFoundError, OSError):
        return None
    try:
        out = json.loads(data)
    except ValueError:
        return None
    return out if isinstance(out, dict) else None


def manifest_files(dest_uri: str, table: str, *, base: str | None = None) -> list[str]:
    """URLs of the files of ``table`` in the published snapshot (for ``read_parquet([...])``,
    ``pyarrow.dataset.dataset([...])``, polars, Spark): the consistent alternative to globbing.
    ``base``: prefix to use instead of the destination URI (e.g. how your reader names the store)."""
    m = read_manifest(dest_uri)
    if m is None:
        raise PublishError(f"nothing published at {dest_uri} (no {MANIFEST})")
    entry = m.get("tables", {}).get(table)
    if entry is None:
        raise PublishError(f"table {table!r} is not in the manifest of {dest_uri}")
    prefix = (base or _reader_base(dest_uri)).rstrip("/")
    return [f"{prefix}/{rel}" for rel in entry["files"]]
