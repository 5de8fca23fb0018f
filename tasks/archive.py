"""Raw response archive: gzipped WARC files in the warehouse, and WARC readers (issue 4).

Layout: ``<warehouse_root>/raw/date=YYYY-MM-DD/<run_id>-<pid>-<n>.warc.gz`` (date of ``fetched_at``,
UTC). Every record is its own gzip member, so ``(rel_path, offset)`` addresses one record and
``read_record`` decompresses only that member.

Torn files: a file is written under ``<name>.open`` and renamed to ``<name>`` when it is rotated
(~``max_file_bytes``, default 100 MB), when the date partition changes, or on ``close()``; readers and
globs of ``*.warc.gz`` never see a half-written file. Offsets are byte offsets and stay valid across the
rename; ``read_record`` also looks at the ``.open`` name so a record can be read back during the run.

The body stored is the raw body as received: still content-encoded (``Content-Encoding`` kept); the
transfer coding is already removed, so a ``Transfer-Encoding`` header is renamed to
``X-Crawler-Transfer-Encoding`` (the Common Crawl convention) and the HTTP block stays consistent.
``read_record`` / ``iter_warc_records`` return the body with Content-Encoding removed.
"""

from __future__ import annotations

import io
import os
import threading
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from newsmill.tasks.fetch import decode_body, is_html_content_type

__all__ = ["WarcArchive", "RawRecord", "Skipped", "read_record", "iter_warc_records", "decode_record", "decode_body"]

DEFAULT_MAX_FILE_BYTES = 100_000_000
DEFAULT_MAX_RECORD_BYTES = 10_000_000


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
    reason: str  # "not_html" | "truncated" | "too_large" | "http_status" | "parse_error"


def decode_record(record: RawRecord) -> tuple[str, str]:
    """Text and encoding of a record's body, with the same charset logic as the fetcher."""
    return decode_body(record.body, record.content_type)


class WarcArchive:
    """Thread-safe appender of WARC response records for one run (one process)."""

    def __init__(self, warehouse_root: str | os.PathLike, run_id: str, *,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES):
        self.root = Path(warehouse_root)
        self.run_id = run_id
        self.max_file_bytes = max_file_bytes
        self._lock = threading.Lock()
        self._n = 0
        self._fh = None
        self._rel: str | None = None
        self._date: str | None = None
        self._writer: WARCWriter | None = None

    def _open(self, date: str) -> None:
        self._n += 1
        rel = f"raw/date={date}/{self.run_id}-{os.getpid()}-{self._n}.warc.gz"
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(str(path) + ".open", "wb")
        self._rel, self._date = rel, date
        self._writer = WARCWriter(self._fh, gzip=True)
        info = self._writer.create_warcinfo_record(path.name, {"software": "newsmill", "run-id": self.run_id})
        self._writer.write_record(info)

    def _seal(self) -> None:
        if self._fh is None:
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        path = self.root / self._rel
        os.replace(str(path) + ".open", path)
        self._fh = self._writer = self._rel = self._date = None

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
            return self._rel, offset, len(member)

    def close(self) -> None:
        with self._lock:
            self._seal()

    def __enter__(self) -> "WarcArchive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_REASONS = {200: "OK", 203: "Non-Authoritative Information", 206: "Partial Content"}


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


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
                     fetched_at=_parse_date(record.rec_headers.get_header("WARC-Date")), content_type=ctype)


def read_record(warehouse_root: str | os.PathLike, rel_path: str, offset: int, *,
                max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> RawRecord:
    """Read the record at ``offset`` of ``rel_path`` (also found under its ``.open`` name while the
    run writes). Raises ``ValueError`` when no readable response record is there."""
    path = Path(warehouse_root) / rel_path
    if not path.exists() and Path(str(path) + ".open").exists():
        path = Path(str(path) + ".open")
    with open(path, "rb") as fh:
        fh.seek(offset)
        for record in ArchiveIterator(fh):
            if record.rec_type != "response":
                raise ValueError(f"{rel_path}@{offset}: a {record.rec_type} record, not a response")
            http = record.http_headers
            body = _read_capped(record.content_stream(), max_bytes)
            if body is None:
                raise ValueError(f"{rel_path}@{offset}: body larger than {max_bytes} bytes")
            return RawRecord(
                url=record.rec_headers.get_header("WARC-Target-URI"), status=int(http.get_statuscode()),
                headers=tuple(http.headers), body=body,
                fetched_at=_parse_date(record.rec_headers.get_header("WARC-Date")),
                content_type=http.get_header("content-type"))
    raise ValueError(f"{rel_path}@{offset}: no WARC record")


def _domain_match(url: str | None, domains: set[str] | None) -> bool:
    if not domains:
        return True
    host = (urlsplit(url or "").hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in domains)


def iter_warc_records(path: str | os.PathLike, domains: Iterable[str] | None = None,
                      since: datetime | None = None, until: datetime | None = None, *,
                      max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[RawRecord | Skipped]:
    """Stream a ``.warc`` / ``.warc.gz`` (e.g. CC-NEWS): yields HTML 2xx ``response`` records as
    ``RawRecord`` and a ``Skipped(url, reason)`` for each response record that is not HTML, not 2xx,
    truncated (``WARC-Truncated`` or a payload shorter than announced), too large or unreadable.
    Other record types and records outside ``domains`` / ``[since, until)`` are passed over silently.
    One record in memory at a time; a torn end of file ends the iteration with a ``Skipped``."""
    wanted = {d.lower().removeprefix("www.") for d in domains} if domains else None
    with open(path, "rb") as fh:
        it = iter(ArchiveIterator(fh))
        while True:
            try:
                record = next(it)
            except StopIteration:
                return
            except Exception as exc:  # torn/corrupt file: report and stop, never crash the import
                yield Skipped(None, "truncated")
                return
            if record.rec_type != "response":
                continue
            url = record.rec_headers.get_header("WARC-Target-URI")
            if not _domain_match(url, wanted):
                continue
            if since is not None or until is not None:
                when = _parse_date(record.rec_headers.get_header("WARC-Date"))
                if when is not None and ((since and when < since) or (until and when >= until)):
                    continue
            yield _to_raw(record, max_bytes)
