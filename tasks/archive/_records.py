"""Values of the raw archive: ``RawRecord``, ``Skipped``, and the conversion of a warcio record into one."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from datetime import datetime

from newsmill.tasks.dates import parse_datetime
from newsmill.tasks.fetch import decode_body, is_html_content_type

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


def record_page(record: RawRecord) -> str | bytes:
    """What extraction gets of a record (``flows.engine.extract`` takes text or UTF-8 bytes): its body as
    it is when the fetcher's charset logic decoded it as UTF-8 — strictly, the whole body, no BOM (a BOM
    is stripped and a broken sequence replaced), so its text encoded again is these very bytes and the
    flow process skips that copy (~0.4 ms per 170 KB page) — else its decoded text."""
    text, codec = decode_record(record)
    if codec == "utf-8" and not record.body.startswith(codecs.BOM_UTF8):
        return record.body
    return text


_OPEN_SUFFIX = ".open"
_NEW_SUFFIX = ".open.new"


def _read_capped(stream, cap: int) -> bytes | None:
    out = bytearray()
    while True:
        chunk = stream.read(65536)
        if not chunk:
            return bytes(out)
        out += chunk
        if len(out) > cap:
            return None


def to_raw(record, cap: int) -> RawRecord | Skipped:
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

