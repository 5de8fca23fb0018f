"""A fault-injecting HTTP server for fetch/discover tests (loopback only).

``FaultServer("127.0.0.2")`` serves routes registered with ``route(path, responder)`` and logs every
request it receives (monotonic time, method, path, headers) so tests can count requests. Responders are
small factories: ``respond`` (static), ``sequence`` (n-th call gets the n-th responder), ``stall``
(sleep before headers), ``drip`` (1 byte per interval), ``truncated`` (Content-Length larger than the
body, then close), ``redirect``, ``gzip_bomb``. ``Canary("127.0.0.3")`` is a listener that must never be
connected to (blocked-address tests count its connections).

Every response closes the connection, so a cut body is unambiguous.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Logged:
    t: float
    method: str
    path: str
    headers: dict[str, str]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def do_GET(self):
        srv = self.server.owner
        entry = Logged(time.monotonic(), "GET", self.path, {k.lower(): v for k, v in self.headers.items()})
        with srv.lock:
            srv.log.append(entry)
            responder = srv.routes.get(self.path) or srv.routes.get(self.path.split("?", 1)[0])
        self.close_connection = True
        try:
            if responder is None:
                default = b"not found" if self.path != "/robots.txt" else b""
                respond(default, status=404, ctype="text/plain")(self)
            else:
                responder(self)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            pass

    # helpers for responders
    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
             content_length: int | None = None) -> None:
        self.send_response_only(status)
        hdrs = {"Connection": "close"}
        hdrs.update(headers or {})
        if "Content-Length" not in hdrs and content_length is not False:
            hdrs["Content-Length"] = str(len(body) if content_length is None else content_length)
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


Responder = Callable[[_Handler], None]


class FaultServer:
    def __init__(self, host: str = "127.0.0.2", port: int = 0):
        self.lock = threading.Lock()
        self.routes: dict[str, Responder] = {}
        self.log: list[Logged] = []
        self._srv = _Server((host, port), _Handler)
        self._srv.owner = self
        self.host, self.port = self._srv.server_address[:2]
        self._thread = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str, responder: Responder) -> str:
        with self.lock:
            self.routes[path] = responder
        return self.url(path)

    def requests(self, path: str | None = None) -> list[Logged]:
        with self.lock:
            return [r for r in self.log if path is None or r.path == path]

    def count(self, path: str) -> int:
        return len(self.requests(path))

    def start(self) -> "FaultServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Canary:
    """A listener that counts connections; blocked targets point here and it must stay at zero."""

    def __init__(self, host: str = "127.0.0.3"):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.host, self.port = self.sock.getsockname()
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            conn.close()

    def stop(self):
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


# ---- responders ----------------------------------------------------------------------------------


def respond(body: bytes | str, status: int = 200, ctype: str | None = "text/html; charset=utf-8",
            headers: dict[str, str] | None = None) -> Responder:
    data = body.encode("utf-8") if isinstance(body, str) else body

    def _r(h: _Handler):
        hdrs = dict(headers or {})
        if ctype:
            hdrs.setdefault("Content-Type", ctype)
        h.send(status, data, hdrs)

    return _r


def sequence(*responders: Responder) -> Responder:
    """The n-th request gets the n-th responder; the last one repeats."""
    calls = [0]
    lock = threading.Lock()

    def _r(h: _Handler):
        with lock:
            i = min(calls[0], len(responders) - 1)
            calls[0] += 1
        responders[i](h)

    return _r


def stall(seconds: float) -> Responder:
    def _r(h: _Handler):
        time.sleep(seconds)
        respond("<html>late</html>")(h)

    return _r


def drip(total: int = 10_000, interval: float = 0.2, ctype: str = "text/html") -> Responder:
    """Headers at once, then one byte every ``interval`` seconds (forever, practically)."""

    def _r(h: _Handler):
        h.send(200, b"", {"Content-Type": ctype}, content_length=total)
        for _ in range(total):
            time.sleep(interval)
            h.wfile.write(b"x")
            h.wfile.flush()

    return _r


def truncated(body: bytes, declared: int, ctype: str = "text/html") -> Responder:
    def _r(h: _Handler):
        h.send(200, body, {"Content-Type": ctype}, content_length=declared)
        h.wfile.flush()
        h.connection.shutdown(socket.SHUT_RDWR)

    return _r


def redirect(location: str, status: int = 302) -> Responder:
    return respond(b"", status=status, ctype=None, headers={"Location": location})


def gzip_bomb(decoded_size: int, ctype: str = "text/html") -> Responder:
    """``Content-Encoding: gzip`` of ``decoded_size`` zero bytes (compressed ~1000:1)."""
    co = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    parts = [co.compress(block) for _ in range(decoded_size // len(block))]
    parts.append(co.flush())
    data = b"".join(parts)

    def _r(h: _Handler):
        h.send(200, data, {"Content-Type": ctype, "Content-Encoding": "gzip"})

    return _r


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body)
