"""``kill -9`` of a run leaves no process behind (issue 15 item 6): the extraction forkserver, its workers,
their per-batch children and the multiprocessing resource tracker notice that the run is gone and exit.
A real ``newsmill ingest`` against a loopback site, killed while its extraction workers run."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil
import pytest

from faultserver import FaultServer, respond

N_PAGES = 600
WORDS = ("harbour council budget ferry timetable winter library museum railway bridge orchestra school "
         "market election coastal village report season theatre weather").split()


def _article(i: int) -> str:
    paras = "".join(
        f"<p>{' '.join(WORDS[(i + j + k) % len(WORDS)] for k in range(40)).capitalize()}.</p>" for j in range(12))
    return (f"<!doctype html><html lang='en'><head><title>Harbour story {i}</title>"
            f"<meta property='og:title' content='Harbour story {i}'></head><body><header><nav>Home News</nav>"
            f"</header><article><h1>Harbour story {i}</h1><p class='byline'>By Ann Reporter</p>{paras}</article>"
            f"<footer>© 2025 Harbour Gazette</footer></body></html>")


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.fixture()
def site():
    with FaultServer("127.0.0.2") as srv:
        for i in range(N_PAGES):
            srv.route(f"/news/{i}", respond(_article(i)))
        yield srv


def test_kill_9_of_an_ingest_leaves_no_process(tmp_path, site, newsmill_cmd, prefect_api):
    urls = ", ".join(f'"{site.url(f"/news/{i}")}"' for i in range(N_PAGES))
    cfg = tmp_path / "site.toml"
    cfg.write_text(f'[fetch]\nper_host_delay_s = 0\nper_host_concurrency = 4\nallow_networks = ["127.0.0.2/32"]\n'
                   f'respect_robots = false\narchive_warc = false\n[extract]\nworkers = 2\nbatch_size = 10\n'
                   f'[[sources]]\nname = "gazette"\nurls = [{urls}]\nmax_age_days = 30\n')
    env = dict(os.environ, PREFECT_API_URL=prefect_api["url"])
    p = subprocess.Popen([newsmill_cmd, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "wh"),
                          "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = psutil.Process(p.pid)
    desc: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while True:  # the extraction workers are the forkserver's children, grandchildren of the run
            assert p.poll() is None, p.stderr.read().decode()[-2000:]
            desc = run.children(recursive=True)
            fs = [c for c in desc if "forkserver" in " ".join(c.cmdline())]
            if fs and any(c.ppid() == fs[0].pid for c in desc):
                break
            assert time.monotonic() < deadline, "no extraction worker started"
            time.sleep(0.1)
        time.sleep(0.5)
        desc = run.children(recursive=True)
        assert len(desc) >= 3, [c.cmdline() for c in desc]  # forkserver, its workers, the resource tracker
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        left = desc
        for _ in range(100):
            left = _alive(desc)
            if not left:
                break
            time.sleep(0.1)
        assert not left, [(c.pid, " ".join(c.cmdline())[:100]) for c in left]
    finally:
        p.kill()
        for c in _alive(desc):  # leave nothing behind even when the assertion failed
            c.kill()


def test_kill_9_of_an_ingest_stops_its_temporary_prefect_server(tmp_path, site, newsmill_cmd):
    """With ``NEWSMILL_LOCAL_SERVER=0`` and no API URL, the run reports to Prefect's temporary server (a
    uvicorn child); it used to outlive a ``kill -9`` of the run."""
    urls = ", ".join(f'"{site.url(f"/news/{i}")}"' for i in range(N_PAGES))
    cfg = tmp_path / "site.toml"
    cfg.write_text(f'[fetch]\nper_host_delay_s = 0\nallow_networks = ["127.0.0.2/32"]\nrespect_robots = false\n'
                   f'archive_warc = false\n[extract]\nworkers = 1\n[[sources]]\nname = "gazette"\nurls = [{urls}]\n')
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(NEWSMILL_LOCAL_SERVER="0", PREFECT_HOME=str(tmp_path / "prefect-home"),
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="240")
    p = subprocess.Popen([newsmill_cmd, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "wh"),
                          "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = psutil.Process(p.pid)
    server: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 240
        while not server:
            assert p.poll() is None, p.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no temporary server started"
            server = [c for c in run.children(recursive=True) if "uvicorn" in " ".join(c.cmdline())]
            time.sleep(0.2)
        time.sleep(2)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        left = server
        for _ in range(150):
            left = _alive(server)
            if not left:
                break
            time.sleep(0.1)
        assert not left, [(c.pid, " ".join(c.cmdline())[:100]) for c in left]
    finally:
        p.kill()
        for c in _alive(server):
            c.kill()
