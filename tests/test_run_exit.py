"""An all-304 rerun from the command line (issue 14): no extraction process, and the end of a run and of
the ``newsmill`` process (the rerun paid ~1 s there).

* A rerun whose pages all answer 304 starts no extraction forkserver or worker (nothing to extract).

* A flow run keeps its Prefect heartbeats, but its teardown does not join the heartbeat thread (Prefect
  3.9's sync engine did, while that thread sleeps in 1 s steps).
* The ``newsmill`` process ends right after its last exit handler (Prefect's log and event drains,
  logging, the writer lock) instead of tearing the interpreter down; the exit code and the output are
  those of the command, and nothing the run sent to the API is lost.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from faultserver import FaultServer, respond
from prefect_rest import api as _api, wait_for as _wait

NEWSMILL = str(Path(sys.executable).with_name("newsmill"))

EMPTY_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>The Valley Courier</title><link>http://127.0.0.2/</link>
<description>Local news</description></channel></rss>"""


def _heartbeats(prefect_api, run_id: str) -> list[dict]:
    page = _api(prefect_api, "POST", "/events/filter",
                json={"filter": {"event": {"name": ["prefect.flow-run.heartbeat"]},
                                 "resource": {"id": [f"prefect.flow-run.{run_id}"]}}, "limit": 10})
    return page["events"]


def test_flow_run_teardown_does_not_join_the_heartbeat_thread(prefect_api, monkeypatch):
    import newsmill.flows.engine  # noqa: F401  (every newsmill flow module imports it)
    from prefect import flow
    from prefect.runtime import flow_run

    started: list[threading.Thread] = []
    joined: list[threading.Thread] = []
    real_start, real_join = threading.Thread.start, threading.Thread.join

    def start(self):
        target = getattr(self, "_args", None) or ()
        if target and getattr(target[0], "__name__", "") == "heartbeat_loop":
            started.append(self)
        return real_start(self)

    def join(self, timeout=None):
        if self in started:
            joined.append(self)
        return real_join(self, timeout)

    monkeypatch.setattr(threading.Thread, "start", start)
    monkeypatch.setattr(threading.Thread, "join", join)

    @flow
    def short_run() -> str:
        return str(flow_run.get_id())

    run_id = short_run()
    assert len(started) == 1, "the flow run has its heartbeat thread"
    assert joined == [], "the end of the run waited for the heartbeat thread"
    started[0].join(5)  # it sees the stop flag within its 1 s sleep and ends by itself
    assert not started[0].is_alive()
    # the heartbeat still reaches the API (zombie detection is unchanged)
    _wait(lambda: _heartbeats(prefect_api, run_id), 30, "the run's heartbeat event")


_TEARDOWN_PROBE = """
import sys

class Probe:
    def __del__(self):
        sys.stderr.write("interpreter teardown\\n")

probe = Probe()  # collected when the interpreter tears its modules down
from newsmill.cli import main
sys.exit(main())
"""


def test_the_process_ends_after_the_command_without_interpreter_teardown(tmp_path):
    rows = 30_000
    p = subprocess.run([sys.executable, "-c", _TEARDOWN_PROBE, "sql", "--warehouse", str(tmp_path), "--format",
                        "csv", f"select range as n from range({rows})"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    assert lines[0] == "n" and lines[-1] == str(rows - 1) and len(lines) == rows + 1  # all output flushed
    assert "interpreter teardown" not in p.stderr
    # an error a user can fix: its one line and its exit code, by the same way out
    p = subprocess.run([sys.executable, "-c", _TEARDOWN_PROBE, "sql", "--warehouse", str(tmp_path), "drop table x"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("newsmill: error: ") and "Traceback" not in p.stderr
    assert "interpreter teardown" not in p.stderr


def test_main_called_with_arguments_leaves_the_process_alone(tmp_path):
    """``main(argv)`` from Python (a test, a script) returns and the caller's process ends normally."""
    code = _TEARDOWN_PROBE.replace("sys.exit(main())", "rc = main(sys.argv[1:])\nprint('after', rc)\nsys.exit(7)")
    p = subprocess.run([sys.executable, "-c", code, "sql", "--warehouse", str(tmp_path), "select 1"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 7 and "after 0" in p.stdout
    assert "interpreter teardown" in p.stderr


def test_cli_run_reaches_the_api_in_full(prefect_api, tmp_path):
    """A hand-typed ingest ends without the interpreter teardown, yet its last log lines (the engine's
    'Finished in state Completed()', sent while the run ends) and its heartbeat reach the API."""
    from newsmill.warehouse.catalog import connect

    wh = tmp_path / "wh"
    with FaultServer() as server:
        server.route("/feed.xml", respond(EMPTY_FEED, ctype="application/rss+xml"))
        cfg = tmp_path / "sources.toml"
        cfg.write_text(f"""
[fetch]
allow_networks = ["127.0.0.0/8"]
per_host_delay_s = 0.0
respect_robots = false

[[sources]]
name = "valley"
feeds = ["{server.url('/feed.xml')}"]
""")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}, **prefect_api["env"]}
        env.pop("PREFECT_LOGGING_LEVEL", None)
        p = subprocess.run([NEWSMILL, "ingest", "--config", str(cfg), "--warehouse", str(wh)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "run finished in" in p.stdout
    con = connect(wh)
    try:
        run_id = con.execute("SELECT run_id FROM runs WHERE flow = 'ingest'").fetchone()[0]
    finally:
        con.close()
    assert _api(prefect_api, "GET", f"/flow_runs/{run_id}")["state"]["type"] == "COMPLETED"

    def finished():
        logs = _api(prefect_api, "POST", "/logs/filter",
                    json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})
        return any(x["message"].startswith("Finished in state Completed") for x in logs)

    _wait(finished, 30, "the run's last log line")
    _wait(lambda: _heartbeats(prefect_api, run_id), 30, "the run's heartbeat event")


def _article(i: int) -> bytes:
    paras = "".join(f"<p>Paragraph {k} of story {i}: the council met on Tuesday to discuss the new bridge, "
                    f"the budget and the schedule for the works along the river.</p>" for k in range(8))
    return (f"<html><head><title>Story {i}</title></head><body><article><h1>Story {i}</h1>{paras}"
            f"</article></body></html>").encode()


def _conditional(body: bytes, etag: str):
    def _r(h):
        if h.headers.get("If-None-Match") == etag:
            h.send(304, b"", {"ETag": etag})
        else:
            h.send(200, body, {"Content-Type": "text/html; charset=utf-8", "ETag": etag})
    return _r


def _descendants_while_running(cmd: list[str], env: dict) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``cmd``; the command lines of every process that descended from it while it ran (polled)."""
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: set[str] = set()
    run = psutil.Process(p.pid)
    while p.poll() is None:
        try:
            for c in run.children(recursive=True):
                try:
                    seen.add(" ".join(c.cmdline()))
                except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                    pass
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    out, err = p.communicate(timeout=300)
    return subprocess.CompletedProcess(cmd, p.returncode, out, err), seen


def test_all_304_rerun_starts_no_extraction_process(prefect_api, tmp_path):
    """The first run extracts (its forkserver and workers are seen); the rerun gets only 304s and starts
    no process at all, so it pays neither the forkserver's preload nor the workers' start."""
    from newsmill.warehouse.catalog import connect

    with FaultServer("127.0.0.2") as site:
        urls = []
        for i in range(3):
            urls.append(site.route(f"/news/{i}", _conditional(_article(i), f'"v1-{i}"')))
        cfg = tmp_path / "site.toml"
        cfg.write_text('[fetch]\nper_host_delay_s = 0\nallow_networks = ["127.0.0.2/32"]\nrespect_robots = false\n'
                       '[extract]\nworkers = 2\n[[sources]]\nname = "gazette"\nurls = ['
                       + ", ".join(f'"{u}"' for u in urls) + ']\n')
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}, **prefect_api["env"]}
        cmd = [NEWSMILL, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "wh"), "--quiet"]
        first, first_procs = _descendants_while_running(cmd, env)
        assert first.returncode == 0, first.stderr[-3000:]
        assert any("forkserver" in c for c in first_procs), first_procs  # the probe sees the pool
        second, second_procs = _descendants_while_running(cmd, env)
        assert second.returncode == 0, second.stderr[-3000:]
        assert second_procs == set()
    con = connect(tmp_path / "wh")
    try:
        outcomes = con.execute("SELECT r.flow, p.outcome, count(*) FROM pages p JOIN runs r USING (run_id) "
                               "WHERE p.kind = 'article' GROUP BY ALL ORDER BY ALL").fetchall()
    finally:
        con.close()
    assert [o[1:] for o in outcomes] == [("not_modified", 3), ("ok", 3)]
