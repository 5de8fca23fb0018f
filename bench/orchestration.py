"""Prefect orchestration overhead of ``newsmill ingest``: flow wall time minus the work done in it.

Serves N small generated article pages on loopback (one in-process threaded HTTP server: ``/robots.txt``,
``/feed.xml`` RSS listing every page, ``/a/<n>.html``), runs the ``ingest`` flow against a real Prefect
API server (``prefect server start``, temp ``PREFECT_HOME``) with ``per_host_delay_s = 0`` and reports,
from the flow's summary ``counts``:

* ``wall_s`` — the flow body's wall time (``run_ingest`` start to end, inside the flow run);
* ``work_s`` — discover + plan + write + the busiest overlap-free view of fetch/extract: since batches of
  one host never run concurrently (politeness) and all pages are on one host here, fetch + clean_extract
  of the batches run one after another, so ``work_s = discover + plan + fetch + clean_extract + write``;
* ``overhead_s = wall_s - work_s`` (task submission, state reporting, artifacts, futures) and per task;
* ``outer_s`` — the whole ``flow()`` call as seen by the caller (adds flow-run creation and teardown).

Usage::

    .venv/bin/python bench/orchestration.py --n 1000 [--batch-size 100] [--json]
    .venv/bin/python bench/orchestration.py --demo        # the bundled demo site (config/demo)

The :class:`LoopbackSite` helper is also used by the Prefect end-to-end tests (request counts per path,
an optional gate that holds requests for chosen paths).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_WORDS = ("council budget river school harbour station election museum festival bridge library market "
          "report minister weather energy housing transport hospital court farmers teachers scientists "
          "volunteers residents officials engineers survey plan vote funding season project community "
          "announced reported said expected approved rejected opened closed increased reduced warned").split()


def article_html(n: int, base_url: str) -> str:
    rnd = random.Random(n)
    title = f"Story {n}: " + " ".join(rnd.choice(_WORDS) for _ in range(6)).capitalize()
    paras = []
    for _ in range(6):
        sentences = []
        for _ in range(4):
            words = [rnd.choice(_WORDS) for _ in range(rnd.randint(10, 18))]
            sentences.append(" ".join(words).capitalize() + ".")
        paras.append("<p>" + " ".join(sentences) + "</p>")
    url = f"{base_url}/a/{n}.html"
    date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ld = json.dumps({"@context": "https://schema.org", "@type": "NewsArticle", "headline": title,
                     "datePublished": date, "author": {"@type": "Person", "name": f"Reporter {n % 7}"},
                     "publisher": {"@type": "Organization", "name": "Loopback Gazette"}})
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<link rel=\"canonical\" href=\"{url}\"><meta property=\"og:url\" content=\"{url}\">"
            f"<script type=\"application/ld+json\">{ld}</script></head><body>"
            f"<nav><a href=\"/\">Home</a> <a href=\"/world\">World</a></nav>"
            f"<article><h1>{title}</h1><p class=\"byline\">By Reporter {n % 7}</p>{''.join(paras)}</article>"
            f"<footer><p>© 2025 Loopback Gazette. All rights reserved.</p></footer></body></html>")


class LoopbackSite:
    """N generated article pages + an RSS feed on ``http://127.0.0.1:PORT`` (in-process threads).

    ``counts`` is a Counter of request paths. ``hold(paths)`` makes requests for those paths wait until
    ``release()`` (``held`` counts the requests waiting)."""

    def __init__(self, n: int, host: str = "127.0.0.1"):
        self.n = n
        self.counts: Counter = Counter()
        self._lock = threading.Lock()
        self._gate = threading.Event()
        self._gate.set()
        self._held_paths: set[str] = set()
        self.held = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                with site._lock:
                    site.counts[path] += 1
                    hold = path in site._held_paths and not site._gate.is_set()
                    if hold:
                        site.held += 1
                if hold:
                    site._gate.wait(120)
                status, ctype, body = site._page(path)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, i: int) -> str:
        return f"{self.base_url}/a/{i}.html"

    def _page(self, path: str):
        if path == "/robots.txt":
            return 200, "text/plain", "User-agent: *\nAllow: /\n"
        if path == "/feed.xml":
            now = format_datetime(datetime.now(timezone.utc), usegmt=True)
            items = "".join(f"<item><title>Story {i}</title><link>{self.url(i)}</link>"
                            f"<pubDate>{now}</pubDate></item>" for i in range(self.n))
            return 200, "application/rss+xml", (
                f"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Loopback Gazette</title>"
                f"<link>{self.base_url}/</link><description>test</description>{items}</channel></rss>")
        if path.startswith("/a/") and path.endswith(".html"):
            try:
                i = int(path[3:-5])
            except ValueError:
                i = -1
            if 0 <= i < self.n:
                return 200, "text/html; charset=utf-8", article_html(i, self.base_url)
        return 404, "text/html", "<html><body>not found</body></html>"

    def hold(self, paths) -> None:
        with self._lock:
            self._held_paths = set(paths)
            self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.release()
        self.server.shutdown()
        self.server.server_close()


def write_config(path: Path, base_url: str, *, batch_size: int = 100, workers: int = 1,
                 max_workers: int = 4, task_runner: str = "threads", dask_address: str = "",
                 archive_warc: bool = True) -> Path:
    path.write_text(f"""
[fetch]
allow_networks = ["127.0.0.0/8"]
per_host_delay_s = 0
retries = 0
timeout_s = 30
concurrency = 16
per_host_concurrency = 8
archive_warc = {str(archive_warc).lower()}

[extract]
workers = {workers}
batch_size = {batch_size}

[runner]
task_runner = "{task_runner}"
max_workers = {max_workers}
dask_address = "{dask_address}"

[[sources]]
name = "gazette"
feeds = ["{base_url}/feed.xml"]
""", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- bench


def overhead(counts: dict) -> dict:
    t = counts.get("timings_s", {})
    work = sum(t.get(k, 0.0) for k in ("discover", "plan", "fetch", "clean_extract", "write", "consolidate"))
    wall = counts["wall_s"]
    return {"wall_s": wall, "work_s": round(work, 3), "overhead_s": round(wall - work, 3),
            "timings_s": t, "pages": counts.get("pages_fetched"), "articles": counts.get("articles_written")}


def _start_server(home: Path):
    sys.path.insert(0, str(REPO))
    from newsmill.flows.server import start_server
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update({"PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING"})
    proc, url = start_server("127.0.0.1", port, log_path=home / "server.log")
    os.environ["PREFECT_API_URL"] = url
    return proc


def run_once(cfg: Path, warehouse: Path) -> dict:
    from newsmill.flows.ingest import default_task_runner, ingest
    from newsmill.tasks.config import load_settings

    settings = load_settings(cfg)
    flow = ingest.with_options(task_runner=default_task_runner(settings))
    t0 = time.perf_counter()
    counts = flow(config=str(cfg), warehouse=str(warehouse)).asdict()
    outer = time.perf_counter() - t0
    res = overhead(counts)
    res["outer_s"] = round(outer, 3)
    res["tasks"] = len(counts.get("sources", {})) + -(-(counts.get("pages_fetched") or 0) // max(1, settings.extract.batch_size))
    res["overhead_per_task_ms"] = round(1000 * res["overhead_s"] / max(1, res["tasks"]), 1)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="generated pages (default 1000)")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2, help="extraction processes")
    ap.add_argument("--demo", action="store_true", help="measure on the bundled demo site instead")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="newsmill-orch-") as tmp:
        tmp = Path(tmp)
        home = tmp / "prefect-home"
        home.mkdir()
        server = _start_server(home)
        try:
            sys.path.insert(0, str(REPO))
            if args.demo:
                from newsmill.flows.demo import demo_config_file, serve_site

                with serve_site() as base_url:
                    cfg = demo_config_file(base_url, str(tmp))
                    res = run_once(cfg, tmp / "wh")
                res["case"] = "demo"
            else:
                with LoopbackSite(args.n) as site:
                    cfg = write_config(tmp / "bench.toml", site.base_url, batch_size=args.batch_size,
                                       workers=args.workers)
                    res = run_once(cfg, tmp / "wh")
                res["case"] = f"{args.n} generated pages, batch_size {args.batch_size}"
        finally:
            from newsmill.flows.server import stop_server

            stop_server(server)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['case']}: flow body wall {res['wall_s']} s, work {res['work_s']} s, "
              f"orchestration overhead {res['overhead_s']} s ({res['overhead_per_task_ms']} ms/task over "
              f"{res['tasks']} tasks); whole flow() call {res['outer_s']} s; stages {res['timings_s']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
