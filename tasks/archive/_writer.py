"""``WarcArchive``: the thread-safe appender of gzipped WARC response records of one run."""

from __future__ import annotations

import fcntl
import io
import os
import threading
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from newsmill.tasks.archive._records import (DEFAULT_IDLE_SEAL_S, DEFAULT_MAX_FILE_BYTES, _NEW_SUFFIX,
                                             _OPEN_SUFFIX)
from newsmill.tasks.archive._recovery import _suppress_oserror, recover_open_files
from newsmill.warehouse.files import fsync_dir


class WarcArchive:
    """Thread-safe appender of WARC response records for one run (one process)."""

    def __init__(self, warehouse_root: str | os.PathLike, run_id: str, *,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, idle_seal_s: float | None = DEFAULT_IDLE_SEAL_S):
        self.root = Path(warehouse_root)
        self.run_id = run_id
        self.max_file_bytes = max_file_bytes
        # a writer nobody closes (a Dask worker's fetcher lives as long as the worker) seals its file
        # after this long without a write; the next write opens a new file
        self.idle_seal_s = idle_seal_s
        self._last_write = 0.0
        self._watcher: threading.Thread | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._n = 0
        self._fh = None
        self._rel: str | None = None
        self._date: str | None = None
        self._writer: WARCWriter | None = None
        self._recovered = False

    def _open(self, date: str) -> None:
        if not self._recovered:  # seal what killed processes left open (they hold no lock any more)
            self._recovered = True
            recover_open_files(self.root)
        self._n += 1
        rel = f"raw/date={date}/{self.run_id}-{os.getpid()}-{self._n}.warc.gz"
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        # created under a temporary name and locked before it gets its .open name: an unlocked .open file
        # is always a dead process's (recover_open_files relies on it)
        tmp = str(path) + _NEW_SUFFIX
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(tmp, str(path) + _OPEN_SUFFIX)
        except BaseException:
            os.close(fd)
            with _suppress_oserror():
                os.unlink(tmp)
            raise
        self._fh = os.fdopen(fd, "wb")
        self._rel, self._date = rel, date
        self._writer = WARCWriter(self._fh, gzip=True)
        info = self._writer.create_warcinfo_record(path.name, {"software": "newsmill", "run-id": self.run_id})
        self._writer.write_record(info)

    def _seal(self) -> None:
        if self._fh is None:
            return
        fh, path = self._fh, self.root / self._rel
        self._fh = self._writer = self._rel = self._date = None
        try:
            fh.flush()
            os.fsync(fh.fileno())
            os.replace(str(path) + _OPEN_SUFFIX, path)
            fsync_dir(path.parent)
        finally:
            fh.close()  # releases the flock only now: the file is sealed under its final name

    def write_response(self, url: str, status: int, headers: Iterable[tuple[str, str]], body: bytes,
                       fetched_at: datetime, *, reason: str = "", http_version: str = "HTTP/1.1",
                       ) -> tuple[str, int, int]:
        """Append one ``response`` record; returns ``(rel_path, offset, length)`` of its gzip member."""
        if fetched_at.tzinfo is None:
            fetched_at = fetched_at.replace(tzinfo=timezone.utc)
        fetched_at = fetched_at.astimezone(timezone.utc)
        date = fetched_at.strftime("%Y-%m-%d")
        hdrs = []
        encoded = False
        for k, v in headers:
            if k.lower() == "transfer-encoding":
                k = "X-Crawler-Transfer-Encoding"
            elif k.lower() == "content-encoding" and v.strip().lower() not in ("", "identity"):
                encoded = True
            hdrs.append((k, v))
        status_line = f"{status} {reason or _REASONS.get(status, 'OK')}"
        http_headers = StatusAndHeaders(status_line, hdrs, protocol=http_version or "HTTP/1.1")
        # build and compress the record outside the lock (zlib releases the GIL, so fetch threads
        # archive in parallel); one gzip member per record, level 6 (warcio's own writer uses 9, which
        # costs ~3x the CPU for a few percent of size). A body kept as sent with Content-Encoding (gzip,
        # br, ...) does not compress again: its member is stored (level 0), still valid gzip for every
        # WARC reader, at ~1/30 of the CPU and +0.1 % of size
        buf = io.BytesIO()
        raw_writer = WARCWriter(buf, gzip=False)
        record = raw_writer.create_warc_record(
            url, "response", payload=io.BytesIO(body), length=len(body), http_headers=http_headers,
            warc_headers_dict={"WARC-Date": fetched_at.strftime("%Y-%m-%dT%H:%M:%SZ")})
        raw_writer.write_record(record)
        comp = zlib.compressobj(0 if encoded else 6, zlib.DEFLATED, zlib.MAX_WBITS + 16)
        return self._append(comp.compress(buf.getvalue()) + comp.flush(), date)

    def append_member(self, member: bytes, fetched_at: datetime) -> tuple[str, int, int]:
        """Append a gzip member that already holds one whole WARC record (an imported record copied
        verbatim: no decoding, digesting or compressing again); returns ``(rel_path, offset, length)``."""
        if fetched_at.tzinfo is None:
            fetched_at = fetched_at.replace(tzinfo=timezone.utc)
        return self._append(bytes(member), fetched_at.astimezone(timezone.utc).strftime("%Y-%m-%d"))

    def _append(self, member: bytes, date: str) -> tuple[str, int, int]:
        with self._lock:
            if self._fh is not None and (self._date != date or self._fh.tell() >= self.max_file_bytes):
                self._seal()
            if self._fh is None:
                self._open(date)
            offset = self._fh.tell()
            self._fh.write(member)
            self._fh.flush()
            self._last_write = time.monotonic()
            if self.idle_seal_s and self._watcher is None:
                self._watcher = threading.Thread(target=self._seal_when_idle, name="newsmill-warc-idle",
                                                 daemon=True)
                self._watcher.start()
            return self._rel, offset, len(member)

    def _seal_when_idle(self) -> None:
        step = max(0.05, min(5.0, self.idle_seal_s / 4))
        while not self._closed.wait(step):
            with self._lock:
                if self._fh is not None and time.monotonic() - self._last_write >= self.idle_seal_s:
                    self._seal()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._seal()

    def __enter__(self) -> "WarcArchive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_REASONS = {200: "OK", 203: "Non-Authoritative Information", 206: "Partial Content"}
