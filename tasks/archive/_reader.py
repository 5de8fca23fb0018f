"""Reading WARC files record by record, totally: ``WarcReader``, ``read_record``, ``iter_warc_records``,
and ``scan_members`` (the gzip members of a raw file, for recovery and deletion)."""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator

from warcio.bufferedreaders import BufferedReader
from warcio.limitreader import LimitReader
from warcio.recordloader import ArcWarcRecordLoader

from newsmill.tasks.archive._records import (DEFAULT_MAX_RECORD_BYTES, _OPEN_SUFFIX, RawRecord, Skipped,
                                             _read_capped, to_raw)
from newsmill.tasks.dates import parse_datetime
from newsmill.tasks.urls import in_domains


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

    def member_span(self) -> tuple[int, int] | None:
        """After :meth:`finish` of a whole record: ``(offset, length)`` of the gzip member that holds it and
        nothing else (a verbatim copy of those bytes is a valid one-record ``.warc.gz`` member); None for an
        uncompressed file, a member with more records in it, or a record that was not whole."""
        item = self._item
        if (not self.gzip or not self._finished or self._verdict is not None or self._extra_records
                or item is None or item.problem is not None):
            return None
        return item.offset, self._src.pos - item.offset

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
            except Exception:  # noqa: BLE001 - a response without readable HTTP headers: to_raw says parse_error
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
            res = to_raw(record, max_bytes)
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

