"""The bundled demo site served on 127.0.0.1 (``newsmill demo`` ingests it; tests and benchmarks serve it).

The site lives in ``config/demo/site/``; text files may contain the placeholder ``{base_url}``, replaced
with ``http://127.0.0.1:PORT`` when served. ``config/demo/demo.toml`` is the demo's newsmill config (same
placeholder). The server answers 404 for unknown paths, serves ``.pdf`` as application/pdf, and sends
ETag/Last-Modified so a second demo run shows conditional requests (``not_modified``).
"""

from __future__ import annotations

import hashlib
import mimetypes
import tempfile
import threading
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from newsmill.tasks.config import DEMO_DIR

SITE_DIR = DEMO_DIR / "site"
DEMO_CONFIG = DEMO_DIR / "demo.toml"
_TEXT_TYPES = {".html": "text/html; charset=utf-8", ".xml": "application/xml; charset=utf-8",
               ".txt": "text/plain; charset=utf-8", ".rss": "application/rss+xml; charset=utf-8"}
_MTIME = formatdate(1_700_000_000, usegmt=True)


def _handler(site: Path, base_url_ref: list[str]):
    class Handler(BaseHTTPRequestHandler):
        server_version = "newsmill-demo/0.1"

        def log_message(self, fmt, *args):  # quiet
            pass

        def do_GET(self):
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            if path.endswith("/"):
                path += "index.html"
            target = (site / path.lstrip("/")).resolve()
            if site not in target.parents or not target.is_file():
                body = b"<html><body><h1>404 Not Found</h1></body></html>"
                self.send_response(404)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            suffix = target.suffix.lower()
            data = target.read_bytes()
            if suffix in _TEXT_TYPES:
                data = data.replace(b"{base_url}", base_url_ref[0].encode())
                ctype = _TEXT_TYPES[suffix]
            else:
                ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            etag = '"' + hashlib.sha1(data).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", _MTIME)
            self.end_headers()
            self.wfile.write(data)

    return Handler


PREFERRED_PORT = 8719  # stable when free, so a second demo run requests the same URLs (conditional GETs)


def _bind(host: str, handler, port: int | None) -> ThreadingHTTPServer:
    for candidate in ([port] if port is not None else [PREFERRED_PORT, 0]):
        try:
            return ThreadingHTTPServer((host, candidate), handler)
        except OSError:
            if port is not None:
                raise
    raise OSError("no port")  # pragma: no cover - port 0 always binds


@contextmanager
def serve_site(site: Path = SITE_DIR, host: str = "127.0.0.1", port: int | None = None):
    """Serve ``site`` on ``host`` (port: the given one, else 8719 when free, else any free port);
    yields the base URL."""
    ref = [""]
    server = _bind(host, _handler(site.resolve(), ref), port)
    server.daemon_threads = True
    ref[0] = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="demo-site", daemon=True)
    thread.start()
    try:
        yield ref[0]
    finally:
        server.shutdown()
        server.server_close()


def demo_config_file(base_url: str, directory: str) -> Path:
    """Write the demo config with ``{base_url}`` filled in; returns its path."""
    text = DEMO_CONFIG.read_text(encoding="utf-8").replace("{base_url}", base_url)
    path = Path(directory) / "demo.toml"
    path.write_text(text, encoding="utf-8")
    return path
