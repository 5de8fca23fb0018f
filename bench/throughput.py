"""End-to-end throughput benchmark (issue 7): ``newsmill ingest`` vs a bare fetch+extract+write baseline.

What it does, in one run:

1. Serves N real news pages (the AEB set, ``shared/benchmarks/aeb/html``; 181 pages, each copied under
   several URLs) on loopback: one threaded HTTP/1.1 server per host on 127.0.0.2, 127.0.0.3, … (all of
   127/8 is loopback on Linux), in a separate process so the server's CPU does not share a GIL with the
   baseline. Each host has ``/robots.txt`` (allow all), ``/feed.xml`` (RSS listing its URLs with recent
   dates; always 200) and its pages (``ETag`` + ``Last-Modified``; ``If-None-Match`` /
   ``If-Modified-Since`` answer 304). Every copy is its own article: the page's own URL (ground truth,
   ``<link rel=canonical>``, ``og:url``) is replaced by the copy's URL, and copies of one page are spread
   so that a batch of one host does not see the same page twice.
2. Starts one real Prefect API server (``prefect server start``, ``PREFECT_HOME`` in a temp dir,
   analytics off) so Prefect's own startup is not inside every measurement (reported separately).
3. Alternating A/B (A/B/A/B with ``--repeat``):

   (a) ``newsmill ingest`` end to end: the real CLI in a subprocess, a config with one source per host
       (``per_host_delay_s = 0``, ``allow_networks = ["127.0.0.0/8"]``), a fresh warehouse; peak RSS of
       the process tree (psutil, sum over the subprocess and its children every 0.2 s); the per-stage
       breakdown from the run's ``counts`` (``newsmill sql``); then the incremental case: a second ingest
       over the same unchanged pages (all 304) and its time as a share of the first.
   (b) the bare baseline: httpx in threads fetching the same URLs, each page handed as it arrives to a
       2-process pool running ``trafilatura.bare_extraction(html, with_metadata=True)``, pyarrow writing
       one Parquet file.

Usage::

    .venv/bin/python bench/throughput.py [--n 1000] [--hosts 4] [--repeat 1] [--json]
    .venv/bin/python bench/throughput.py --n 10000 --only newsmill     # memory target

Figures: pages/s = N / wall seconds of the whole command (subprocess start to exit for newsmill; pool
start to Parquet closed for the baseline). The wall time is cut along the run's critical path
(``outside_flow`` = process start, imports, flow-run creation and teardown, exit; ``discover``; ``plan``;
``batch_phase`` = fetching, extraction and commits overlapped; ``consolidate``; ``flow_other``), and the
work inside the batch phase is reported summed over concurrent batches (``fetch``, ``clean_extract``,
``write``), which can add up to more than its wall time (see :func:`stage_breakdown`).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "benchmarks" / "aeb"
VENV_BIN = Path(sys.executable).parent

_CANONICAL = re.compile(rb"""<link[^>]+rel=["']?canonical["']?[^>]*>""", re.I)
_OG_URL = re.compile(rb"""<meta[^>]+property=["']?og:url["']?[^>]*>""", re.I)
_EXCLUDE_PIDS: set[int] = set()  # not counted in the baseline's RSS
_HREF = re.compile(rb"""(?:href|content)=["']([^"']+)["']""", re.I)


# ---------------------------------------------------------------------------------------------- pages


def load_pages(data_dir: Path) -> list[tuple[str, bytes, tuple[bytes, ...]]]:
    """[(page id, html bytes, the page's own URLs to rewrite per copy)] sorted by id."""
    truth = {}
    gt = data_dir / "ground-truth.json"
    if gt.exists():
        truth = json.loads(gt.read_text(encoding="utf-8"))
    pages = []
    for path in sorted((data_dir / "html").glob("*.html.gz")):
        pid = path.name.split(".", 1)[0]
        html = gzip.decompress(path.read_bytes())
        own: set[bytes] = set()
        url = (truth.get(pid) or {}).get("url")
        if url:
            own.add(url.encode())
        for rx in (_CANONICAL, _OG_URL):
            for tag in rx.findall(html):
                m = _HREF.search(tag)
                if m and m.group(1).startswith((b"http://", b"https://")):
                    own.add(m.group(1))
        # longest first so a URL that is a prefix of another does not break the longer one
        pages.append((pid, html, tuple(sorted(own, key=len, reverse=True))))
    if not pages:
        raise SystemExit(f"no pages in {data_dir / 'html'}")
    return pages


def url_path(i: int) -> str:
    return f"/news/{i:06d}.html"


def plan_urls(n: int, bases: list[str]) -> list[tuple[int, str]]:
    """URL i lives on host i % hosts and is a copy of page i % n_pages (see ``page_of``)."""
    return [(i, bases[i % len(bases)] + url_path(i)) for i in range(n)]


def page_of(i: int, n_pages: int) -> int:
    return i % n_pages


# ---------------------------------------------------------------------------------------------- server


class _Gzipped(bytes):
    """A body already gzip-compressed (served with Content-Encoding: gzip)."""


def page_body(page: tuple[str, bytes, tuple[bytes, ...]], url: str) -> bytes:
    """The copy of ``page`` served at ``url``: the page's own URLs replaced by ``url``."""
    _, html, own = page
    for u in own:
        html = html.replace(u, url.encode())
    return html


def _make_handler(pages, n: int, hosts: int, started: float, bases: list[str], gzip_bodies: bool):
    from http.server import BaseHTTPRequestHandler

    bodies = None
    if gzip_bodies:  # compressed once up front (level 1, nginx's default), so serving costs no CPU
        bodies = [_Gzipped(gzip.compress(page_body(pages[page_of(i, len(pages))],
                                                   bases[i % hosts] + url_path(i)), compresslevel=1))
                  for i in range(n)]

    last_modified_ts = started - 3600
    last_modified = formatdate(last_modified_ts, usegmt=True)
    etags = [hashlib.sha1(html).hexdigest()[:16] for _, html, _ in pages]
    counters = {"200": 0, "304": 0, "404": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes
        server_version = "newsmill-bench/0.1"

        def log_message(self, fmt, *args):  # quiet
            pass

        def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
            with lock:
                counters[str(status)] = counters.get(str(status), 0) + 1
            encode = isinstance(body, _Gzipped)
            if encode and "gzip" not in (self.headers.get("Accept-Encoding") or ""):
                body, encode = gzip.decompress(body), False
            self.send_response(status)
            if status != 304:
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
            if encode:
                self.send_header("Content-Encoding", "gzip")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if status != 304 and self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            host_index = self.server.host_index
            base = self.server.base_url
            path = self.path.split("?", 1)[0]
            if path == "/robots.txt":
                return self._send(200, b"User-agent: *\nAllow: /\n", "text/plain; charset=utf-8")
            if path == "/_stats":
                with lock:
                    body = json.dumps(counters).encode()
                return self._send(200, body, "application/json")
            if path == "/feed.xml":
                now = time.time()
                items = []
                for k, i in enumerate(range(host_index, n, hosts)):
                    url = base + url_path(i)
                    pid = pages[page_of(i, len(pages))][0]
                    date = formatdate(now - 60 - k, usegmt=True)
                    items.append(f"<item><title>Article {i} ({pid[:8]})</title><link>{escape(url)}</link>"
                                 f"<guid>{escape(url)}</guid><pubDate>{date}</pubDate></item>")
                body = ('<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
                        f"<title>bench host {host_index}</title><link>{escape(base)}/</link>"
                        "<description>newsmill throughput benchmark</description>"
                        + "".join(items) + "</channel></rss>\n").encode()
                return self._send(200, body, "application/rss+xml; charset=utf-8")
            m = re.fullmatch(r"/news/(\d{6})\.html", path)
            if m:
                i = int(m.group(1))
                if i < n and i % hosts == host_index:
                    p = page_of(i, len(pages))
                    etag = f'"{etags[p]}-{i}"'
                    inm = self.headers.get("If-None-Match")
                    ims = self.headers.get("If-Modified-Since")
                    fresh = False
                    if inm is not None:
                        fresh = etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
                    elif ims:
                        try:
                            fresh = parsedate_to_datetime(ims).timestamp() >= int(last_modified_ts)
                        except (TypeError, ValueError):
                            fresh = False
                    hdrs = {"ETag": etag, "Last-Modified": last_modified, "Cache-Control": "max-age=0"}
                    if fresh:
                        return self._send(304, b"", "", hdrs)
                    html = bodies[i] if bodies is not None else page_body(pages[p], base + url_path(i))
                    return self._send(200, html, "text/html; charset=utf-8", hdrs)
            return self._send(404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html")

    return Handler


def _serve(conn, data_dir: str, n: int, hosts: int, first_ip: int, gzip_bodies: bool) -> None:
    """Child process: one ThreadingHTTPServer per host; sends the base URLs, runs until told to stop."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pages = load_pages(Path(data_dir))
    servers = []
    try:
        for h in range(hosts):
            ip = f"127.0.0.{first_ip + h}"
            srv = ThreadingHTTPServer((ip, 0), BaseHTTPRequestHandler, bind_and_activate=True)
            srv.daemon_threads = True
            srv.request_queue_size = 128
            srv.host_index = h
            srv.base_url = f"http://{ip}:{srv.server_address[1]}"
            servers.append(srv)
        handler = _make_handler(pages, n, hosts, time.time(), [s.base_url for s in servers], gzip_bodies)
        for srv in servers:
            srv.RequestHandlerClass = handler
            threading.Thread(target=srv.serve_forever, daemon=True, name=f"host-{srv.host_index}").start()
        conn.send({"bases": [s.base_url for s in servers], "pages": len(pages)})
        conn.recv()  # block until the parent says stop (or dies: EOFError)
    except EOFError:
        pass
    except Exception as exc:  # report to the parent instead of hanging it
        try:
            conn.send({"error": repr(exc)})
        except Exception:
            pass
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


@contextmanager
def serve_pages(data_dir: Path, n: int, hosts: int, first_ip: int = 2, gzip_bodies: bool = True):
    """Yields (base URLs, number of distinct pages)."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child, str(data_dir), n, hosts, first_ip, gzip_bodies),
                       daemon=True, name="bench-sites")
    proc.start()
    _EXCLUDE_PIDS.add(proc.pid)
    try:
        if not parent.poll(300):
            raise RuntimeError("benchmark sites did not start")
        info = parent.recv()
        if "error" in info:
            raise RuntimeError(f"benchmark sites failed: {info['error']}")
        yield info["bases"], info["pages"]
    finally:
        try:
            parent.send("stop")
        except Exception:
            pass
        proc.join(10)
        if proc.is_alive():
            proc.kill()


def server_stats(bases: list[str]) -> dict:
    import httpx

    total: dict[str, int] = {}
    with httpx.Client(timeout=5) as c:
        for b in bases[:1]:  # the counters are shared by all hosts (one process)
            for k, v in c.get(b + "/_stats").json().items():
                total[k] = total.get(k, 0) + v
    return total


# ---------------------------------------------------------------------------------------------- prefect


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def prefect_env(home: Path, port: int) -> dict:
    env = dict(os.environ)
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        "DO_NOT_TRACK": "1",
    })
    return env


@contextmanager
def prefect_server(workdir: Path, api_url: str | None = None):
    """Yields (env for newsmill subprocesses, startup seconds). With ``api_url``: use that server."""
    import httpx

    home = workdir / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    if api_url:
        env = dict(os.environ)
        env.update({"PREFECT_API_URL": api_url, "PREFECT_HOME": str(home), "DO_NOT_TRACK": "1",
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
        yield env, None
        return
    port = free_port()
    env = prefect_env(home, port)
    log = open(home / "server.log", "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("prefect server did not start:\n"
                                   + (home / "server.log").read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        startup = time.perf_counter() - t0
        yield env, startup
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# ---------------------------------------------------------------------------------------------- (a) newsmill


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ValueError(f"unsupported TOML value {v!r}")


def write_config(path: Path, bases: list[str], extra_toml: str = "") -> Path:
    """The ingest config: one source per host, no politeness delay, loopback allowed; ``extra_toml``
    (e.g. ``[extract]\\nbatch_size = 200``) is merged over it."""
    import tomllib

    cfg: dict = {"fetch": {"per_host_delay_s": 0, "allow_networks": ["127.0.0.0/8"]}}
    for section, values in tomllib.loads(extra_toml or "").items():
        if not isinstance(values, dict):
            raise SystemExit(f"--set: expected [section] tables, got {section!r}")
        cfg.setdefault(section, {}).update(values)
    lines = []
    for section, values in cfg.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    for h, base in enumerate(bases):
        lines += ["[[sources]]", f'name = "bench-h{h}"', f'feeds = ["{base}/feed.xml"]', ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class RssSampler:
    """Max over time of the summed RSS of a process and its descendants, sampled every ``interval``."""

    def __init__(self, pid: int, interval: float = 0.2):
        import psutil

        self._psutil = psutil
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self.cpu_s = 0.0  # CPU seconds of the tree (user + system; exited children counted at exit)
        self._cpu: dict[int, float] = {}
        self._sys0 = psutil.cpu_times()
        self.other_cpu_share = 0.0  # share of all cores busy with processes outside the tree
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def _sample(self) -> None:
        ps = self._psutil
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except ps.Error:
            return
        total = 0
        for p in procs:
            try:
                with p.oneshot():
                    total += p.memory_info().rss
                    ct = p.cpu_times()
                    self._cpu[p.pid] = ct.user + ct.system
            except ps.Error:
                pass
        self.peak = max(self.peak, total)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        ps = self._psutil
        # sampled per process (misses the last < interval of each); the caller may set a better figure
        self.cpu_s = max(self.cpu_s, sum(self._cpu.values()))
        t1 = ps.cpu_times()
        busy = lambda t: t.user + t.system + getattr(t, "nice", 0) + getattr(t, "irq", 0) + \
            getattr(t, "softirq", 0)
        total = sum(t1) - sum(self._sys0)
        if total > 0:
            self.other_cpu_share = max(0.0, (busy(t1) - busy(self._sys0) - self.cpu_s) / total)
        return False


def read_counts(warehouse: Path, env: dict) -> dict:
    """The last run's ``counts`` (``newsmill sql``; DuckDB over the runs table as a fallback)."""
    q = "select counts from runs order by started_at desc limit 1"
    try:
        out = subprocess.run([str(VENV_BIN / "newsmill"), "sql", "--warehouse", str(warehouse),
                              "--format", "json", q], env=env, capture_output=True, text=True, timeout=120)
        if out.returncode == 0 and out.stdout.strip():
            data = _loads_loose(out.stdout)
            row = data[0] if isinstance(data, list) else data
            c = row.get("counts") if isinstance(row, dict) else None
            return json.loads(c) if isinstance(c, str) else c
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError, TypeError):
        pass
    import duckdb

    files = sorted(str(p) for p in (warehouse / "runs").rglob("*.parquet"))
    if not files:
        return {}
    con = duckdb.connect()
    row = con.execute("select counts from read_parquet(?, union_by_name=true) order by started_at desc "
                      "limit 1", [files]).fetchone()
    return json.loads(row[0]) if row and row[0] else {}


def _loads_loose(text: str):
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:  # JSON lines
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_newsmill(config: Path, warehouse: Path, env: dict, log_path: Path,
                 extra_args: tuple[str, ...] = ()) -> dict:
    cmd = [str(VENV_BIN / "newsmill"), "ingest", "--config", str(config), "--warehouse", str(warehouse),
           "--quiet", *extra_args]
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
        with RssSampler(proc.pid) as rss:
            # wait4: the CPU time of the whole tree (each process reaps its children: pool workers ->
            # forkserver -> newsmill), not just a sampled approximation
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = rc = os.waitstatus_to_exitcode(status)
            rss.cpu_s = usage.ru_utime + usage.ru_stime
        wall = time.perf_counter() - t0
    result = {"wall_s": round(wall, 3), "peak_rss_mb": round(rss.peak / 2**20, 1), "rc": rc,
              "rss_samples": rss.samples, "cpu_s": round(rss.cpu_s, 2),
              "other_cpu_share": round(rss.other_cpu_share, 3)}
    if rc != 0:
        result["error"] = log_path.read_text(errors="replace")[-4000:]
        return result
    counts = read_counts(warehouse, env)
    result["counts"] = counts
    result["pages_fetched"] = counts.get("pages_fetched")
    result["articles_written"] = counts.get("articles_written")
    result["outcomes"] = counts.get("outcomes")
    result["flow_wall_s"] = counts.get("wall_s")
    result["stages_s"], result["summed_s"] = stage_breakdown(wall, counts)
    return result


def stage_breakdown(wall: float, counts: dict) -> tuple[dict, dict]:
    """(the command's wall time cut along its critical path, work summed over concurrent batches).

    Critical path: ``outside_flow`` (process start, imports, Prefect flow-run creation and teardown,
    interpreter exit = command wall - the flow's own wall), ``discover``, ``plan``, ``batch_phase``
    (fetching, extraction and the flow process's commits, overlapped), ``consolidate`` (end-of-run file
    merge), ``flow_other`` (the rest of the flow: lock, run row, artifacts). Summed: ``fetch`` and
    ``clean_extract`` per batch task (concurrent batches add up), ``write`` (commits in the flow
    process, overlapped with the batches)."""
    t = dict(counts.get("timings_s") or {})
    flow_wall = float(counts.get("wall_s") or 0.0)
    path = {
        "outside_flow": wall - flow_wall,
        "discover": t.get("discover", 0.0),
        "plan": t.get("plan", 0.0),
        "batch_phase": t.get("batch_phase", 0.0),
        "consolidate": t.get("consolidate", 0.0),
    }
    path["flow_other"] = flow_wall - sum(v for k, v in path.items() if k != "outside_flow")
    summed = {k: t.get(k, 0.0) for k in ("fetch", "clean_extract", "write")}
    return {k: round(v, 3) for k, v in path.items()}, {k: round(v, 3) for k, v in summed.items()}


# ---------------------------------------------------------------------------------------------- (b) baseline


def _bare_init() -> None:  # pragma: no cover - runs in the child
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import trafilatura  # noqa: F401  (import once per worker, not per page)


def _bare_extract(url: str, html: bytes) -> dict | None:  # pragma: no cover - runs in the child
    import trafilatura

    doc = trafilatura.bare_extraction(html, url=url, with_metadata=True)
    if doc is None:
        return None
    d = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    out = {}
    for k, v in d.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (list, tuple)):
            out[k] = ", ".join(str(x) for x in v)
    out["url"] = url
    return out


def run_baseline(urls: list[str], workers: int = 2, threads: int = 16, out_dir: Path | None = None) -> dict:
    import httpx
    import psutil
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir = out_dir or Path(tempfile.mkdtemp(prefix="bench-bare-"))
    me = psutil.Process()
    peak = [0]

    def sample():
        total = me.memory_info().rss
        for c in me.children(recursive=True):
            if c.pid in _EXCLUDE_PIDS:  # the benchmark's own site server
                continue
            try:
                total += c.memory_info().rss
            except psutil.Error:
                pass
        peak[0] = max(peak[0], total)

    sys0 = psutil.cpu_times()
    me_cpu0 = sum(me.cpu_times()[:2])
    pool_cpu: dict[int, float] = {}
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("forkserver")
    fetch_errors = 0
    rows: list[dict] = []
    fetched = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_bare_init) as pool, \
            httpx.Client(timeout=30, limits=httpx.Limits(max_connections=threads,
                                                          max_keepalive_connections=threads)) as client:
        def get(url):
            r = client.get(url)
            r.raise_for_status()
            return url, r.content

        extract_futs = []
        with ThreadPoolExecutor(max_workers=threads) as tp:
            for fut in as_completed([tp.submit(get, u) for u in urls]):
                try:
                    url, body = fut.result()
                except Exception:
                    fetch_errors += 1
                    continue
                fetched += 1
                extract_futs.append(pool.submit(_bare_extract, url, body))
        t_fetched = time.perf_counter()
        for k, fut in enumerate(as_completed(extract_futs)):
            d = fut.result()
            if d is not None:
                rows.append(d)
            if k % 50 == 0:
                sample()
        for wp in list(getattr(pool, "_processes", {}).values()):
            try:
                pool_cpu[wp.pid] = sum(psutil.Process(wp.pid).cpu_times()[:2])
            except psutil.Error:
                pass
    t_extracted = time.perf_counter()
    keys = sorted({k for r in rows for k in r})
    table = pa.table({k: pa.array([None if r.get(k) is None else str(r.get(k)) for r in rows], pa.string())
                      for k in keys})
    pq.write_table(table, out_dir / "bare.parquet", compression="zstd")
    wall = time.perf_counter() - t0
    own_cpu = sum(me.cpu_times()[:2]) - me_cpu0 + sum(pool_cpu.values())
    sys1 = psutil.cpu_times()
    busy = lambda t: t.user + t.system + getattr(t, "nice", 0) + getattr(t, "irq", 0) + \
        getattr(t, "softirq", 0)
    total = sum(sys1) - sum(sys0)
    other = max(0.0, (busy(sys1) - busy(sys0) - own_cpu) / total) if total > 0 else 0.0
    return {"wall_s": round(wall, 3), "cpu_s": round(own_cpu, 2), "other_cpu_share": round(other, 3),
            "pages": len(urls), "fetched": fetched, "fetch_errors": fetch_errors,
            "extracted": len(rows), "fetch_done_at_s": round(t_fetched - t0, 3),
            "extract_done_at_s": round(t_extracted - t0, 3),
            "write_s": round(wall - (t_extracted - t0), 3),
            "peak_rss_mb": round(peak[0] / 2**20, 1)}


# ---------------------------------------------------------------------------------------------- driver


def _pps(n: int, wall: float | None) -> float | None:
    return round(n / wall, 2) if wall else None


def _median(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


def run(n: int = 1000, hosts: int = 4, repeat: int = 1, data_dir: Path = DEFAULT_DATA,
        only: str | None = None, api_url: str | None = None, workdir: Path | None = None,
        extra_toml: str = "", incremental: bool = True, gzip_bodies: bool = True,
        log=print) -> dict:
    tmp_ctx = tempfile.TemporaryDirectory(prefix="newsmill-bench-") if workdir is None else None
    work = Path(tmp_ctx.name) if tmp_ctx else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"n": n, "hosts": hosts, "repeat": repeat, "cores": os.cpu_count(), "runs": []}
    try:
        with serve_pages(data_dir, n, hosts, gzip_bodies=gzip_bodies) as (bases, n_pages):
            report["distinct_pages"] = n_pages
            report["sites"] = bases
            urls = [u for _, u in plan_urls(n, bases)]
            config = write_config(work / "bench.toml", bases, extra_toml)
            with prefect_server(work, api_url) if only != "baseline" else _nullctx() as (env, startup):
                report["prefect_server_startup_s"] = round(startup, 3) if startup else None
                if startup:
                    log(f"prefect server up in {startup:.1f} s")
                for r in range(repeat):
                    entry: dict = {"round": r + 1}
                    if only != "baseline":
                        wh = work / f"wh-{r + 1}"
                        shutil.rmtree(wh, ignore_errors=True)
                        log(f"[{r + 1}/{repeat}] newsmill ingest, N={n} ...")
                        first = run_newsmill(config, wh, env, work / f"ingest-{r + 1}-first.log")
                        entry["newsmill"] = first
                        if first.get("rc") != 0:
                            log("newsmill ingest failed:\n" + first.get("error", ""))
                            report["runs"].append(entry)
                            break
                        log(f"    {_pps(n, first['wall_s'])} pages/s, wall {first['wall_s']} s, "
                            f"peak RSS {first['peak_rss_mb']} MB")
                        if incremental:
                            log(f"[{r + 1}/{repeat}] newsmill ingest again (unchanged pages) ...")
                            second = run_newsmill(config, wh, env, work / f"ingest-{r + 1}-second.log")
                            second["share_of_first"] = round(second["wall_s"] / first["wall_s"], 3)
                            entry["incremental"] = second
                            log(f"    wall {second['wall_s']} s = {second['share_of_first']:.1%} of the first")
                        shutil.rmtree(wh, ignore_errors=True)
                    if only != "newsmill":
                        log(f"[{r + 1}/{repeat}] bare baseline, N={n} ...")
                        bdir = work / f"bare-{r + 1}"
                        bdir.mkdir(exist_ok=True)
                        entry["baseline"] = run_baseline(urls, out_dir=bdir)
                        log(f"    {_pps(n, entry['baseline']['wall_s'])} pages/s, "
                            f"wall {entry['baseline']['wall_s']} s")
                        shutil.rmtree(bdir, ignore_errors=True)
                    report["runs"].append(entry)
                report["server_requests"] = server_stats(bases)
    finally:
        if tmp_ctx:
            tmp_ctx.cleanup()
    summarize(report)
    return report


@contextmanager
def _nullctx():
    yield None, None


def summarize(report: dict) -> None:
    n = report["n"]
    runs = report["runs"]
    nm = [r["newsmill"] for r in runs if "newsmill" in r and r["newsmill"].get("rc") == 0]
    inc = [r["incremental"] for r in runs if "incremental" in r and r["incremental"].get("rc") == 0]
    bl = [r["baseline"] for r in runs if "baseline" in r]
    s: dict = {}
    if nm:
        s["newsmill_wall_s"] = _median([x["wall_s"] for x in nm])
        s["newsmill_pages_per_s"] = _pps(n, s["newsmill_wall_s"])
        s["newsmill_peak_rss_mb"] = max(x["peak_rss_mb"] for x in nm)
        s["newsmill_cpu_ms_per_page"] = round(1000 * _median([x.get("cpu_s") for x in nm]) / n, 1)
        s["other_cpu_share_during_newsmill"] = _median([x.get("other_cpu_share") for x in nm])
        for part in ("stages_s", "summed_s"):
            s[part] = {k: _median([x.get(part, {}).get(k) for x in nm]) for k in nm[0].get(part, {})}
        s["articles_written"] = nm[0].get("articles_written")
        s["pages_fetched"] = nm[0].get("pages_fetched")
    if inc:
        s["incremental_wall_s"] = _median([x["wall_s"] for x in inc])
        s["incremental_share"] = _median([x["share_of_first"] for x in inc])
        s["incremental_stages_s"] = {k: _median([x.get("stages_s", {}).get(k) for x in inc])
                                     for k in inc[0].get("stages_s", {})}
        s["incremental_summed_s"] = {k: _median([x.get("summed_s", {}).get(k) for x in inc])
                                     for k in inc[0].get("summed_s", {})}
        s["incremental_outcomes"] = inc[0].get("outcomes")
    if bl:
        s["baseline_wall_s"] = _median([x["wall_s"] for x in bl])
        s["baseline_pages_per_s"] = _pps(n, s["baseline_wall_s"])
        s["baseline_peak_rss_mb"] = max(x["peak_rss_mb"] for x in bl)
        s["baseline_cpu_ms_per_page"] = round(1000 * _median([x.get("cpu_s") for x in bl]) / n, 1)
        s["other_cpu_share_during_baseline"] = _median([x.get("other_cpu_share") for x in bl])
    if nm and bl:
        s["ratio"] = round(s["newsmill_pages_per_s"] / s["baseline_pages_per_s"], 3)
    report["summary"] = s


def print_report(report: dict) -> None:
    s = report["summary"]
    n = report["n"]
    print()
    print(f"newsmill throughput benchmark: N={n} pages ({report.get('distinct_pages')} distinct), "
          f"{report['hosts']} hosts, {report['repeat']} round(s), {report['cores']} cores")
    if report.get("prefect_server_startup_s"):
        print(f"  prefect server startup (not in the figures): {report['prefect_server_startup_s']} s")
    if "newsmill_pages_per_s" in s:
        print(f"  newsmill ingest : {s['newsmill_pages_per_s']:>7} pages/s  wall {s['newsmill_wall_s']} s  "
              f"peak RSS {s['newsmill_peak_rss_mb']} MB  "
              f"(fetched {s.get('pages_fetched')}, articles written {s.get('articles_written')})")
    if "baseline_pages_per_s" in s:
        print(f"  bare baseline   : {s['baseline_pages_per_s']:>7} pages/s  wall {s['baseline_wall_s']} s  "
              f"peak RSS {s['baseline_peak_rss_mb']} MB")
    if "ratio" in s:
        print(f"  ratio newsmill / baseline: {s['ratio']}x (target >= 0.8x)")
    if "newsmill_cpu_ms_per_page" in s and "baseline_cpu_ms_per_page" in s:
        print(f"  CPU per page: newsmill {s['newsmill_cpu_ms_per_page']} ms, baseline "
              f"{s['baseline_cpu_ms_per_page']} ms; CPU share taken by other processes on the machine: "
              f"{s['other_cpu_share_during_newsmill']:.0%} / {s['other_cpu_share_during_baseline']:.0%}")
    if "stages_s" in s:
        wall = s["newsmill_wall_s"]
        print("  where the wall time goes (critical path, s):")
        for k, v in s["stages_s"].items():
            share = f"{v / wall:6.1%}" if wall and v is not None else ""
            print(f"    {k:<15} {v:>9}  {share}")
        print("  work inside the batch phase, summed over concurrent batches (s): "
              + ", ".join(f"{k} {v}" for k, v in s.get("summed_s", {}).items()))
    if "incremental_share" in s:
        print(f"  incremental run (unchanged pages): wall {s['incremental_wall_s']} s = "
              f"{s['incremental_share']:.1%} of the first (target <= 15%); outcomes "
              f"{json.dumps(s.get('incremental_outcomes'))}")
        print("    critical path: " + ", ".join(f"{k} {v}" for k, v in s["incremental_stages_s"].items())
              + "; summed: " + ", ".join(f"{k} {v}" for k, v in s.get("incremental_summed_s", {}).items()))
    if report.get("server_requests"):
        print(f"  server answered: {json.dumps(report['server_requests'])}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="number of page URLs served and ingested")
    ap.add_argument("--hosts", type=int, default=4, help="loopback hosts (127.0.0.2 …)")
    ap.add_argument("--repeat", type=int, default=1, help="A/B rounds (alternating)")
    ap.add_argument("--json", action="store_true", help="print the full report as JSON")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="AEB data directory")
    ap.add_argument("--only", choices=["newsmill", "baseline"], help="run one side only")
    ap.add_argument("--no-incremental", action="store_true", help="skip the second (all-304) ingest")
    ap.add_argument("--api-url", help="use this Prefect API instead of starting a server")
    ap.add_argument("--workdir", type=Path, help="keep configs, logs and warehouses here")
    ap.add_argument("--set", action="append", default=[], metavar="TOML",
                    help='extra config TOML, e.g. --set "[extract]\\nbatch_size = 200"')
    ap.add_argument("--identity", action="store_true",
                    help="serve pages uncompressed (default: Content-Encoding: gzip, as news sites do)")
    args = ap.parse_args(argv)
    if args.n < 1 or args.hosts < 1 or args.hosts > 250:
        ap.error("--n must be >= 1 and --hosts 1..250")
    extra = "\n".join(x.replace("\\n", "\n") for x in args.set)
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    report = run(n=args.n, hosts=args.hosts, repeat=args.repeat, data_dir=args.data, only=args.only,
                 api_url=args.api_url, workdir=args.workdir, extra_toml=extra,
                 incremental=not args.no_incremental, gzip_bodies=not args.identity, log=log)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_report(report)
    ok = all(r.get("newsmill", {}).get("rc", 0) == 0 for r in report["runs"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
