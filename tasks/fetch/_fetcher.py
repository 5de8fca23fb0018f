"""The fetcher: per-run policy around single exchanges -- scheme and address checks on every redirect hop,
robots.txt once per host, politeness (global and per-host concurrency, per-host start gap), retries with
backoff or Retry-After, manual redirects, the WARC copy, and one ``PageLogEntry`` per URL."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter, defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Iterable, Iterator
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from newsmill.tasks.config import FetchSettings
from newsmill.tasks.fetch._charset import decode_body
from newsmill.tasks.fetch._exchange import Attempt, exchange
from newsmill.tasks.fetch._guard import AddressGuard, BlockedAddress, Resolver
from newsmill.tasks.fetch._models import Conditional, FetchRequest
from newsmill.tasks.fetch._robots import RobotsRules, parse_robots, pct_normalize
from newsmill.tasks.fetch._transports import PinnedTransport, set_deadline
from newsmill.tasks.records import PAGE_KINDS, FetchResult, PageLogEntry
from newsmill.tasks.urls import ALLOWED_SCHEMES

if TYPE_CHECKING:  # pragma: no cover
    from newsmill.tasks.archive import WarcArchive

log = logging.getLogger(__name__)

ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: parse at least the first 500 KiB


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
    """Polite HTTP client for one run. Thread-safe; see the package docstring (``newsmill.tasks.fetch``).

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
        transport = transport or PinnedTransport(self.guard, settings.concurrency + 4, settings.ca_bundle)
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
                                Attempt("network_error", f"internal error: {type(exc).__name__}: {exc}"), 0)
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
        finished: queue.SimpleQueue = queue.SimpleQueue()  # futures as they complete (cheaper than wait())
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
                    fut.add_done_callback(finished.put)
                if not inflight:
                    continue
                fut = finished.get()
                running[inflight.pop(fut)] -= 1
                yield fut.result()
        finally:
            for fut in inflight:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._client.close()
            finally:
                if self.archive is not None:  # seal what the run archived: fsync, rename from .open
                    self.archive.close()

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

    def _entry(self, url, final_url, kind, source, started, fetched_at, att: Attempt, attempts: int,
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
                att = Attempt("blocked_url", f"refused URL scheme/host: {current[:200]!r}")
                return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att, 0)), None
            current = urlunsplit(parts._replace(fragment=""))
            visited.add(current)
            netloc = parts.netloc.lower()
            with self._lock:
                deferred = netloc in self._deferred
            if deferred:
                att = Attempt("http_error", f"host {netloc} deferred to next run (Retry-After above cap)")
                return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att, 0)), None
            try:
                self.guard.resolve(parts.hostname, parts.port or (443 if parts.scheme.lower() == "https" else 80))
            except BlockedAddress as exc:
                att = Attempt("blocked_url", str(exc))
                return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att, 0)), None
            except (OSError, UnicodeError, ValueError) as exc:
                att = Attempt("network_error", f"DNS resolution failed for {parts.hostname}: {exc}")
                return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att, 0)), None
            if kind != "robots" and self.settings.respect_robots:
                rules = self._robots_for(parts.scheme.lower(), netloc)
                path = parts.path or "/"
                if parts.query:
                    path += "?" + parts.query
                if not rules.allowed(pct_normalize(path)):
                    why = rules.reason if rules.disallow_all else "disallowed by robots.txt"
                    att = Attempt("robots_disallowed", why)
                    return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att, 0)), None
            att, attempts = self._with_retries(current, netloc, kind, conditional)
            if att.outcome == "redirect":
                hops += 1
                target = urljoin(current, att.location or "")
                tparts = urlsplit(target)
                if tparts.scheme.lower() not in ALLOWED_SCHEMES or not tparts.hostname:
                    att = Attempt("blocked_url", f"redirect to refused URL {target[:200]!r}", status=att.status)
                    return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att,
                                                       attempts)), None
                target = urlunsplit(tparts._replace(fragment=""))
                if target in visited:
                    att = Attempt("too_many_redirects", f"redirect loop at {target}", status=att.status)
                    return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att,
                                                       attempts)), None
                if hops > self.settings.max_redirects:
                    att = Attempt("too_many_redirects", f"more than {self.settings.max_redirects} redirects",
                                  status=att.status)
                    return FetchResult(log=self._entry(url, current, kind, source, started, fetched_at, att,
                                                       attempts)), None
                current = target
                continue
            return self._finish(url, current, kind, source, started, fetched_at, att, attempts)

    def _finish(self, url, final_url, kind, source, started, fetched_at, att: Attempt, attempts: int):
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

    def _attempt(self, url: str, netloc: str, kind: str, conditional: Conditional | None) -> Attempt:
        st = self._host(netloc)
        with st.sem:
            self._acquire_turn(st)
            try:
                with self._lock:
                    self._stats["requests"] += 1
                    if kind == "robots":
                        self._stats["robots_fetches"] += 1
                # the total deadline is real time (the socket layer enforces it too)
                set_deadline(time.monotonic() + self.settings.timeout_s)
                try:
                    return exchange(self._client, url, kind, conditional, timeout_s=self.settings.timeout_s,
                                    connect_timeout_s=self.settings.connect_timeout_s, cap=self._cap(kind),
                                    now=self._now)
                finally:
                    set_deadline(None)
            finally:
                self._global.release()

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
