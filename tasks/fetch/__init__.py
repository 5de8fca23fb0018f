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

Layout (private modules; import only the names in ``__all__`` from ``newsmill.tasks.fetch``):

* ``_fetcher`` -- ``Fetcher``: per-run policy around single exchanges (steps 1-8 above);
* ``_exchange`` -- one HTTP exchange (one hop, one try) read into an ``Attempt`` value;
* ``_transports`` -- the pinned transport and the per-request total deadline;
* ``_guard`` -- ``AddressGuard``: resolve once per run, refuse non-global addresses, pin the rest;
* ``_decoders`` -- bounded Content-Encoding decoders (also ``decode_capped`` for a gzipped sitemap);
* ``_charset`` -- ``decode_body``, ``charset_from_content_type``; ``_content`` -- accepted content types; ``_robots`` -- robots.txt;
  ``_models`` -- ``FetchRequest``, ``Conditional``.
"""

from newsmill.tasks.fetch._charset import charset_from_content_type, decode_body
from newsmill.tasks.fetch._content import is_html_content_type
from newsmill.tasks.fetch._decoders import DecodingError, TooLarge, decode_capped
from newsmill.tasks.fetch._fetcher import Fetcher
from newsmill.tasks.fetch._guard import AddressGuard, BlockedAddress
from newsmill.tasks.fetch._models import Conditional, FetchRequest
from newsmill.tasks.fetch._robots import RobotsRules, parse_robots
from newsmill.tasks.records import FetchResult

__all__ = [
    "Fetcher",
    "FetchRequest",
    "FetchResult",
    "Conditional",
    "AddressGuard",
    "BlockedAddress",
    "RobotsRules",
    "parse_robots",
    "decode_body",
    "charset_from_content_type",
    "is_html_content_type",
    "decode_capped",
    "DecodingError",
    "TooLarge",
]
