"""Raw response archive: gzipped WARC files in the warehouse, and WARC readers (issue 4).

Layout: ``<warehouse_root>/raw/date=YYYY-MM-DD/<run_id>-<pid>-<n>.warc.gz`` (date of ``fetched_at``,
UTC). Every record is its own gzip member, so ``(rel_path, offset)`` addresses one record and
``read_record`` decompresses only that member.

Torn files: a file is written under ``<name>.open`` and sealed — flushed, fsynced, renamed to ``<name>``,
directory fsynced — when it is rotated (~``max_file_bytes``, default 100 MB), when the date partition
changes, on ``close()`` (the fetcher closes its archive at the end of a run), or after ``idle_seal_s``
(30 s) without a write (a Dask worker's fetcher is never closed); globs of ``*.warc.gz`` never see a
half-written file. The writing process holds an exclusive ``flock`` on its ``.open`` file
from creation to seal, so an ``.open`` file nobody holds is the leftover of a dead (killed) process:
``recover_open_files`` (called by the next archive of any run, and by ``delete_url``) cuts its torn tail
back to the last whole gzip member, fsyncs and seals it. Offsets are byte offsets and stay valid across
the rename and the cut; ``read_record`` also looks at the ``.open`` name so a record can be read back
during the run.

Reading is record by record and total (``WarcReader``): a record that cannot be used (no
``WARC-Target-URI``, an unparsable header, corrupt gzip data, several records in one gzip member) is
reported as a value and reading goes on with the next gzip member (or, in a plain ``.warc``, after the
record's ``Content-Length``); a record cut by the end of the file (a torn gzip member, including a cut
in its 8-byte trailer) is reported as torn, with its URL when its header was read.

The body stored is the raw body as received: still content-encoded (``Content-Encoding`` kept); the
transfer coding is already removed, so a ``Transfer-Encoding`` header is renamed to
``X-Crawler-Transfer-Encoding`` (the Common Crawl convention) and the HTTP block stays consistent.
``read_record`` / ``iter_warc_records`` return the body with Content-Encoding removed.
"""

from __future__ import annotations

import fcntl
import io
import os
import re
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from warcio.bufferedreaders import BufferedReader
from warcio.limitreader import LimitReader
from warcio.recordloader import ArcWarcRecordLoader
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from newsmill.tasks.fetch import decode_body, is_html_content_type
from newsmill.tasks.dates import parse_datetime
from newsmill.tasks.urls import in_domains
from newsmill.warehouse.files import fsync_dir

__all__ = ["WarcArchive", "RawRecord", "Skipped", "read_record", "iter_warc_records", "decode_record", "decode_body",
           "WarcReader", "WarcItem", "MemberSpan", "scan_members", "recover_open_files"]

DEFAULT_MAX_FILE_BYTES = 100_000_000
DEFAULT_MAX_RECORD_BYTES = 10_000_000
DEFAULT_IDLE_SEAL_S = 30.0


@dataclass(frozen=True, slots=True)
class RawRecord:
    url: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes  # Content-Encoding removed
    fetched_at: datetime | None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    url: str | None
    reason: str  # "not_html" | "truncated" | "too_large" | "http_status" | "parse_error" | "unreadable"
    detail: str = ""  # what was wrong, for the log (e.g. "offset 1234: no WARC-Target-URI header")


def decode_record(record: RawRecord) -> tuple[str, str]:
    """Text and encoding of a record's body, with the same charset logic as the fetcher."""
    return decode_body(record.body, record.content_type)


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
        member = comp.compress(buf.getvalue()) + comp.flush()
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


def _read_capped(stream, cap: int) -> bytes | None:
    out = bytearray()
    while True:
        chunk = stream.read(65536)
        if not chunk:
            return bytes(out)
        out += chunk
        if len(out) > cap:
            return None


def _to_raw(record, cap: int) -> RawRecord | Skipped:
    url = record.rec_headers.get_header("WARC-Target-URI")
    if record.rec_headers.get_header("WARC-Truncated"):
        return Skipped(url, "truncated")
    http = record.http_headers
    if http is None:
        return Skipped(url, "parse_error")
    try:
        status = int(http.get_statuscode())
    except (TypeError, ValueError):
        return Skipped(url, "parse_error")
    ctype = http.get_header("content-type")
    if not (200 <= status < 300):
        return Skipped(url, "http_status")
    if not is_html_content_type(ctype):
        return Skipped(url, "not_html")
    try:
        body = _read_capped(record.content_stream(), cap)
    except Exception as exc:  # corrupt/truncated compressed payload: a value, not a crash
        return Skipped(url, "truncated")
    if body is None:
        return Skipped(url, "too_large")
    length = http.get_header("content-length")
    if length and not http.get_header("content-encoding") and not http.get_header("transfer-encoding"):
        try:
            if len(body) < int(length):
                return Skipped(url, "truncated")
        except ValueError:
            pass
    return RawRecord(url=url, status=status, headers=tuple(http.headers), body=body,
                     fetched_at=parse_datetime(record.rec_headers.get_header("WARC-Date")), content_type=ctype)


# ---------------------------------------------------------------------------------------------- reading

_CHUNK = 1 << 16
_FEED = 8192
_HEAD_BYTES = 16384  # decompressed bytes of a member kept to name a record whose header does not parse
_GZIP_MAGIC = b"\x1f\x8b"
_HTTP_RECORDS = ("response", "request", "revisit")
_URI_RE = re.compile(rb"^WARC-Target-URI:[ \t]*<?([^\s>]+)>?[ \t]*\r?$", re.I | re.M)
_TYPE_RE = re.compile(rb"^WARC-Type:[ \t]*(\S+)", re.I | re.M)


class _Source:
    """A file read forward in chunks; ``pos`` is the absolute offset of ``buf[0]`` (``buf`` is a view:
    consuming a small gzip member does not copy the rest of the chunk)."""

    def __init__(self, fh, start: int):
        self.fh = fh
        self.buf = memoryview(b"")
        self.pos = start
        self.eof = False

    def need(self, n: int = 1) -> bool:
        while len(self.buf) < n and not self.eof:
            data = self.fh.read(max(_CHUNK, n - len(self.buf)))
            if data:
                self.buf = memoryview(bytes(self.buf) + data if len(self.buf) else data)
            else:
                self.eof = True
        return len(self.buf) >= n

    def consume(self, n: int) -> None:
        self.buf = self.buf[n:]
        self.pos += n


class _Member:
    """The decompressed bytes of the gzip member that starts at ``src.pos``; stops at the member's end.
    ``torn``: the file ended inside the member; ``error``: the compressed data is corrupt."""

    def __init__(self, src: _Source):
        self.src = src
        self._d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self.ended = False
        self.torn = False
        self.error: str | None = None
        self.head = bytearray()

    def read(self, n: int = -1) -> bytes:
        if self.ended:
            return b""
        n = n if n and n > 0 else 4 * _CHUNK
        while True:
            if not self.src.buf and not self.src.need(1):
                self.ended = self.torn = True
                return b""
            data = self.src.buf[:_FEED]  # small feeds: zlib copies what is left after a member's end
            try:
                out = self._d.decompress(data, n)
            except zlib.error as exc:
                self.ended, self.error = True, str(exc)
                return b""
            # at the member's end the input left over is in unused_data (unconsumed_tail may still hold
            # the same bytes when the output limit was hit in that call)
            if self._d.eof:
                self.src.consume(len(data) - len(self._d.unused_data))
                self.ended = True
            else:
                self.src.consume(len(data) - len(self._d.unconsumed_tail))
            if out or self.ended:
                if len(self.head) < _HEAD_BYTES:
                    self.head += out[: _HEAD_BYTES - len(self.head)]
                return out

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class _Plain:
    """An uncompressed ``.warc`` read forward (records are delimited by their ``Content-Length``)."""

    def __init__(self, src: _Source):
        self.src = src
        self.torn = False
        self.error = None

    def read(self, n: int = -1) -> bytes:
        n = n if n and n > 0 else 4 * _CHUNK
        if not self.src.need(1):
            return b""
        out = bytes(self.src.buf[:n])
        self.src.consume(len(out))
        return out


@dataclass(slots=True)
class WarcItem:
    """One record position of a WARC file. ``record`` is warcio's record (WARC headers parsed, HTTP
    headers parsed for http(s) response/request/revisit records, the block readable from
    ``record.raw_stream`` / ``record.content_stream()``), or None when ``problem`` says why it cannot be
    used. ``kind`` names the problem: ``no_target_uri``, ``bad_header``, ``corrupt_gzip``,
    ``not_one_record_per_member``, ``torn`` (the file ends inside the record)."""

    offset: int
    rec_type: str | None
    url: str | None
    record: object | None
    problem: str | None = None
    kind: str | None = None


class WarcReader:
    """Iterate the records of a ``.warc`` / ``.warc.gz`` stream from ``start`` (the file's current
    position) as ``WarcItem`` values, never raising on bad data (I/O errors still raise).

    After taking an item, a caller that reads the record's body calls ``finish()``: it reads the rest of
    the record and returns None when the record was whole, else ``"torn"`` (the file ends inside it),
    ``"corrupt"`` (gzip data error) or ``"short"`` (the block is shorter than its ``Content-Length``).
    ``position`` is the byte offset reached (progress)."""

    def __init__(self, fh, start: int | None = None):
        self._src = _Source(fh, fh.tell() if start is None else start)
        self._src.need(2)
        self.gzip = bytes(self._src.buf[:2]) == _GZIP_MAGIC
        self._loader = ArcWarcRecordLoader(verify_http=False, arc2warc=False)
        self._item: WarcItem | None = None
        self._rec = None
        self._extra_records = False
        self._stream = None
        self._reader = None
        self._verdict: str | None = None
        self._finished = True

    @property
    def position(self) -> int:
        return self._src.pos

    def finish(self) -> str | None:
        if self._finished:
            return self._verdict
        self._finished = True
        item, stream, reader = self._item, self._stream, self._reader
        short = False
        rec, self._rec = self._rec, None
        if rec is not None:
            raw = rec.raw_stream
            while raw.read(1 << 20):
                pass
            short = isinstance(raw, LimitReader) and raw.limit > 0
        if self.gzip:
            # only the record's trailing blank lines may be left in its member
            rest = reader.read(4096)
            extra = False
            while rest:
                extra = extra or bool(rest.strip())
                rest = reader.read(1 << 20)
            stream.drain()
            if extra and item is not None and item.problem is None:
                self._extra_records = True
        verdict = None
        if stream.error:
            verdict = "corrupt"
        elif stream.torn or (short and self._src.eof and not self._src.buf):
            verdict = "torn"
        elif short:
            verdict = "short"
        self._verdict = verdict
        return verdict

    def __iter__(self) -> Iterator[WarcItem]:
        src = self._src
        after_corrupt = False
        if not self.gzip:
            self._stream = _Plain(src)
            self._reader = BufferedReader(self._stream, block_size=16384)
        while True:
            self._extra_records = False
            statusline = None
            if self.gzip:
                if not src.need(1):
                    return
                if not src.need(2) or bytes(src.buf[:2]) != _GZIP_MAGIC:
                    item = self._resync()
                    self._item, self._finished, self._verdict = None, True, None
                    if not after_corrupt:  # else: the rest of the corrupt member, already reported
                        yield item
                    after_corrupt = False
                    continue
                offset = src.pos
                self._stream = _Member(src)
                self._reader = BufferedReader(self._stream, block_size=16384)
            else:
                while True:  # blank lines between records
                    offset = src.pos - self._reader.rem_length()
                    line = self._reader.readline()
                    if not line or line.strip():
                        break
                if not line:
                    return
                statusline = line.decode("utf-8", "replace").rstrip("\r\n")
            item = self._parse(offset, statusline)
            if item is None:  # an empty gzip member
                self._stream.drain()
                if src.pos <= offset:
                    src.consume(1)
                continue
            self._item, self._finished, self._verdict = item, False, None
            yield item
            verdict = self.finish()
            after_corrupt = verdict == "corrupt" or item.kind == "corrupt_gzip"
            if self.gzip and src.pos <= offset:  # corrupt at its first bytes: resync after this header
                src.consume(1)
            if self.gzip and self._extra_records:
                yield WarcItem(offset=offset, rec_type=None, url=None, record=None, kind="not_one_record_per_member",
                               problem=f"offset {offset}: more than one record in a gzip member (recompress the "
                                       "file with one member per record, e.g. `warcio recompress`)")
            if verdict == "torn" and item.record is None and item.kind != "torn":
                yield self._torn(offset, item)
            if not self.gzip and (verdict == "torn" or (item.record is None and item.kind != "no_target_uri")):
                if item.kind == "bad_header":
                    # a plain .warc record without a readable header or Content-Length: nothing delimits
                    # the next record
                    yield WarcItem(offset=offset, rec_type=None, url=None, record=None, kind="rest_unreadable",
                                   problem=f"offset {offset}: rest of the file unreadable (a plain .warc has no "
                                           "record boundary to resume at)")
                return

    def _torn(self, offset: int, item: WarcItem) -> WarcItem:
        return WarcItem(offset=offset, rec_type=item.rec_type, url=item.url, record=None, kind="torn",
                        problem=f"offset {offset}: the file ends inside this record (torn end)")

    def _parse(self, offset: int, statusline: str | None) -> WarcItem | None:
        try:
            rec = self._loader.parse_record_stream(self._reader, statusline, known_format="warc",
                                                   no_record_parse=True)
        except EOFError:
            if self.gzip and not self._stream.torn and not self._stream.error:
                return None
            return self._unparsed(offset, "the file ends inside the record header")
        except Exception as exc:  # noqa: BLE001 - any malformed header is a value
            return self._unparsed(offset, f"{type(exc).__name__}: {str(exc).strip()[:200]}")
        rec_type = rec.rec_type
        url = rec.rec_headers.get_header("WARC-Target-URI")
        length = rec.rec_headers.get_header("Content-Length")
        if length is None or rec.length is None or not str(length).strip().isdigit():
            return WarcItem(offset=offset, rec_type=rec_type, url=url, record=None, kind="bad_header",
                            problem=f"offset {offset}: no valid Content-Length in the WARC header")
        self._rec = rec  # drained by finish(): its block delimits the next record
        if rec_type in _HTTP_RECORDS and not url:
            return WarcItem(offset=offset, rec_type=rec_type, url=None, record=None, kind="no_target_uri",
                            problem=f"offset {offset}: a {rec_type} record without a WARC-Target-URI header")
        if rec_type in _HTTP_RECORDS and url.lower().startswith(("http:", "https:")):
            try:
                rec.http_headers = self._loader.load_http_headers(rec_type, url, rec.raw_stream, rec.length)
            except Exception:  # noqa: BLE001 - a response without readable HTTP headers: _to_raw says parse_error
                rec.http_headers = None
        return WarcItem(offset=offset, rec_type=rec_type, url=url, record=rec)

    def _unparsed(self, offset: int, why: str) -> WarcItem:
        head = bytes(getattr(self._stream, "head", b""))
        m = _URI_RE.search(head)
        t = _TYPE_RE.search(head)
        url = m.group(1).decode("utf-8", "replace") if m else None
        rec_type = t.group(1).decode("ascii", "replace").lower() if t else None
        if self.gzip:
            self._stream.drain()
        if getattr(self._stream, "torn", False) or (not self.gzip and self._src.eof and not self._src.buf):
            return WarcItem(offset=offset, rec_type=rec_type, url=url, record=None, kind="torn",
                            problem=f"offset {offset}: the file ends inside this record (torn end; {why})")
        if getattr(self._stream, "error", None):
            return WarcItem(offset=offset, rec_type=rec_type, url=url, record=None, kind="corrupt_gzip",
                            problem=f"offset {offset}: corrupt gzip data ({self._stream.error})")
        return WarcItem(offset=offset, rec_type=rec_type, url=url, record=None, kind="bad_header",
                        problem=f"offset {offset}: unreadable WARC header ({why})")

    def _resync(self) -> WarcItem:
        """Bytes that do not start a gzip member (corrupt data after a bad member, or junk): skip to the
        next gzip member header, or to the end of the file."""
        src = self._src
        start = src.pos
        while True:
            src.need(_CHUNK)
            i = bytes(src.buf).find(b"\x1f\x8b\x08", 1 if src.pos == start else 0)
            if i >= 0:
                src.consume(i)
                break
            if src.eof:
                keep = 0
                src.consume(len(src.buf))
                break
            keep = 2  # a header split across chunks
            src.consume(max(0, len(src.buf) - keep))
        return WarcItem(offset=start, rec_type=None, url=None, record=None, kind="corrupt_gzip",
                        problem=f"offset {start}: {src.pos - start} bytes that are not a gzip member skipped")


def read_record(warehouse_root: str | os.PathLike, rel_path: str, offset: int, *,
                max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> RawRecord:
    """Read the record at ``offset`` of ``rel_path`` (also found under its ``.open`` name while the
    run writes). Raises ``ValueError`` when no whole, readable response record is there."""
    path = Path(warehouse_root) / rel_path
    if not path.exists() and Path(str(path) + _OPEN_SUFFIX).exists():
        path = Path(str(path) + _OPEN_SUFFIX)
    with open(path, "rb") as fh:
        fh.seek(offset)
        reader = WarcReader(fh, offset)
        for item in reader:
            if item.record is None:
                raise ValueError(f"{rel_path}@{offset}: {item.problem}")
            rec = item.record
            if rec.rec_type != "response":
                raise ValueError(f"{rel_path}@{offset}: a {rec.rec_type} record, not a response")
            http = rec.http_headers
            if http is None:
                raise ValueError(f"{rel_path}@{offset}: no HTTP headers")
            body = _read_capped(rec.content_stream(), max_bytes)
            if body is None:
                raise ValueError(f"{rel_path}@{offset}: body larger than {max_bytes} bytes")
            verdict = reader.finish()
            if verdict:
                raise ValueError(f"{rel_path}@{offset}: record {verdict} (truncated)")
            try:
                status = int(http.get_statuscode())
            except (TypeError, ValueError):
                raise ValueError(f"{rel_path}@{offset}: bad HTTP status line") from None
            return RawRecord(
                url=rec.rec_headers.get_header("WARC-Target-URI"), status=status,
                headers=tuple(http.headers), body=body,
                fetched_at=parse_datetime(rec.rec_headers.get_header("WARC-Date")),
                content_type=http.get_header("content-type"))
    raise ValueError(f"{rel_path}@{offset}: no WARC record")


def iter_warc_records(path: str | os.PathLike, domains: Iterable[str] | None = None,
                      since: datetime | None = None, until: datetime | None = None, *,
                      max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[RawRecord | Skipped]:
    """Stream a ``.warc`` / ``.warc.gz`` (e.g. CC-NEWS): yields HTML 2xx ``response`` records as
    ``RawRecord`` and a ``Skipped(url, reason, detail)`` for each response record that is not HTML, not
    2xx, truncated (``WARC-Truncated``, a payload shorter than announced, a cut gzip member, a torn end
    of file), too large or unparsable, and ``Skipped(None, "unreadable", detail)`` for a record that
    cannot be used at all (no ``WARC-Target-URI``, a broken header, corrupt gzip data): reading goes on
    after it. Other record types and records outside ``domains`` / ``[since, until)`` are passed over
    silently. One record in memory at a time."""
    wanted = {d.lower().removeprefix("www.") for d in domains} if domains else None
    with open(path, "rb") as fh:
        reader = WarcReader(fh)
        for item in reader:
            if item.record is None:
                if item.url and item.rec_type in (None, "response") and in_domains(item.url, wanted):
                    yield Skipped(item.url, "truncated" if item.kind in ("torn", "corrupt_gzip") else "parse_error",
                                  item.problem or "")
                elif not item.url:
                    yield Skipped(None, "unreadable", item.problem or "")
                continue
            record = item.record
            if record.rec_type != "response":
                continue
            url = item.url
            if not in_domains(url, wanted):
                continue
            if since is not None or until is not None:
                when = parse_datetime(record.rec_headers.get_header("WARC-Date"))
                if when is not None and ((since and when < since) or (until and when >= until)):
                    continue
            res = _to_raw(record, max_bytes)
            verdict = reader.finish()
            if verdict:
                res = Skipped(url, "truncated", f"offset {item.offset}: record {verdict}")
            yield res


# ---------------------------------------------------------------------------------------------- raw files


@dataclass(frozen=True, slots=True)
class MemberSpan:
    """One gzip member of a ``.warc.gz``: where it is, which record it holds, whether it is whole."""

    offset: int
    length: int
    url: str | None
    rec_type: str | None
    whole: bool


def scan_members(fh, start: int = 0) -> Iterator[MemberSpan]:
    """The gzip members of a ``.warc.gz`` with the ``WARC-Target-URI`` / ``WARC-Type`` of their record
    (read from the record header; the rest of each member is inflated and discarded). A torn or corrupt
    member is a span with ``whole=False`` reaching to where reading could go on. Never raises on bad data."""
    fh.seek(start)
    src = _Source(fh, start)
    while src.need(1):
        offset = src.pos
        if not src.need(2) or bytes(src.buf[:2]) != _GZIP_MAGIC:
            i = bytes(src.buf).find(b"\x1f\x8b\x08", 1)
            while i < 0 and not src.eof:
                src.need(len(src.buf) + _CHUNK)
                i = bytes(src.buf).find(b"\x1f\x8b\x08", 1)
            src.consume(i if i >= 0 else len(src.buf))
            yield MemberSpan(offset, src.pos - offset, None, None, False)
            continue
        m = _Member(src)
        while len(m.head) < _HEAD_BYTES and b"\r\n\r\n" not in m.head and m.read(4096):
            pass
        head = bytes(m.head).split(b"\r\n\r\n", 1)[0]
        m.drain()
        if src.pos <= offset:  # corrupt at its first bytes: the next span starts after this header
            src.consume(1)
        u, t = _URI_RE.search(head), _TYPE_RE.search(head)
        yield MemberSpan(offset, src.pos - offset, u.group(1).decode("utf-8", "replace") if u else None,
                         t.group(1).decode("ascii", "replace").lower() if t else None,
                         not (m.torn or m.error))


_OPEN_SUFFIX = ".open"
_NEW_SUFFIX = ".open.new"
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
