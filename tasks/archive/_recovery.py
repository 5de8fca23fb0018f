"""``recover_open_files``: seal the ``.open`` raw files that dead processes left behind."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from newsmill.tasks.archive._reader import scan_members
from newsmill.tasks.archive._records import _NEW_SUFFIX, _OPEN_SUFFIX
from newsmill.warehouse.files import fsync_dir

_STALE_NEW_S = 60.0


class _suppress_oserror:
    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        return typ is not None and issubclass(typ, OSError)


def recover_open_files(warehouse_root: str | os.PathLike, *, wait_s: float = 0.0) -> dict[str, list[str]]:
    """Seal the ``raw/**/*.warc.gz.open`` files of dead processes: each one nobody holds a lock on is cut
    back to the end of its last whole gzip member (a record being written when the process died is
    dropped: no ``pages`` row can point at it), fsynced and renamed to its ``.warc.gz`` name; a file with
    no whole record is removed. Files of live writers are waited for up to ``wait_s`` seconds (they seal
    themselves), then left alone. Returns ``{"sealed": [...], "removed": [...], "live": [...]}``
    (paths relative to the warehouse)."""
    root = Path(warehouse_root)
    out: dict[str, list[str]] = {"sealed": [], "removed": [], "live": []}
    raw = root / "raw"
    if not raw.is_dir():
        return out
    now = time.time()
    for p in sorted(raw.rglob("*" + _NEW_SUFFIX)):  # a crash between create and rename: empty leftovers
        with _suppress_oserror():
            if now - p.stat().st_mtime > _STALE_NEW_S:
                p.unlink()
    deadline = time.monotonic() + wait_s
    for p in sorted(raw.rglob("*.warc.gz" + _OPEN_SUFFIX)):
        rel = os.path.relpath(p, root)
        try:
            fd = os.open(p, os.O_RDWR)
        except FileNotFoundError:  # sealed by its writer meanwhile
            continue
        try:
            locked = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    locked = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.1)
            if not locked:
                out["live"].append(rel)
                continue
            try:
                same = os.stat(p).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # its writer sealed it while we waited
                continue
            end = 0
            with os.fdopen(os.dup(fd), "rb") as fh:
                for span in scan_members(fh):
                    if not span.whole:
                        break
                    end = span.offset + span.length
            sealed = Path(str(p)[: -len(_OPEN_SUFFIX)])
            if sealed.exists():  # never overwrite a sealed file: keep these records under another name
                sealed = sealed.with_name(sealed.name[: -len(".warc.gz")] + f".r{os.getpid()}-{time.time_ns()}.warc.gz")
            if end == 0:
                os.unlink(p)
                out["removed"].append(rel)
            else:
                if end < os.fstat(fd).st_size:
                    os.ftruncate(fd, end)
                os.fsync(fd)
                os.rename(p, sealed)
                out["sealed"].append(os.path.relpath(sealed, root))
            fsync_dir(p.parent)
        finally:
            os.close(fd)
    return out
