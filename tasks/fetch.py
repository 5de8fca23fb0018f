"""Polite, bounded HTTP fetching (issue 4).

``Fetcher.fetch(url, kind=...)`` never raises for a problem in the *data*: every outcome is one
``PageLogEntry`` (``FetchResult.log``) with an outcome from ``records.OUTCOMES`` and an error text.

What one fetch does, in order, for every hop of a redirect chain:

1. **Scheme** — only ``http``/``https``; anything else (``file:``, ``ftp:``, ``javascript:``) is
   ``blocked_url`` and never contacted.
2. **Deferred host** — a host that asked (``Retry-After``) for more than ``max_retry_after_s`` this run is
   not requested again; the URL gets ``http_error`` ("host deferred to next run").
3. **Address guard** — the host is resolved once per run (per-run DNS pin) and every address checked:
   loopback, private, link-local (169.254/16 incl. cloud metadata), multicast, reserved, unspecified,
   shared/CGNAT and other non-global addresses are refused (``blocked_url``) unless inside one of
   ``allow_networks``. The default transport connects *to the very address that was checked*
   (custom httpcore network backend), so DNS rebinding between the check and the connect is impossible.
   The guard runs on every redirect hop.
4. **robots.txt** (RFC 9309) — fetched once per host per run (a ``pages`` row of kind ``robots``;
   collect those rows with ``Fetcher.drain_log()``). 2xx: parsed (longest match, ``*``/``$`` patterns,
   Allow wins ties, our product token or ``*`` group). 4xx: allow all. 5xx, 429 after retries, network
   error or timeout: disallow all for this run. ``Crawl-delay`` (capped at ``max_crawl_delay_s``) raises
   the per-host gap above ``per_host_delay_s``. ``Sitemap:`` lines: ``Fetcher.robots_sitemaps(url)``.
   Disallowed URLs are ``robots_disallowed`` with ``attempts=0`` (no request sent).
5. **Politeness** — at most ``concurrency`` requests in flight overall, ``per_host_concurrency`` per host,
   and request *starts* to one host at least the per-host gap apart (retries and robots included).
6. **Request** — the configured User-Agent; ``If-None-Match`` / ``If-Modified-Since`` from
   ``conditional``. A total deadline of ``timeout_s`` per attempt covers connect, headers and body
   (enforced on every socket operation, so a server dripping 1 byte/s ends as ``timeout`` at the
   deadline). The body is streamed raw and decoded by our own bounded decoders (gzip, deflate, br):
   decoded bytes are capped at ``max_bytes`` (``max_sitemap_bytes`` for sitemaps) — a compression bomb
   stops within one 64 KiB step of the cap (``too_large``).
7. **Retries** — only transient failures: timeouts, connection errors before a response, 429 and
   500/502/503/504, at most ``retries`` times, exponential backoff (``backoff_s * 2**n``, "equal
   jitter") or ``Retry-After`` (seconds or HTTP-date) when the server sends one. Never 404/410/other
   4xx, not-HTML, too-large, truncated bodies. ``PageLogEntry.attempts`` counts the attempts made on
   the final hop of the redirect chain.
8. **Redirects** — followed manually, at most ``max_redirects`` hops; a repeated URL is a loop; both are
   ``too_many_redirects``. A ``Location`` with a non-http(s) scheme is ``blocked_url``.

Outcome rules for responses:

* 304 to a conditional request → ``not_modified``; any other 3xx without a usable ``Location`` and every
  4xx/5xx → ``http_error`` with the status.
* Content-Type: articles need ``text/html`` / ``application/xhtml+xml`` (a missing Content-Type is
  accepted when the body sniffs as HTML); feeds and sitemaps accept XML types, ``text/*`` and (sitemaps)
  gzip types; robots.txt accepts anything. Anything else → ``not_html`` (the body is not read).
* Fewer body bytes than ``Content-Length``, a connection cut mid-body, or a compressed stream that ends
  early → ``truncated``.
* **Empty body** (decision): a 2xx with a zero-byte body is ``not_html`` with error ``"empty body"`` —
  it is not a document of the requested kind; it is never handed to extraction as an "ok" page, and it
  is not retried. (An empty body where Content-Length promised more is ``truncated``.) An empty
  robots.txt is fine (allow all).

Decoding (``decode_body``, shared with ``tasks.archive``; total -- no label makes it raise): the WHATWG
encoding sniffing order -- BOM (wins over every label), the HTTP header charset, ``<meta charset>`` /
``http-equiv`` / XML declaration in the first 1024 bytes, strict UTF-8, a declaration later in the first
8 KiB, detection (charset_normalizer), windows-1252. bs4's ``EncodingDetector`` finds the BOM and the
declarations; only WHATWG encoding labels count (``webencodings``: ``iso-8859-1``/``ascii`` mean
windows-1252, while Python-only names such as ``undefined``, ``punycode``, ``unicode_escape``, ``cp037`` or
``utf-7`` are ignored like unknown labels). A declared charset that fails to decode strictly is not used
with replacement characters: the next source is tried, so there is no silent U+FFFD mojibake.

Successful responses are appended to the WARC archive (``tasks.archive.WarcArchive``) with the raw,
still content-encoded body bytes as received (transfer-encoding removed), when an archive is given and
``archive_warc`` is on.
"""

from __future__ import annotations

import codecs
import dataclasses
import email.utils
import functools
import ipaddress
import logging
import os
import random
import re
import socket
import ssl
import threading
import time
import zlib
from collections import Counter, defaultdict, deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Iterable, Iterator
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore
import httpx
import webencodings

from newsmill.tasks.config import FetchSettings
from newsmill.tasks.records import PAGE_KINDS, FetchResult, PageLogEntry

if TYPE_CHECKING:  # pragma: no cover
    from newsmill.tasks.archive import WarcArchive

try:  # pragma: no cover - brotli is a declared dependency
    import brotli
except ImportError:  # pragma: no cover
    brotli = None

__all__ = [
    "Conditional",
    "FetchRequest",
    "Fetcher",
    "BlockedAddress",
    "AddressGuard",
    "RobotsRules",
    "parse_robots",
    "decode_body",
    "is_html_content_type",
]

log = logging.getLogger(__name__)

ALLOWED_SCHEMES = ("http", "https")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
TRANSIENT_STATUSES = (429, 500, 502, 503, 504)
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: parse at least the first 500 KiB
READ_STEP = 64 * 1024

HTML_TYPES = ("text/html", "application/xhtml+xml")
GZIP_TYPES = ("application/gzip", "application/x-gzip", "application/octet-stream", "application/x-gunzip")

Resolver = Callable[[str, int], Iterable[str]]


# ---- public small records ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conditional:
    """Validators from the previous fetch of a URL (sent as If-None-Match / If-Modified-Since)."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchRequest:
    url: str
    kind: str = "article"
    source: str | None = None
    conditional: Conditional | None = None


# ---- charset -------------------------------------------------------------------------------------

_CT_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
PRESCAN_BYTES = 1024  # the HTML encoding prescan window (a <meta charset> must sit in the first 1024 bytes)
LATE_DECLARATION_BYTES = 8192  # a later declaration is still a hint for a page that is not UTF-8
_DETECT_BYTES = 200_000
# WHATWG decoders that are wider than the Python codec webencodings names (the gbk decoder is gb18030's)
_WIDER_DECODER = {"gbk": "gb18030"}


def _decoder(label: str | None, *, in_document: bool = False) -> str | None:
    """Python codec that decodes like a browser for an encoding label, or None when the label is not usable.

    Only WHATWG encoding labels count (``webencodings``): any other name Python happens to know --
    ``undefined`` and ``punycode`` (which raise), ``unicode_escape``, ``cp037``, ``utf-7`` (which decode to
    text no browser shows) -- is ignored like an unknown label, and so is the ``replacement`` encoding.
    ``x-user-defined`` (bytes 0x80-0xFF to the Private Use Area, never text) is read as windows-1252, as
    the HTML prescan does; an in-document UTF-16 declaration means UTF-8."""
    if not label:
        return None
    enc = webencodings.lookup(label)
    if enc is None or enc.name == "replacement":
        return None
    name = enc.name
    if name == "x-user-defined":
        name = "windows-1252"
    elif in_document and name in ("utf-16le", "utf-16be"):
        name = "utf-8"
    return _WIDER_DECODER.get(name) or webencodings.lookup(name).codec_info.name


def _decoder_for_codec(codec: str) -> str | None:
    """A detector's Python codec name (``latin_1``, ``mac_cyrillic``, ``cp037``...) as a WHATWG decoder."""
    if dec := _decoder(codec) or _decoder(codec.replace("_", "-")):
        return dec
    try:
        name = codecs.lookup(codec).name
    except LookupError:
        return None
    return _decoder(name) or _python_to_whatwg().get(name)


@functools.cache
def _python_to_whatwg() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in sorted(set(webencodings.LABELS.values())):
        if (dec := _decoder(name)) is not None:
            out.setdefault(codecs.lookup(dec).name, dec)
    return out


def _windows_1252_table() -> dict[int, str]:
    table = {}
    for i in range(0x80, 0xA0):
        try:
            table[i] = bytes([i]).decode("cp1252")
        except UnicodeDecodeError:  # 0x81 0x8D 0x8F 0x90 0x9D: WHATWG keeps the C1 control
            pass
    return table


_WINDOWS_1252 = _windows_1252_table()


def _windows_1252(body: bytes) -> str:
    """WHATWG windows-1252: total (the five bytes cp1252 leaves undefined decode to their C1 controls)."""
    return body.decode("latin-1").translate(_WINDOWS_1252)


def _detector():
    """bs4's ``EncodingDetector``, imported on first use: importing bs4 loads soupsieve (0.1-0.2 s), which
    the processes that never decode a page (the light CLI commands import this module) should not pay."""
    from bs4.dammit import EncodingDetector

    return EncodingDetector


def charset_from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = _CT_CHARSET.search(content_type)
    return m.group(1) if m else None


def _bom(body: bytes) -> tuple[bytes, str | None]:
    """``(body without BOM, codec)`` -- the WHATWG BOMs (UTF-8, UTF-16LE, UTF-16BE); there is no UTF-32."""
    rest, label = _detector().strip_byte_order_mark(body)
    if label == "utf-32le":  # FF FE 00 00: a UTF-16LE BOM followed by U+0000
        return body[2:], "utf-16-le"
    if label == "utf-32be":  # 00 00 FE FF is no BOM on the web
        return body, None
    return rest, _decoder(label)


def _detect(body: bytes) -> str | None:
    try:
        import charset_normalizer

        # statistics only: the declarations were weighed above (its own preemptive pass would obey any label)
        best = charset_normalizer.from_bytes(body[:_DETECT_BYTES], preemptive_behaviour=False).best()
    except Exception as exc:  # pragma: no cover - detection is best effort, reason kept in the log
        log.debug("charset detection failed: %s", exc)
        return None
    return _decoder_for_codec(best.encoding) if best is not None and best.encoding else None


def decode_body(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Decode a document body to text: ``(text, codec)``. Total: no body and no label makes it raise.

    The WHATWG encoding sniffing order, with bs4's ``EncodingDetector`` finding the BOM and the declarations
    and ``webencodings`` mapping labels to decoders (see ``_decoder``: only WHATWG labels count):

    1. a BOM wins over every label (decoded with U+FFFD for the odd broken sequence, as browsers do);
    2. the HTTP header charset; 3. ``<meta charset>``/``http-equiv``/XML declaration in the first 1024
       bytes (the prescan); 4. strict UTF-8; 5. a declaration later in the first 8 KiB (a browser
       re-decodes when its parser meets one); 6. detection (charset_normalizer); 7. windows-1252.

    Each label must decode the whole body strictly: a wrong declaration falls through to the next step
    instead of producing U+FFFD mojibake."""
    if not body:
        return "", "utf-8"
    rest, bom = _bom(body)
    if bom is not None:
        return rest.decode(bom, "replace"), bom
    tried: set[str] = set()

    def attempt(codec: str | None) -> str | None:
        if codec is None or codec in tried:
            return None
        tried.add(codec)
        try:
            return body.decode(codec)
        except UnicodeError:  # UnicodeDecodeError; any other UnicodeError counts the same (total)
            return None

    detector = _detector()
    steps = (
        lambda: _decoder(charset_from_content_type(content_type)),
        lambda: _decoder(detector.find_declared_encoding(body[:PRESCAN_BYTES], is_html=True,
                                                         search_entire_document=True), in_document=True),
        lambda: "utf-8",
        lambda: _decoder(detector.find_declared_encoding(body[:LATE_DECLARATION_BYTES], is_html=True,
                                                         search_entire_document=True), in_document=True),
        lambda: _detect(body),
    )
    for step in steps:
        codec = step()
        if (text := attempt(codec)) is not None:
            return text, codec
    return _windows_1252(body), "cp1252"


# ---- content types -------------------------------------------------------------------------------


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_html_content_type(content_type: str | None) -> bool:
    return _media_type(content_type) in HTML_TYPES


def _looks_like_html(prefix: bytes) -> bool:
    head = prefix[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<!--")) or b"<html" in head[:512]


def _type_ok(kind: str, content_type: str | None) -> bool | None:
    """True: accepted; False: refused; None: no Content-Type, decide by sniffing (articles)."""
    mt = _media_type(content_type)
    if kind == "robots":
        return True
    if not mt:
        return None if kind == "article" else True
    if kind == "article":
        return mt in HTML_TYPES
    if mt.endswith("/xml") or mt.endswith("+xml") or mt.startswith("text/"):
        return True
    if kind == "sitemap" and mt in GZIP_TYPES:
        return True
    return False


# ---- address guard -------------------------------------------------------------------------------


class BlockedAddress(Exception):
    """Raised by the address guard: the target resolves only to refused addresses."""


def _default_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = sockaddr[0].split("%", 1)[0]
        if ip not in out:
            out.append(ip)
    return out


class AddressGuard:
    """Resolves a host once per run, keeps only allowed addresses and pins them for the connect.

    ``resolver(host, port) -> iterable of IP strings`` (default ``socket.getaddrinfo``)."""

    def __init__(self, allow_networks: Iterable[str] = (), resolver: Resolver | None = None):
        self._allow = [ipaddress.ip_network(c, strict=False) for c in allow_networks]
        self._resolver = resolver or _default_resolver
        self._pins: dict[tuple[str, int], list[str]] = {}
        self._lock = threading.Lock()

    def address_allowed(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr in net for net in self._allow if net.version == addr.version):
            return True
        if (addr.is_loopback or addr.is_private or addr.is_link_local or addr.is_multicast
                or addr.is_reserved or addr.is_unspecified):
            return False
        return addr.is_global

    def resolve(self, host: str, port: int) -> list[str]:
        """Allowed addresses of ``host`` (pinned for the run). Raises ``BlockedAddress`` or ``OSError``."""
        host = host.strip("[]").lower()
        key = (host, port)
        with self._lock:
            pinned = self._pins.get(key)
        if pinned is not None:
            return pinned
        try:
            ips = [str(ipaddress.ip_address(host))]
        except ValueError:
            ips = [str(ipaddress.ip_address(ip)) for ip in self._resolver(host, port)]
        if not ips:
            raise OSError(f"no address for {host}")
        allowed = [ip for ip in ips if self.address_allowed(ip)]
        if not allowed:
            raise BlockedAddress(f"{host} resolves to refused address {ips[0]} (not in allow_networks)")
        with self._lock:
            self._pins.setdefault(key, allowed)
            return self._pins[key]


# ---- pinned network backend with a per-thread deadline --------------------------------------------

_deadline = threading.local()


def _clamp(timeout: float | None, exc: type[Exception]) -> float | None:
    dl = getattr(_deadline, "value", None)
    if dl is None:
        return timeout
    left = dl - time.monotonic()
    if left <= 0:
        raise exc("total request deadline exceeded")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.SyncBackend):
    """Connects only to the addresses the guard checked (and pinned) for the host."""

    def __init__(self, guard: AddressGuard):
        self._guard = guard

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        ips = self._guard.resolve(host, port)  # BlockedAddress propagates unmapped
        last: Exception | None = None
        for ip in ips:
            try:
                stream = super().connect_tcp(ip, port, _clamp(timeout, httpcore.ConnectTimeout),
                                             local_address, socket_options)
            except httpcore.ConnectTimeout:
                raise
            except httpcore.ConnectError as exc:
                last = exc
                continue
            peer = stream.get_extra_info("server_addr")
            if peer and not self._guard.address_allowed(peer[0]):  # pragma: no cover - belt and braces
                stream.close()
                raise BlockedAddress(f"connected to refused address {peer[0]}")
            return _DeadlineStream(stream)
        raise last or httpcore.ConnectError(f"cannot connect to {host}")


_DRAIN_MAX = 64 * 1024  # body bytes read from a response we do not use, so its connection is reused


def _drain(resp: httpx.Response) -> None:
    """Read (and drop) the rest of a small unused body -- a 304, a redirect, an error page -- so the
    keep-alive connection goes back to the pool instead of being closed with the response. A larger
    body is not downloaded: the connection is closed. Never raises."""
    if resp.is_stream_consumed or resp.is_closed:
        return
    seen = 0
    try:
        for chunk in resp.iter_raw():
            seen += len(chunk)
            if seen > _DRAIN_MAX:
                return
    except (httpx.HTTPError, OSError):
        pass


def _ssl_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error (certificate verification, handshake) behind a connection error, if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ssl.SSLError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _ssl_context(ca_bundle: str = "") -> ssl.SSLContext:
    """Certificate-verifying TLS context: certifi's CAs, or those of ``ca_bundle`` (a PEM file)."""
    if ca_bundle:
        return ssl.create_default_context(cafile=os.path.expanduser(ca_bundle))
    return httpx.create_ssl_context(trust_env=False)


class _PinnedTransport(httpx.HTTPTransport):
    def __init__(self, guard: AddressGuard, max_connections: int, ca_bundle: str = ""):
        super().__init__(trust_env=False, http1=True, http2=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(ca_bundle),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            network_backend=_PinnedBackend(guard),
        )


# ---- bounded content decoding --------------------------------------------------------------------


class _TooLarge(Exception):
    pass


class _BadEncoding(Exception):
    pass


class _Layer:
    """One content-coding layer, producing output in steps of at most READ_STEP bytes."""

    def __init__(self, coding: str):
        self.coding = coding
        self._first = True
        if coding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._z = None  # zlib or raw deflate, decided on the first bytes
        elif coding == "br":
            if brotli is None:  # pragma: no cover
                raise _BadEncoding("br content-encoding but brotli is not installed")
            self._br = brotli.Decompressor()
        else:
            raise _BadEncoding(f"unsupported Content-Encoding {coding!r}")

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            if self.coding == "br":
                yield from self._feed_br(data)
            else:
                yield from self._feed_zlib(data)
        except (zlib.error, brotli.error if brotli else zlib.error) as exc:
            raise _BadEncoding(f"{self.coding}: {exc}") from None

    def _feed_zlib(self, data: bytes) -> Iterator[bytes]:
        if self._z is None:
            wbits = zlib.MAX_WBITS if (len(data) >= 2 and (data[0] & 0x0F) == 8
                                       and ((data[0] << 8) | data[1]) % 31 == 0) else -zlib.MAX_WBITS
            self._z = zlib.decompressobj(wbits)
        buf = data
        while buf:
            if self._z.eof:  # concatenated gzip members
                if self.coding == "deflate" or not buf.strip(b"\x00"):
                    return
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = self._z.decompress(buf, READ_STEP)
            buf = self._z.unused_data if self._z.eof else self._z.unconsumed_tail
            if out:
                yield out
        # drain output still held inside zlib
        while not self._z.eof:
            out = self._z.decompress(b"", READ_STEP)
            if not out:
                break
            yield out

    def _feed_br(self, data: bytes) -> Iterator[bytes]:
        out = self._br.process(data, output_buffer_limit=READ_STEP)
        if out:
            yield out
        while not self._br.can_accept_more_data():
            out = self._br.process(b"", output_buffer_limit=READ_STEP)
            if not out:
                break
            yield out

    def finished(self) -> bool:
        if self.coding == "br":
            return self._br.is_finished()
        return self._z is None or self._z.eof


class _BoundedDecoder:
    """Content-Encoding layers (applied in reverse order) with a cap on decoded bytes."""

    def __init__(self, content_encoding: str | None, cap: int):
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        self.layers = [_Layer(c) for c in reversed(codings)]
        self.cap = cap
        self.total = 0
        self.parts: list[bytes] = []

    def _through(self, data: bytes, i: int) -> Iterator[bytes]:
        if i == len(self.layers):
            yield data
            return
        for piece in self.layers[i].feed(data):
            yield from self._through(piece, i + 1)

    def feed(self, data: bytes) -> None:
        for piece in self._through(data, 0):
            self.total += len(piece)
            if self.total > self.cap:
                raise _TooLarge(f"decoded body exceeds {self.cap} bytes")
            self.parts.append(piece)

    def complete(self) -> bool:
        return all(layer.finished() for layer in self.layers)

    def body(self) -> bytes:
        return b"".join(self.parts)


# ---- robots.txt ----------------------------------------------------------------------------------


@dataclass
class RobotsRules:
    """Parsed robots.txt for one user agent (RFC 9309)."""

    rules: list[tuple[bool, str]] = dataclasses.field(default_factory=list)  # (allow, pattern)
    crawl_delay: float | None = None
    sitemaps: list[str] = dataclasses.field(default_factory=list)
    allow_all: bool = False
    disallow_all: bool = False
    reason: str = ""

    def allowed(self, path: str) -> bool:
        if self.disallow_all:
            return False
        if self.allow_all:
            return True
        if path == "/robots.txt":
            return True
        best_len, best_allow = -1, True
        for allow, pattern in self.rules:
            if not pattern:
                continue
            n = _robots_match(pattern, path)
            if n is None:
                continue
            if n > best_len or (n == best_len and allow):
                best_len, best_allow = n, allow
        return best_allow


def _robots_match(pattern: str, path: str) -> int | None:
    """Length of ``pattern`` when it matches ``path`` (``*`` wildcard, ``$`` end anchor), else None."""
    anchored = pattern.endswith("$")
    body = pattern[:-1] if anchored else pattern
    regex = ".*".join(re.escape(part) for part in body.split("*"))
    if anchored:
        regex += "$"
    return len(pattern) if re.match(regex, path) else None


def _product_token(user_agent: str) -> str:
    return re.split(r"[/\s;(]", user_agent.strip(), maxsplit=1)[0].lower()


def parse_robots(text: str, user_agent: str) -> RobotsRules:
    token = _product_token(user_agent)
    groups: list[tuple[list[str], list[tuple[bool, str]], list[float]]] = []
    sitemaps: list[str] = []
    current = None
    last_was_agent = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "sitemap":
            if value:
                sitemaps.append(value)
            continue
        if key in ("user-agent", "useragent"):
            if current is None or not last_was_agent:
                current = ([], [], [])
                groups.append(current)
            current[0].append(value.lower())
            last_was_agent = True
            continue
        last_was_agent = False
        if current is None:
            continue
        if key in ("allow", "disallow"):
            current[1].append((key == "allow", _pct_normalize(value)))
        elif key == "crawl-delay":
            try:
                current[2].append(float(value))
            except ValueError:
                pass
    mine = [g for g in groups if any(a != "*" and a and (a == token or token.startswith(a)) for a in g[0])]
    if not mine:
        mine = [g for g in groups if "*" in g[0]]
    rules: list[tuple[bool, str]] = []
    delays: list[float] = []
    for g in mine:
        rules.extend(g[1])
        delays.extend(g[2])
    return RobotsRules(rules=rules, crawl_delay=max(delays) if delays else None, sitemaps=sitemaps,
                       reason="parsed")


def _pct_normalize(path: str) -> str:
    from urllib.parse import quote, unquote

    return quote(unquote(path), safe="/*$?=&;:@+,!~'()%")


# ---- the fetcher ---------------------------------------------------------------------------------


@dataclass
class _Attempt:
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


class _HostState:
    def __init__(self, per_host_concurrency: int):
        self.sem = threading.BoundedSemaphore(per_host_concurrency)
        self.lock = threading.Lock()
        self.next_start = 0.0
        self.last_start: float | None = None
        self.gap = 0.0


class _RobotsSlot:
    def __init__(self):
        self.done = threading.Event()
        self.rules: RobotsRules | None = None


class Fetcher:
    """Polite HTTP client for one run. Thread-safe; see the module docstring for the behaviour.

    ``transport``: an ``httpx.BaseTransport`` (e.g. ``httpx.MockTransport``) replacing the default pinned
    transport (the address guard still checks every hop before the request). ``resolver(host, port)``
    returns IP strings. ``clock`` (monotonic seconds), ``sleep``, ``now`` (aware datetime) and ``rng`` are
    injectable for tests."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        run_id: str,
        archive: "WarcArchive | None" = None,
        transport: httpx.BaseTransport | None = None,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        rng: random.Random | None = None,
    ):
        self.settings = settings
        self.run_id = run_id
        self.archive = archive if settings.archive_warc else None
        self.guard = AddressGuard(settings.allow_networks, resolver)
        self._custom_transport = transport is not None
        transport = transport or _PinnedTransport(self.guard, settings.concurrency + 4, settings.ca_bundle)
        self._client = httpx.Client(transport=transport, follow_redirects=False, trust_env=False,
                                    headers={"User-Agent": settings.user_agent})
        self._clock, self._sleep, self._now = clock, sleep, now
        self._rng = rng or random.Random()
        self._global = threading.BoundedSemaphore(settings.concurrency)
        self._lock = threading.Lock()
        self._hosts: dict[str, _HostState] = {}
        self._robots: dict[str, _RobotsSlot] = {}
        self._deferred: set[str] = set()
        self._aux_log: list[PageLogEntry] = []
        self._stats: Counter = Counter()
        self._closed = False

    # -- public -----------------------------------------------------------------------------------

    @property
    def deferred_hosts(self) -> frozenset[str]:
        """Hosts (``host[:port]``) deferred to the next run because Retry-After exceeded the cap."""
        with self._lock:
            return frozenset(self._deferred)

    @property
    def stats(self) -> dict[str, int]:
        """Counts: ``requests`` (HTTP requests sent), ``retries``, ``robots_fetches``, ``outcome:<x>``."""
        with self._lock:
            return dict(self._stats)

    def drain_log(self) -> list[PageLogEntry]:
        """``pages`` rows produced as a side effect (robots.txt fetches) not yet handed out."""
        with self._lock:
            rows, self._aux_log = self._aux_log, []
        return rows

    def robots_sitemaps(self, url: str) -> list[str]:
        """``Sitemap:`` URLs of the robots.txt of ``url``'s host (fetched once per run, also when
        ``respect_robots`` is off: it is then used for discovery only)."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in ALLOWED_SCHEMES or not parts.hostname:
            return []
        rules = self._robots_for(parts.scheme.lower(), parts.netloc.lower())
        return list(rules.sitemaps)

    def fetch(self, url: str, *, kind: str = "article", source: str | None = None,
              conditional: Conditional | None = None) -> FetchResult:
        return self.fetch_raw(url, kind=kind, source=source, conditional=conditional)[0]

    def fetch_raw(self, url: str, *, kind: str = "article", source: str | None = None,
                  conditional: Conditional | None = None) -> tuple[FetchResult, bytes | None]:
        """Like ``fetch`` and also the body bytes (Content-Encoding removed) when the outcome is ok."""
        if kind not in PAGE_KINDS:
            raise ValueError(f"kind must be one of {PAGE_KINDS}, got {kind!r}")
        source = getattr(source, "name", source)  # a Source object is accepted for its name
        started = self._clock()
        fetched_at = self._now()
        try:
            result, body = self._fetch(url, kind, source, conditional, started, fetched_at)
        except Exception as exc:  # a bug must not kill the batch; the reason is kept in the row
            log.exception("unexpected error fetching %s", url)
            entry = self._entry(url, None, kind, source, started, fetched_at,
                                _Attempt("network_error", f"internal error: {type(exc).__name__}: {exc}"), 0)
            result, body = FetchResult(log=entry), None
        with self._lock:
            self._stats[f"outcome:{result.log.outcome}"] += 1
        return result, body

    def fetch_many(self, requests: Iterable[FetchRequest | str]) -> Iterator[FetchResult]:
        """Fetch concurrently (``concurrency`` threads, ``per_host_concurrency`` per host, hosts served
        round-robin); yields results as they complete."""
        queues: dict[str, deque] = defaultdict(deque)
        order: deque[str] = deque()
        for req in requests:
            if isinstance(req, str):
                req = FetchRequest(req)
            host = (urlsplit(req.url).netloc or req.url).lower()
            if host not in queues:
                order.append(host)
            queues[host].append(req)
        limit = self.settings.per_host_concurrency
        running: Counter = Counter()
        inflight: dict = {}
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="fetch")
        try:
            while order or inflight:
                for _ in range(len(order)):
                    if len(inflight) >= self.settings.concurrency:
                        break
                    host = order[0]
                    order.rotate(-1)
                    if running[host] >= limit:
                        continue
                    req = queues[host].popleft()
                    if not queues[host]:
                        order.remove(host)
                        del queues[host]
                    running[host] += 1
                    fut = pool.submit(self.fetch, req.url, kind=req.kind, source=req.source,
                                      conditional=req.conditional)
                    inflight[fut] = host
                if not inflight:
                    continue
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for fut in done:
                    running[inflight.pop(fut)] -= 1
                    yield fut.result()
        finally:
            for fut in inflight:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()

    def __enter__(self) -> "Fetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------

    def _cap(self, kind: str) -> int:
        if kind == "robots":
            return ROBOTS_MAX_BYTES
        if kind == "sitemap":
            return max(self.settings.max_sitemap_bytes, self.settings.max_bytes)
        return self.settings.max_bytes

    def _host(self, netloc: str) -> _HostState:
        with self._lock:
            st = self._hosts.get(netloc)
            if st is None:
                st = self._hosts[netloc] = _HostState(self.settings.per_host_concurrency)
                st.gap = self.settings.per_host_delay_s
            return st

    def _entry(self, url, final_url, kind, source, started, fetched_at, att: _Attempt, attempts: int,
               warc=(None, None, None), etag=None, last_modified=None, nbytes=None) -> PageLogEntry:
        return PageLogEntry(
            url=url, final_url=final_url, kind=kind, status=att.status, outcome=att.outcome, error=att.error,
            bytes=att.decoded if att.decoded is not None else len(att.body), content_type=att.content_type,
            fetched_at=fetched_at, elapsed_ms=int((self._clock() - started) * 1000), run_id=self.run_id,
            source=source, attempts=attempts, etag=etag, last_modified=last_modified,
            warc_file=warc[0], warc_offset=warc[1], warc_length=warc[2])

    def _fetch(self, url, kind, source, conditional, started, fetched_at):
        current = (url or "").strip()
        visited: set[str] = set()
        hops = 0
        while True:
            parts = urlsplit(current)
            if parts.scheme.lower() not in ALLOWED_SCHEMES or not parts.hostname:
                att = _Attempt("blocked_url", f"refused URL scheme/host: {current[:200]!r}")
                return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att, 0)), None
            current = urlunsplit(parts._replace(fragment=""))
            visited.add(current)
            netloc = parts.netloc.lower()
            with self._lock:
                deferred = netloc in self._deferred
            if deferred:
                att = _Attempt("http_error", f"host {netloc} deferred to next run (Retry-After above cap)")
                return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att, 0)), None
            try:
                self.guard.resolve(parts.hostname, parts.port or (443 if parts.scheme.lower() == "https" else 80))
            except BlockedAddress as exc:
                att = _Attempt("blocked_url", str(exc))
                return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att, 0)), None
            except (OSError, UnicodeError, ValueError) as exc:
                att = _Attempt("network_error", f"DNS resolution failed for {parts.hostname}: {exc}")
                return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att, 0)), None
            if kind != "robots" and self.settings.respect_robots:
                rules = self._robots_for(parts.scheme.lower(), netloc)
                path = parts.path or "/"
                if parts.query:
                    path += "?" + parts.query
                if not rules.allowed(_pct_normalize(path)):
                    why = rules.reason if rules.disallow_all else "disallowed by robots.txt"
                    att = _Attempt("robots_disallowed", why)
                    return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att, 0)), None
            att, attempts = self._with_retries(current, netloc, kind, conditional)
            if att.outcome == "redirect":
                hops += 1
                target = urljoin(current, att.location or "")
                tparts = urlsplit(target)
                if tparts.scheme.lower() not in ALLOWED_SCHEMES or not tparts.hostname:
                    att = _Attempt("blocked_url", f"redirect to refused URL {target[:200]!r}", status=att.status)
                    return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att,
                                                       attempts)), None
                target = urlunsplit(tparts._replace(fragment=""))
                if target in visited:
                    att = _Attempt("too_many_redirects", f"redirect loop at {target}", status=att.status)
                    return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att,
                                                       attempts)), None
                if hops > self.settings.max_redirects:
                    att = _Attempt("too_many_redirects", f"more than {self.settings.max_redirects} redirects",
                                   status=att.status)
                    return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att,
                                                       attempts)), None
                current = target
                continue
            return self._finish(url, current, kind, source, started, fetched_at, att, attempts)

    def _finish(self, url, final_url, kind, source, started, fetched_at, att: _Attempt, attempts: int):
        hdr = {k.lower(): v for k, v in att.headers}
        etag, last_mod = hdr.get("etag"), hdr.get("last-modified")
        if att.outcome != "ok":
            entry = self._entry(url, final_url, kind, source, started, fetched_at, att, attempts,
                                etag=etag, last_modified=last_mod)
            return FetchResult(log=entry, headers=att.headers), None
        warc = (None, None, None)
        if self.archive is not None:
            try:
                warc = self.archive.write_response(final_url, att.status, list(att.headers), att.raw, fetched_at,
                                                   reason=att.reason, http_version=att.http_version)
            except OSError as exc:  # the page is fine; the archive copy is lost and the row says so
                att.error = f"WARC write failed: {exc}"
        html = encoding = None
        if kind != "sitemap" or not att.body.startswith(b"\x1f\x8b"):
            html, encoding = decode_body(att.body, att.content_type)
        entry = self._entry(url, final_url, kind, source, started, fetched_at, att, attempts, warc,
                            etag, last_mod)
        return FetchResult(log=entry, html=html, encoding=encoding, headers=att.headers), att.body

    def _with_retries(self, url: str, netloc: str, kind: str, conditional: Conditional | None):
        attempts = 0
        while True:
            attempts += 1
            att = self._attempt(url, netloc, kind, conditional)
            if not att.transient:
                return att, attempts
            cap = self.settings.max_retry_after_s
            if att.retry_after is not None and att.retry_after > cap:
                with self._lock:
                    self._deferred.add(netloc)
                att.outcome = "http_error"
                att.error = (f"HTTP {att.status}: Retry-After {att.retry_after:.0f}s exceeds "
                             f"max_retry_after_s={cap:g}; host {netloc} deferred to next run")
                return att, attempts
            if attempts > self.settings.retries:
                return att, attempts
            if att.retry_after is not None:
                delay = att.retry_after
            else:
                base = self.settings.backoff_s * (2 ** (attempts - 1))
                delay = base / 2 + self._rng.uniform(0, base / 2)
            with self._lock:
                self._stats["retries"] += 1
            self._sleep(max(0.0, delay))

    def _acquire_turn(self, st: _HostState) -> None:
        """Wait for the host's next start slot, then take a global slot. The slot is claimed only while
        holding the global slot, so request starts to one host are never closer than the gap, and no
        global slot is held while sleeping."""
        while True:
            with st.lock:
                wait_s = st.next_start - self._clock()
            if wait_s > 0:
                self._sleep(wait_s)
            self._global.acquire()
            with st.lock:
                now = self._clock()
                if now >= st.next_start:
                    st.last_start = now
                    st.next_start = now + st.gap
                    return
            self._global.release()

    def _attempt(self, url: str, netloc: str, kind: str, conditional: Conditional | None) -> _Attempt:
        st = self._host(netloc)
        with st.sem:
            self._acquire_turn(st)
            try:
                with self._lock:
                    self._stats["requests"] += 1
                    if kind == "robots":
                        self._stats["robots_fetches"] += 1
                # the total deadline is real time (the socket layer enforces it too)
                _deadline.value = time.monotonic() + self.settings.timeout_s
                try:
                    return self._request(url, kind, conditional)
                finally:
                    _deadline.value = None
            finally:
                self._global.release()

    @staticmethod
    def _left() -> float:
        return _deadline.value - time.monotonic()

    def _request(self, url: str, kind: str, conditional: Conditional | None) -> _Attempt:
        s = self.settings
        headers = {"Accept-Encoding": "gzip, deflate, br" if brotli else "gzip, deflate"}
        if kind == "article":
            headers["Accept"] = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
        if conditional is not None:
            if conditional.etag:
                headers["If-None-Match"] = conditional.etag
            if conditional.last_modified:
                headers["If-Modified-Since"] = conditional.last_modified
        left = self._left()
        timeout = httpx.Timeout(left, connect=min(s.connect_timeout_s, left), pool=left)
        got_headers = False
        att = _Attempt("network_error")
        try:
            with self._client.stream("GET", url, headers=headers, timeout=timeout) as resp:
                got_headers = True
                att.status = resp.status_code
                att.reason = resp.reason_phrase or ""
                att.http_version = resp.http_version or "HTTP/1.1"
                att.headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.raw)
                att.content_type = resp.headers.get("content-type")
                att = self._response(resp, att, kind, conditional)
                if att.outcome != "ok":
                    _drain(resp)
                return att
        except BlockedAddress as exc:
            return _Attempt("blocked_url", str(exc))
        except httpx.TimeoutException as exc:
            where = "reading body" if got_headers else "waiting for response"
            att.outcome, att.error, att.transient = "timeout", f"deadline {s.timeout_s:g}s exceeded {where} ({exc})", True
            att.body = att.raw = b""
            return att
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError,
                httpx.NetworkError) as exc:
            if got_headers:
                att.outcome, att.error = "truncated", f"connection broke mid-body: {exc}"
                att.body = att.raw = b""
                return att
            tls = _ssl_failure(exc)
            if tls is not None:  # a certificate or handshake refusal does not go away on a retry
                return _Attempt("network_error", f"TLS: {tls}", transient=False)
            return _Attempt("network_error", f"{type(exc).__name__}: {exc}", transient=True)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return _Attempt("blocked_url", f"invalid URL: {exc}")
        except httpx.HTTPError as exc:
            return _Attempt("network_error", f"{type(exc).__name__}: {exc}", transient=not got_headers)

    def _response(self, resp: httpx.Response, att: _Attempt, kind: str, conditional) -> _Attempt:
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
                att.retry_after = _parse_retry_after(resp.headers.get("retry-after"), self._now())
            return att
        if status < 200:  # pragma: no cover - httpx swallows 1xx
            att.outcome, att.error = "http_error", f"HTTP {status}"
            return att
        ok_type = _type_ok(kind, att.content_type)
        if ok_type is False:
            att.outcome, att.error = "not_html", f"Content-Type {_media_type(att.content_type)!r} refused for {kind}"
            return att
        cap = self._cap(kind)
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
            dec = _BoundedDecoder(encoding, cap)
        except _BadEncoding as exc:
            att.outcome, att.error = "not_html", str(exc)
            return att
        raw_parts: list[bytes] = []
        raw_len = 0
        try:
            for chunk in resp.iter_raw():
                raw_parts.append(chunk)
                raw_len += len(chunk)
                dec.feed(chunk)
                if self._left() <= 0:
                    raise httpx.ReadTimeout("total request deadline exceeded")
        except _TooLarge as exc:
            if kind == "robots":  # RFC 9309: parse what we got
                att.outcome, att.body, att.raw = "ok", dec.body()[:cap], b"".join(raw_parts)
                return att
            att.outcome, att.error = "too_large", str(exc)
            att.body, att.raw = b"", b""
            att.decoded = dec.total
            return att
        except _BadEncoding as exc:
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
        if ok_type is None and not _looks_like_html(att.body):
            att.outcome, att.error = "not_html", "no Content-Type and the body does not look like HTML"
            att.body = att.raw = b""
            return att
        att.outcome = "ok"
        return att

    # -- robots -----------------------------------------------------------------------------------

    def _robots_for(self, scheme: str, netloc: str) -> RobotsRules:
        key = f"{scheme}://{netloc}"
        with self._lock:
            slot = self._robots.get(key)
            owner = slot is None
            if owner:
                slot = self._robots[key] = _RobotsSlot()
        if not owner:
            slot.done.wait()
            return slot.rules or RobotsRules(disallow_all=True, reason="robots.txt unavailable")
        try:
            slot.rules = self._load_robots(key + "/robots.txt", netloc)
        except Exception as exc:  # pragma: no cover - keep the run going, fail closed for this host
            log.exception("robots.txt for %s", key)
            slot.rules = RobotsRules(disallow_all=True, reason=f"robots.txt error: {exc}")
        finally:
            slot.done.set()
        return slot.rules

    def _load_robots(self, robots_url: str, netloc: str) -> RobotsRules:
        result, body = self.fetch_raw(robots_url, kind="robots")
        entry = result.log
        with self._lock:
            self._aux_log.append(entry)
        status = entry.status
        if entry.outcome == "ok":
            text = result.html if result.html is not None else decode_body(body or b"", entry.content_type)[0]
            rules = parse_robots(text, self.settings.user_agent)
        elif entry.outcome == "http_error" and status is not None and 400 <= status < 500 and status != 429:
            rules = RobotsRules(allow_all=True, reason=f"robots.txt HTTP {status}: allow all")
        elif entry.outcome in ("not_html",) and status is not None and 200 <= status < 300:
            rules = RobotsRules(allow_all=True, reason="robots.txt empty: allow all")
        elif entry.outcome == "blocked_url":
            rules = RobotsRules(disallow_all=True, reason=f"robots.txt blocked: {entry.error}")
        else:
            rules = RobotsRules(disallow_all=True,
                                reason=f"robots.txt unreachable ({entry.outcome}"
                                       f"{' ' + str(status) if status else ''}): disallow all this run")
        if rules.crawl_delay is not None:
            st = self._host(netloc)
            with st.lock:
                st.gap = max(self.settings.per_host_delay_s, min(rules.crawl_delay, self.settings.max_crawl_delay_s))
                if st.last_start is not None:  # the robots.txt request itself counts
                    st.next_start = max(st.next_start, st.last_start + st.gap)
        return rules


def _parse_retry_after(value: str | None, now: datetime) -> float | None:
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
