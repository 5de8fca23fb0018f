"""The warehouse's files on disk: layout, generations, atomic writes and the single-writer lock.

Layout under the warehouse root::

    _meta.json                       {"schema_version": N, ...}
    _lock                            flock()ed by the single writer; holds pid/host/started/run_id
    _staging/                        files being written (never globbed by readers; cleaned by writers)
    _data/<table>/g000001/date=YYYY-MM-DD/part-<run_id>-<batch_id>-<uuid>.parquet
    <table> -> _data/<table>/g000001 relative symlink to the table's *current generation*
    raw/                             WARC files (tasks/archive/), referenced by pages.warc_file
    views.sql                        DuckDB CLI script defining the views (absolute paths)

Every file is written to ``_staging``, flushed + fsynced, ``os.replace``d into its partition
directory and the directory fsynced, so readers never see a torn file.

Generations: files are immutable. Compaction and takedowns (``warehouse/compact.py``) build a new
generation directory (hard links for untouched files, rewritten files for the rest) and atomically swap
the ``<table>`` symlink. ``catalog.connect`` resolves the symlink once, so a connection reads one
consistent snapshot — never the merged file *and* its sources, never a gap. Superseded generations are
removed after a grace period (``GENERATION_GRACE_S``).

This module knows nothing of rows: ``store`` (writes), ``catalog`` (reads) and ``compact`` build on it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from newsmill.tasks.errors import WarehouseError, WarehouseLocked
from newsmill.warehouse.schema import PARTITION_COLUMN, SCHEMA_VERSION, TABLES, file_metadata

GENERATION_GRACE_S = 600.0
_GEN_RE = re.compile(r"^g(\d{6,})$")


# ---------------------------------------------------------------------------------------------------
# paths and generations


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def sanitize(value: Any, max_len: int = 80) -> str:
    """A safe single path component from an arbitrary id: ``../../x`` -> ``_.._x`` (no separators, no
    leading dot, never empty)."""
    s = re.sub(r"[^A-Za-z0-9._-]", "_", str(value if value is not None else ""))
    s = s.lstrip(".")[:max_len]
    return s or "_"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _inside(root: Path, path: Path) -> Path:
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise WarehouseError(f"refusing to write outside the warehouse: {path}")
    return path


def staging_dir(root: Path) -> Path:
    return root / "_staging"


def data_dir(root: Path, table: str) -> Path:
    return root / "_data" / table


def generations(root: Path, table: str) -> list[tuple[int, Path]]:
    d = data_dir(root, table)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = _GEN_RE.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def current_generation(root: Path, table: str) -> Path | None:
    """The real directory of the table's current generation (None when the table was never written)."""
    link = root / table
    if not link.is_symlink() and not link.is_dir():
        return None
    return Path(os.path.realpath(link))


def has_files(root: Path, table: str) -> bool:
    """Whether the current generation of ``table`` holds at least one Parquet file (no query)."""
    gen = current_generation(root, table)
    return gen is not None and next(gen.rglob("*.parquet"), None) is not None

def swap_generation(root: Path, table: str, new_gen: Path) -> Path | None:
    """Atomically point ``<root>/<table>`` at ``new_gen``; returns the previous generation dir and
    marks it superseded (for the delayed garbage collection)."""
    old = current_generation(root, table)
    tmp = staging_dir(root) / f"{table}.link.{uuid.uuid4().hex[:8]}"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(new_gen, root), tmp)
    os.replace(tmp, root / table)
    fsync_dir(root)
    if old is not None and old.is_dir() and old != new_gen:
        (old / "_superseded").write_text(str(time.time()))
    return old


def new_generation_dir(root: Path, table: str) -> Path:
    gens = generations(root, table)
    n = (gens[-1][0] + 1) if gens else 1
    p = data_dir(root, table) / f"g{n:06d}"
    p.mkdir(parents=True)
    return p


def gc_generations(root: Path, table: str, grace_s: float = GENERATION_GRACE_S) -> int:
    """Remove superseded generations older than ``grace_s`` and orphans (newer than the current one,
    left by a crash mid-compaction). Caller holds the writer lock."""
    cur = current_generation(root, table)
    removed = 0
    now = time.time()
    for _n, p in generations(root, table):
        if cur is not None and p == cur:
            continue
        marker = p / "_superseded"
        if marker.exists():
            try:
                since = float(marker.read_text() or 0)
            except ValueError:
                since = 0.0
            if now - since < grace_s:
                continue
        shutil.rmtree(p, ignore_errors=True)
        removed += 1
    return removed


def parquet_files(gen: Path | None) -> list[Path]:
    if gen is None or not gen.is_dir():
        return []
    return sorted(p for p in gen.glob("*/*.parquet"))


# long free-text columns get no min/max statistics (they only bloat every footer)
_NO_STATS = {"text", "description", "title", "copyright_notice", "error", "parameters", "counts"}


def stats_columns(table: str, tbl: pa.Table) -> list[str]:
    return [c for c in tbl.column_names if c not in _NO_STATS]


@contextlib.contextmanager
def staged_file(root: Path, dest: Path) -> Iterator[Any]:
    """A binary file handle in staging that becomes ``dest`` (inside the warehouse) when the block ends:
    fsync, rename, fsync of the directory. On an error the staging file is removed and ``dest`` is
    untouched."""
    _inside(root, dest)
    st = staging_dir(root)
    st.mkdir(parents=True, exist_ok=True)
    tmp = st / f"{dest.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


def with_file_metadata(table: str, schema: pa.Schema) -> pa.Schema:
    meta = dict(schema.metadata or {})
    meta.update(file_metadata(table))
    return schema.with_metadata(meta)


def write_file_atomic(root: Path, table: str, tbl: pa.Table, dest: Path) -> Path:
    """Write ``tbl`` to staging, fsync, rename to ``dest`` (inside the warehouse), fsync its dir."""
    tbl = tbl.replace_schema_metadata(with_file_metadata(table, tbl.schema).metadata)
    with staged_file(root, dest) as f:
        pq.write_table(tbl, f, compression="zstd", write_statistics=stats_columns(table, tbl))
    return dest


def split_by_date(table: str, tbl: pa.Table, default: datetime) -> Iterator[tuple[str, pa.Table]]:
    col = PARTITION_COLUMN[table]
    ts = tbl.column(col)
    ts = pc.fill_null(ts, pa.scalar(default, type=ts.type))
    days = pc.strftime(ts, format="%Y-%m-%d")
    for day in sorted(set(days.to_pylist())):
        yield day, tbl.filter(pc.equal(days, day))


def ensure_meta(root: Path) -> None:
    meta = root / "_meta.json"
    data: dict[str, Any] = {}
    if meta.exists():
        try:
            data = json.loads(meta.read_text())
        except ValueError:
            data = {}
        stored = data.get("schema_version")
        if isinstance(stored, int) and stored > SCHEMA_VERSION:
            raise WarehouseError(
                f"warehouse {root} has schema version {stored}, newer than this newsmill ({SCHEMA_VERSION})"
            )
        if stored == SCHEMA_VERSION:
            return
    data.setdefault("created_at", utcnow().isoformat())
    data["schema_version"] = SCHEMA_VERSION
    data["tables"] = list(TABLES)
    tmp = staging_dir(root) / f"_meta.{uuid.uuid4().hex[:8]}.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, meta)


def ensure_tables(root: Path) -> None:
    for t in TABLES:
        if current_generation(root, t) is None:
            swap_generation(root, t, new_generation_dir(root, t))


# ---------------------------------------------------------------------------------------------------
# lock


class WriterLock:
    """The single-writer lock ``<root>/_lock`` (``flock``); holds pid/host/started/run_id of its holder.
    In a process that claimed the warehouse (:func:`claim_writer_lock`), acquiring takes the claimed lock
    over (and releasing hands it back) instead of locking again."""

    def __init__(self, root: Path, run_id: str, wait_s: float | None):
        self.path = root / "_lock"
        self.run_id = run_id
        self.wait_s = wait_s
        self.fd: int | None = None
        self._borrowed = False

    def holder(self) -> str:
        info: dict = {}
        for _ in range(20):  # the holder writes who it is right after taking the lock: give it a second
            try:
                info = json.loads(self.path.read_text() or "{}")
            except (OSError, ValueError):
                info = {}
            if info:
                break
            time.sleep(0.05)
        if not info:
            return "another process"
        return (
            f"pid {info.get('pid')} on {info.get('host')} (run {info.get('run_id')}, "
            f"since {info.get('started')})"
        )

    def acquire(self) -> None:
        claimed = _claimed.get(os.path.abspath(self.path))
        if claimed is not None:
            with _claimed_guard:
                if not claimed.lent:
                    claimed.lent = self._borrowed = True
                    self.fd = claimed.fd
                    self._write_info()
                    return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + (self.wait_s or 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if self.wait_s is None or time.monotonic() >= deadline:
                    holder = self.holder()
                    os.close(fd)
                    waited = f" after waiting {self.wait_s:g}s" if self.wait_s else ""
                    raise WarehouseLocked(
                        f"warehouse {self.path.parent} is locked by {holder}{waited}; "
                        f"only one writer at a time"
                    ) from None
                time.sleep(0.05)
        self.fd = fd
        self._write_info()

    def _write_info(self) -> None:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": utcnow().isoformat(),
            "run_id": self.run_id,
        }
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(info).encode(), 0)
        os.fsync(self.fd)

    def release(self) -> None:
        if self._borrowed:
            with _claimed_guard:
                _claimed[os.path.abspath(self.path)].lent = False
            self.fd, self._borrowed = None, False
            return
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class _Claim:
    def __init__(self, lock: WriterLock):
        self.lock, self.fd, self.lent = lock, lock.fd, False


_claimed: dict[str, _Claim] = {}
_claimed_guard = threading.Lock()


def claim_writer_lock(root: Path, label: str = "starting") -> None:
    """Take the writer lock of ``root`` now and keep it for the rest of this process (released at exit,
    and by the kernel if the process dies): a command that will write refuses at once, on one line, when
    another writer holds it — and nobody can take it between this check and the flow's own writer, which
    takes the claimed lock over (two ingests started in the same second on a new warehouse both passed a
    check-only pre-flight, and the loser failed inside its flow with a Prefect traceback). Raises
    ``WarehouseLocked``. Claiming a warehouse this process already claimed is a no-op."""
    path = os.path.abspath(Path(root) / "_lock")
    with _claimed_guard:
        if path in _claimed:
            return
        lock = WriterLock(Path(root), label, None)
        lock.acquire()
        _claimed[path] = _Claim(lock)

    def release():
        with _claimed_guard:
            claim = _claimed.pop(path, None)
        if claim is not None:
            claim.lock.release()

    atexit.register(release)


def link_file(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (a copy, fsynced, where links are impossible): files are immutable."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
        with open(dst, "rb") as f:
            os.fsync(f.fileno())


def finish_generation(root: Path, table: str, new_gen: Path) -> None:
    """fsync a freshly built generation and make it current."""
    for d in new_gen.iterdir():
        if d.is_dir():
            fsync_dir(d)
    fsync_dir(new_gen)
    swap_generation(root, table, new_gen)
