"""One HTTP exchange (one hop, one try): request headers, status, Content-Type and size checks, the body
read raw through the bounded decoders, and every failure as an ``Attempt`` value (never an exception)."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import httpx

from newsmill.tasks.fetch._content import looks_like_html, media_type, type_ok
from newsmill.tasks.fetch._decoders import ACCEPT_ENCODING, BoundedDecoder, DecodingError, TooLarge
from newsmill.tasks.fetch._guard import BlockedAddress
from newsmill.tasks.fetch._models import Conditional
from newsmill.tasks.fetch._transports import drain, ssl_failure, time_left

REDIRECT_STATUSES = (301, 302, 303, 307, 308)
TRANSIENT_STATUSES = (429, 500, 502, 503, 504)


@dataclass
class Attempt:
    """The result of one HTTP request (one hop, one try)."""

    outcome: str
    error: str | None = None
    status: int | None = None
    reason: str = ""
    http_version: str = "HTTP/1.1"
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None
    raw: bytes = b""
    body: bytes = b""
    location: str | None = None
    retry_after: float | None = None
    transient: bool = False
    decoded: int | None = None  # decoded bytes read before giving up (too_large)


def exchange(client: httpx.Client, url: str, kind: str, conditional: Conditional | None, *, timeout_s: float,
             connect_timeout_s: float, cap: int, now: Callable[[], datetime]) -> Attempt:
    """One GET (one hop, one try) within this thread's deadline, read and decoded: an ``Attempt``."""
    headers = {"Accept-Encoding": ACCEPT_ENCODING}
    if kind == "article":
        headers["Accept"] = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
    if conditional is not None:
        if conditional.etag:
            headers["If-None-Match"] = conditional.etag
        if conditional.last_modified:
            headers["If-Modified-Since"] = conditional.last_modified
    left = time_left()
    timeout = httpx.Timeout(left, connect=min(connect_timeout_s, left), pool=left)
    got_headers = False
    att = Attempt("network_error")
    try:
        with client.stream("GET", url, headers=headers, timeout=timeout) as resp:
            got_headers = True
            att.status = resp.status_code
            att.reason = resp.reason_phrase or ""
            att.http_version = resp.http_version or "HTTP/1.1"
            att.headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.raw)
            att.content_type = resp.headers.get("content-type")
            att = _read(resp, att, kind, conditional, cap, now)
            if att.outcome != "ok":
                drain(resp)
            return att
    except BlockedAddress as exc:
        return Attempt("blocked_url", str(exc))
    except httpx.TimeoutException as exc:
        where = "reading body" if got_headers else "waiting for response"
        att.outcome, att.error, att.transient = "timeout", f"deadline {timeout_s:g}s exceeded {where} ({exc})", True
        att.body = att.raw = b""
        return att
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError,
            httpx.NetworkError) as exc:
        if got_headers:
            att.outcome, att.error = "truncated", f"connection broke mid-body: {exc}"
            att.body = att.raw = b""
            return att
        tls = ssl_failure(exc)
        if tls is not None:  # a certificate or handshake refusal does not go away on a retry
            return Attempt("network_error", f"TLS: {tls}", transient=False)
        return Attempt("network_error", f"{type(exc).__name__}: {exc}", transient=True)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        return Attempt("blocked_url", f"invalid URL: {exc}")
    except httpx.HTTPError as exc:
        return Attempt("network_error", f"{type(exc).__name__}: {exc}", transient=not got_headers)

def _read(resp: httpx.Response, att: Attempt, kind: str, conditional: Conditional | None, cap: int,
          now: Callable[[], datetime]) -> Attempt:
    status = resp.status_code
    if status in REDIRECT_STATUSES and resp.headers.get("location"):
        att.outcome, att.location = "redirect", resp.headers["location"]
        return att
    if status == 304:
        if conditional is not None:
            att.outcome = "not_modified"
        else:
            att.outcome, att.error = "http_error", "HTTP 304 to an unconditional request"
        return att
    if status >= 300:
        att.outcome, att.error = "http_error", f"HTTP {status} {att.reason}".strip()
        if status in TRANSIENT_STATUSES:
            att.transient = True
            att.retry_after = parse_retry_after(resp.headers.get("retry-after"), now())
        return att
    if status < 200:  # pragma: no cover - httpx swallows 1xx
        att.outcome, att.error = "http_error", f"HTTP {status}"
        return att
    ok_type = type_ok(kind, att.content_type)
    if ok_type is False:
        att.outcome, att.error = "not_html", f"Content-Type {media_type(att.content_type)!r} refused for {kind}"
        return att
    declared = resp.headers.get("content-length")
    try:
        declared_len = int(declared) if declared is not None else None
    except ValueError:
        declared_len = None
    encoding = resp.headers.get("content-encoding")
    if declared_len is not None and not encoding and declared_len > cap and kind != "robots":
        att.outcome, att.error = "too_large", f"Content-Length {declared_len} exceeds cap {cap}"
        return att
    try:
        dec = BoundedDecoder(encoding, cap)
    except DecodingError as exc:
        att.outcome, att.error = "not_html", str(exc)
        return att
    raw_parts: list[bytes] = []
    raw_len = 0
    try:
        for chunk in resp.iter_raw():
            raw_parts.append(chunk)
            raw_len += len(chunk)
            dec.feed(chunk)
            if time_left() <= 0:
                raise httpx.ReadTimeout("total request deadline exceeded")
    except TooLarge as exc:
        if kind == "robots":  # RFC 9309: parse what we got
            att.outcome, att.body, att.raw = "ok", dec.body()[:cap], b"".join(raw_parts)
            return att
        att.outcome, att.error = "too_large", str(exc)
        att.body, att.raw = b"", b""
        att.decoded = dec.total
        return att
    except DecodingError as exc:
        att.outcome, att.error = "parse_error", f"undecodable body: {exc}"
        att.body = att.raw = b""
        return att
    att.raw = b"".join(raw_parts)
    att.body = dec.body()
    if declared_len is not None and raw_len < declared_len:
        att.outcome, att.error = "truncated", f"received {raw_len} of {declared_len} bytes (Content-Length)"
        att.body = att.raw = b""
        return att
    if not dec.complete():
        att.outcome, att.error = "truncated", f"{encoding} stream ended before its end marker"
        att.body = att.raw = b""
        return att
    if not att.body and kind != "robots":
        att.outcome, att.error = "not_html", "empty body"
        return att
    if ok_type is None and not looks_like_html(att.body):
        att.outcome, att.error = "not_html", "no Content-Type and the body does not look like HTML"
        att.body = att.raw = b""
        return att
    att.outcome = "ok"
    return att


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())
