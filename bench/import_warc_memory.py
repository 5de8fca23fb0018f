"""Memory and throughput of ``newsmill import-warc`` on large generated WARC files (issue 8).

Generates WARC files to a scratch directory (default /tmp/newsmill-bench; never committed), runs
``newsmill import-warc`` on each in a subprocess against a Prefect API, and samples the resident set size
(RSS) of the importing process and of its whole process tree (forkserver + extraction workers) every
0.25 s. Memory is flat when the peak does not grow with the file size.

    .venv/bin/python bench/import_warc_memory.py                  # 100 MB and 300 MB of records
    .venv/bin/python bench/import_warc_memory.py --sizes-mb 1000  # one 1 GB file

Uses $PREFECT_API_URL when set, else starts ``prefect server start`` on a free loopback port.
Each file: ~100 KB HTML pages over 20 hosts (dates ascending, like a crawl), plus one 5 MB PDF and a
request record per 50 responses. Prints one JSON line per file and a summary table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
VOCAB = None


def _vocab(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(5000)]


def page_bytes(rng: random.Random, url: str, n: int, target: int) -> bytes:
    global VOCAB
    if VOCAB is None:
        VOCAB = _vocab(random.Random(7))
    paras = []
    size = 0
    while size < target * 0.08:  # ~8 KB of article text, the rest markup (like real news pages)
        p = " ".join(rng.choice(VOCAB) for _ in range(rng.randint(40, 90))).capitalize() + "."
        paras.append(f"<p>{p}</p>")
        size += len(p) + 7
    nav = "".join(f'<li><a href="/section/{i}">Section {i}</a></li>' for i in range(60))
    script = "var data = [" + ",".join(str(rng.randint(0, 10**9)) for _ in range(max(0, (target - size) // 22))) + "];"
    html = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Story {n}</title>'
            f'<link rel="canonical" href="{url}"><script>{script}</script></head><body>'
            f'<header><nav><ul>{nav}</ul></nav></header><article><h1>Story {n}</h1>{"".join(paras)}</article>'
            f'<footer><p>Copyright 2024 Bench News</p></footer></body></html>')
    return html.encode()


def generate(path: Path, size_mb: int, seed: int = 1) -> dict:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    rng = random.Random(seed)
    target_bytes = size_mb * 1_000_000
    start = datetime(2024, 5, 1, tzinfo=timezone.utc)
    n = written = 0
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        while written < target_bytes:
            host = f"news{n % 20}.bench.example"
            url = f"https://{host}/story/{n}.html"
            when = (start + timedelta(seconds=30 * n)).strftime("%Y-%m-%dT%H:%M:%SZ")
            if n % 50 == 0:
                w.write_record(w.create_warc_record(
                    url, "request", payload=io.BytesIO(b""), length=0, warc_headers_dict={"WARC-Date": when},
                    http_headers=StatusAndHeaders(f"GET /story/{n}.html HTTP/1.1", [("Host", host)],
                                                  is_http_request=True)))
            if n == 10:
                body = os.urandom(5_000_000)
                ctype = "application/pdf"
            else:
                body = page_bytes(rng, url, n, rng.randint(60_000, 140_000))
                ctype = "text/html; charset=utf-8"
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))],
                                    protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(body), length=len(body),
                                                http_headers=http, warc_headers_dict={"WARC-Date": when}))
            written += len(body)
            n += 1
    return {"records": n, "record_bytes": written, "file_bytes": path.stat().st_size}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_prefect(home: Path) -> tuple[subprocess.Popen | None, dict]:
    env = dict(os.environ)
    if env.get("PREFECT_API_URL"):
        return None, env
    from newsmill.flows.server import server_env, start_server

    port = _free_port()
    env = server_env("127.0.0.1", port, home=home)
    env.update({"PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_LOGGING_LEVEL": "WARNING"})
    proc, _url = start_server("127.0.0.1", port, env=env)
    return proc, env


def run_import(warc: Path, warehouse: Path, env: dict) -> dict:
    import psutil

    proc = subprocess.Popen([str(VENV_BIN / "newsmill"), "import-warc", str(warc), "--warehouse", str(warehouse),
                             "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    samples: list[tuple[float, int, int]] = []  # (t, main rss, tree rss)
    stop = threading.Event()

    def sample():
        t0 = time.monotonic()
        while not stop.is_set():
            try:
                main = ps.memory_info().rss
                tree = main
                for c in ps.children(recursive=True):
                    try:
                        tree += c.memory_info().rss
                    except psutil.Error:
                        pass
                samples.append((time.monotonic() - t0, main, tree))
            except psutil.Error:
                break
            time.sleep(0.25)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    stop.set()
    th.join()
    if proc.returncode != 0:
        raise SystemExit(f"import failed ({proc.returncode}):\n{err[-3000:]}")
    mb = 1 / 1_048_576
    n = len(samples)
    quart = {f"rss_main_mb_at_{int(q * 100)}pct_time": round(samples[min(n - 1, int(q * n))][1] * mb)
             for q in (0.25, 0.5, 0.75, 0.95)} if n else {}
    return {"stdout": out.strip().splitlines()[:1], "samples": n,
            "peak_rss_main_mb": round(max(s[1] for s in samples) * mb) if n else None,
            "peak_rss_tree_mb": round(max(s[2] for s in samples) * mb) if n else None, **quart}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 300], help="record bytes per file (MB)")
    ap.add_argument("--dir", default="/tmp/newsmill-bench", help="scratch directory (WARCs, warehouses)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args()
    scratch = Path(args.dir)
    scratch.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="prefect-home-", dir=scratch))
    server, env = start_prefect(home)
    results = []
    try:
        for size in args.sizes_mb:
            warc = scratch / f"bench-{size}mb.warc.gz"
            t = time.perf_counter()
            gen = generate(warc, size) if not warc.exists() else {"file_bytes": warc.stat().st_size}
            gen["generate_s"] = round(time.perf_counter() - t, 1)
            wh = scratch / f"wh-{size}mb"
            shutil.rmtree(wh, ignore_errors=True)
            t = time.perf_counter()
            mem = run_import(warc, wh, env)
            wall = time.perf_counter() - t
            counts = _last_run_counts(wh)
            row = {"size_mb": size, **gen, "wall_s": round(wall, 1), **mem,
                   "pages_imported": counts.get("pages_imported"), "flow_pages_per_s": counts.get("pages_per_s"),
                   "flow_mb_per_s": counts.get("mb_per_s"), "articles_written": counts.get("articles_written"),
                   "timings_s": counts.get("timings_s")}
            print(json.dumps(row), flush=True)
            results.append(row)
            if not args.keep:
                warc.unlink(missing_ok=True)
                shutil.rmtree(wh, ignore_errors=True)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(home, ignore_errors=True)
    print(f"\n{'records MB':>10} {'file MB':>8} {'pages':>6} {'pages/s':>8} {'peak RSS main':>14} {'peak RSS tree':>14}")
    for r in results:
        print(f"{r['size_mb']:>10} {r['file_bytes'] / 1e6:>8.0f} {r['pages_imported'] or 0:>6} "
              f"{r['flow_pages_per_s'] or 0:>8} {r['peak_rss_main_mb']:>11} MB {r['peak_rss_tree_mb']:>11} MB")
    return 0


def _last_run_counts(wh: Path) -> dict:
    sys.path.insert(0, str(REPO))
    import contextlib

    from newsmill.warehouse.catalog import connect

    with contextlib.closing(connect(wh)) as con:
        row = con.execute("select counts from runs where flow = 'import_warc' order by finished_at desc limit 1"
                          ).fetchone()
    return json.loads(row[0]) if row else {}


if __name__ == "__main__":
    sys.exit(main())
