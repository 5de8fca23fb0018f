"""The default transport: connects only to the addresses the guard pinned, with a total deadline per
request enforced on every socket operation (a server dripping a byte a second ends at the deadline)."""

from __future__ import annotations

import os
import ssl
import threading
import time

import httpcore
import httpx

from newsmill.tasks.fetch._guard import AddressGuard, BlockedAddress

_deadline = threading.local()


def set_deadline(deadline: float | None) -> None:
    """This thread's total deadline (``time.monotonic()`` seconds) for the request it sends; None clears it."""
    _deadline.value = deadline


def time_left() -> float:
    """Seconds left before this thread's deadline."""
    return _deadline.value - time.monotonic()


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


def drain(resp: httpx.Response) -> None:
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


def ssl_failure(exc: BaseException) -> ssl.SSLError | None:
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


class PinnedTransport(httpx.HTTPTransport):
    def __init__(self, guard: AddressGuard, max_connections: int, ca_bundle: str = ""):
        # one TLS context (loading the CA bundle costs ~45 ms of CPU), given to httpx so that its own
        # pool, replaced right below, does not load a second one
        ssl_context = _ssl_context(ca_bundle)
        super().__init__(verify=ssl_context, trust_env=False, http1=True, http2=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            network_backend=_PinnedBackend(guard),
        )
