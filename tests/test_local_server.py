"""The local Prefect server newsmill manages (``flows.local_server``, ``newsmill server``): real commands in
subprocesses, a real ``prefect server start``, a real Dask scheduler + workers.

Every test here runs its commands with a temporary ``NEWSMILL_HOME``, a free port and no ``PREFECT_*``
variable (as typed in a fresh shell), and the module stops the server at the end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.orchestration import LoopbackSite, write_config  # noqa: E402

pytestmark = pytest.mark.slow

NEWSMILL = str(Path(sys.executable).with_name("newsmill"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    """The environment of a fresh shell: no Prefect settings, a NEWSMILL_HOME of its own."""
    home = tmp_path_factory.mktemp("nm-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"NEWSMILL_HOME": str(home), "NEWSMILL_SERVER_PORT": str(free_port()),
                # an empty Prefect profile store: no profile's PREFECT_API_URL either
                "PREFECT_PROFILES_PATH": str(home / "profiles.toml"), "DO_NOT_TRACK": "1"})
    env.pop("NEWSMILL_LOCAL_SERVER", None)
    yield {"env": env, "home": home, "state": home / "prefect" / "server.json"}
    subprocess.run([NEWSMILL, "server", "stop"], env=env, capture_output=True, timeout=60)
    _kill_recorded(home / "prefect" / "server.json")


def _kill_recorded(state: Path) -> None:
    try:
        pid = json.loads(state.read_text())["pid"]
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError, KeyError):
        pass


def nm(shell, *args, timeout=600, env=None):
    return subprocess.run([NEWSMILL, *args], env=env or shell["env"], capture_output=True, text=True,
                          timeout=timeout)


def _servers_of(home: Path) -> list[psutil.Process]:
    """The ``prefect server start`` processes whose PREFECT_HOME is under ``home``."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = p.info["cmdline"] or []
            if "server" in cmd and "start" in cmd and any("prefect" in c for c in cmd):
                if p.environ().get("PREFECT_HOME", "").startswith(str(home)):
                    found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def _flow_runs(api: str) -> list[dict]:
    return httpx.post(f"{api}/flow_runs/filter", json={"sort": "START_TIME_DESC"}, timeout=10).json()


def test_first_command_starts_the_server_later_ones_reuse_it_and_stop_stops_it(shell, tmp_path):
    st = nm(shell, "server", "status")
    assert st.returncode == 1 and "no local Prefect server running" in st.stdout

    first = nm(shell, "demo", "--warehouse", str(tmp_path / "wh1"), "--quiet")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "starting a local Prefect server in the background" in first.stderr
    assert "newsmill server stop" in first.stdout.splitlines()[-1]  # the demo says what it left running
    state = json.loads(shell["state"].read_text())
    pid, api = state["pid"], state["api_url"]
    assert api == f"http://127.0.0.1:{shell['env']['NEWSMILL_SERVER_PORT']}/api"
    # the command exited; the server survives it and holds the run
    assert psutil.pid_exists(pid)
    runs = _flow_runs(api)
    assert [(r["flow_id"] is not None, r["state_type"]) for r in runs] == [(True, "COMPLETED")]
    tasks = httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [runs[0]["id"]]}}},
                       timeout=10).json()
    assert any(t["name"].startswith("batch-") for t in tasks)
    assert (shell["home"] / "prefect" / "prefect.db").exists()

    second = nm(shell, "demo", "--warehouse", str(tmp_path / "wh2"), "--quiet")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "starting" not in second.stderr and f"Prefect API: {api}" in second.stderr
    assert json.loads(shell["state"].read_text())["pid"] == pid
    assert [p.pid for p in _servers_of(shell["home"])] == [pid]  # no second server
    assert len(_flow_runs(api)) == 2

    again = nm(shell, "server", "start")  # idempotent
    assert again.returncode == 0 and "already running" in again.stdout and str(pid) in again.stdout
    st = nm(shell, "server", "status")
    assert st.returncode == 0 and f"pid {pid}" in st.stdout and api.removesuffix("/api") in st.stdout
    assert "up " in st.stdout

    stop = nm(shell, "server", "stop")
    assert stop.returncode == 0 and f"pid {pid}" in stop.stdout
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert _servers_of(shell["home"]) == []
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{api}/health", timeout=2)
    assert not shell["state"].exists()
    assert nm(shell, "server", "status").returncode == 1
    assert "no local Prefect server running" in nm(shell, "server", "stop").stdout


def test_a_killed_server_is_recovered_and_a_reused_pid_is_not_mistaken_for_it(shell):
    start = nm(shell, "server", "start")
    assert start.returncode == 0, start.stderr[-3000:]
    state = json.loads(shell["state"].read_text())
    os.killpg(state["pid"], signal.SIGKILL)  # crash: the pid file stays behind
    deadline = time.monotonic() + 20
    while psutil.pid_exists(state["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert shell["state"].exists()

    st = nm(shell, "server", "status")
    assert st.returncode == 1 and "no local Prefect server running" in st.stdout
    restart = nm(shell, "server", "start")
    assert restart.returncode == 0, restart.stderr[-3000:]
    new = json.loads(shell["state"].read_text())
    assert new["pid"] != state["pid"] and "started" in restart.stdout
    assert httpx.get(f"{new['api_url']}/health", timeout=5).status_code == 200

    # a stale record whose pid now belongs to another program (this test process) is not the server
    nm(shell, "server", "stop")
    shell["state"].write_text(json.dumps({**new, "pid": os.getpid()}))
    st = nm(shell, "server", "status")
    assert st.returncode == 1, st.stdout
    assert psutil.pid_exists(os.getpid())  # and nothing was killed
    assert not shell["state"].exists()


def test_health_probe_answers_only_for_a_server_that_says_ok():
    """The probe every command makes of the recorded server (a plain-HTTP request, no TLS context): 200
    is healthy; an error status, a server that does not answer in time, or no server is not."""
    from faultserver import FaultServer, respond, stall

    from newsmill.flows.local_server import _healthy

    with FaultServer("127.0.0.2") as srv:
        srv.route("/ok/api/health", respond('"ok"', ctype="application/json"))
        srv.route("/busy/api/health", respond("busy", status=503, ctype="text/plain"))
        srv.route("/hung/api/health", stall(5))
        assert _healthy(srv.url("/ok/api"))
        assert [r.path for r in srv.requests()] == ["/ok/api/health"]
        assert not _healthy(srv.url("/busy/api"))
        t = time.monotonic()
        assert not _healthy(srv.url("/hung/api"), timeout=0.5)
        assert time.monotonic() - t < 4
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        port = s.getsockname()[1]  # bound, not listening: the connection is refused
        assert not _healthy(f"http://127.0.0.2:{port}/api")


def _with_terminal_stderr(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    """``cmd`` with its stderr on a pseudo-terminal (as typed in a shell); stdout captured."""
    import pty

    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=slave, text=True)
        os.close(slave)
        err = b""
        while True:  # drain the terminal while it runs (its buffer is small)
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed it
                break
            if not chunk:
                break
            err += chunk
        out = p.stdout.read()
        p.wait(timeout=600)
    finally:
        os.close(master)
    return subprocess.CompletedProcess(cmd, p.returncode, out, err.decode(errors="replace"))


def test_a_flow_command_on_the_local_server_leaves_a_warm_runner_the_next_one_uses(shell, tmp_path):
    """With warm runners on (the default; the suite turns them off elsewhere): the first flow command runs
    in its own process and starts the warm runner of its environment in the background; the next runs in
    it; ``server stop`` stops both. A shell with ``PREFECT_API_URL`` of its own gets none unasked."""
    env = {**shell["env"], "NEWSMILL_WARM": "1"}
    warm_dir = shell["home"] / "warm"
    untyped = nm(shell, "demo", "--warehouse", str(tmp_path / "wh0"), "--quiet", env=env)
    assert untyped.returncode == 0, untyped.stderr[-3000:]
    assert "warm runner" not in untyped.stderr and not warm_dir.exists()  # no terminal: a script, cron, CI
    first = _with_terminal_stderr([NEWSMILL, "demo", "--warehouse", str(tmp_path / "wh1"), "--quiet"], env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "started a warm runner in the background" in first.stderr
    deadline = time.monotonic() + 180
    while not list(warm_dir.glob("*.json")) and time.monotonic() < deadline:  # written once it listens
        time.sleep(0.2)
    [state_file] = list(warm_dir.glob("*.json"))
    runner = json.loads(state_file.read_text())
    second = nm(shell, "demo", "--warehouse", str(tmp_path / "wh2"), "--quiet", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "started a warm runner" not in second.stderr
    assert json.loads(state_file.read_text())["runs"] == 1 and runner["pid"] == json.loads(state_file.read_text())["pid"]
    assert second.stdout.splitlines()[-13:] == first.stdout.splitlines()[-13:]  # the sample query and the last line
    stop = nm(shell, "server", "stop", env=env)
    assert f"stopped the warm runner (pid {runner['pid']}, 1 runs served)" in stop.stdout
    assert not psutil.pid_exists(runner["pid"]) or psutil.Process(runner["pid"]).status() == psutil.STATUS_ZOMBIE
    assert list(warm_dir.glob("*.json")) == [] and list(warm_dir.glob("*.sock")) == []


def test_an_explicit_prefect_api_url_wins(shell, prefect_api, tmp_path):
    nm(shell, "server", "stop")
    env = {**shell["env"], "PREFECT_API_URL": prefect_api["url"]}
    p = nm(shell, "demo", "--warehouse", str(tmp_path / "wh"), "--quiet", env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"Prefect API: {prefect_api['url']}" in p.stderr
    assert "starting" not in p.stderr and "left running" not in p.stdout
    assert not shell["state"].exists() and _servers_of(shell["home"]) == []


def test_dask_without_a_server_workers_can_reach_is_refused_in_one_line(shell, tmp_path):
    with LoopbackSite(2) as site:
        local = write_config(tmp_path / "local.toml", site.base_url, task_runner="dask",
                             dask_address="tcp://127.0.0.1:1")
        remote = write_config(tmp_path / "remote.toml", site.base_url, task_runner="dask",
                              dask_address="tcp://192.0.2.10:8786")
        cases = [
            (local, {"NEWSMILL_LOCAL_SERVER": "0"}, "dask needs a Prefect server its workers report to"),
            (remote, {}, "is not on this machine but the local Prefect server is loopback-only"),
            (remote, {"PREFECT_API_URL": "http://127.0.0.1:9/api"}, "the Prefect API http://127.0.0.1:9/api"),
        ]
        for cfg, extra, msg in cases:
            p = nm(shell, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "wh"), "--quiet",
                   env={**shell["env"], **extra}, timeout=120)
            assert p.returncode == 2, (extra, p.stdout, p.stderr)
            lines = p.stderr.strip().splitlines()
            assert lines[-1].startswith("newsmill: error: ") and msg in lines[-1], p.stderr
            assert "Traceback" not in p.stderr
    assert not shell["state"].exists()  # nothing was started for a run that was refused


@pytest.fixture
def dask_cluster(tmp_path):
    """``dask scheduler`` + two ``dask worker`` processes on loopback, without any Prefect setting (as on
    another machine)."""
    pytest.importorskip("distributed")
    dask = str(Path(sys.executable).with_name("dask"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NEWSMILL_"))}
    port = free_port()
    procs = []
    logs = []

    def spawn(args, name):
        env_i = {**env, "PREFECT_HOME": str(tmp_path / f"prefect-{name}")}  # a temporary server would land here
        log = open(tmp_path / f"{name}.log", "wb")
        logs.append(log)
        procs.append(subprocess.Popen([dask, *args], env=env_i, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))

    spawn(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], "scheduler")
    address = f"tcp://127.0.0.1:{port}"
    for i in (1, 2):
        spawn(["worker", address, "--nthreads", "2", "--no-dashboard", "--name", f"w{i}"], f"worker{i}")
    import distributed

    try:
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield {"address": address, "procs": procs, "tmp": tmp_path}
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for log in logs:
            log.close()


def test_dask_workers_report_their_task_runs_to_the_flows_server(shell, dask_cluster, tmp_path):
    with LoopbackSite(16) as site:
        cfg = write_config(tmp_path / "dask.toml", site.base_url, batch_size=4, workers=2, task_runner="dask",
                           dask_address=dask_cluster["address"])
        p = nm(shell, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "wh"), "--quiet")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "16 articles written" in p.stdout
    api = json.loads(shell["state"].read_text())["api_url"]  # the local server the flow used
    run = _flow_runs(api)[0]
    assert run["state_type"] == "COMPLETED"
    tasks = httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run["id"]]}}},
                       timeout=10).json()
    batches = sorted(t["name"] for t in tasks if t["name"].startswith("batch-"))
    assert len(batches) == 4 and all(t["state_type"] == "COMPLETED" for t in tasks), tasks
    import distributed

    with distributed.Client(dask_cluster["address"], timeout=60) as client:
        ran = client.run(lambda dask_worker: len(dask_worker.state.log), nanny=False)
    assert len(ran) == 2 and all(v > 0 for v in ran.values()), ran
    # the batches ran in the workers' processes, and no worker started a Prefect server of its own
    scheduler, *workers = dask_cluster["procs"]
    for w in workers:
        tree = [w.pid] + [c.pid for c in psutil.Process(w.pid).children(recursive=True)]
        cmds = [" ".join(psutil.Process(pid).cmdline()) for pid in tree if psutil.pid_exists(pid)]
        assert not any("uvicorn" in c or "prefect server" in c for c in cmds), cmds
    for name in ("prefect-worker1", "prefect-worker2"):
        assert not (dask_cluster["tmp"] / name / "prefect.db").exists()


def test_stopping_waits_for_the_server_process_to_be_gone():
    """``stop`` returns only once the server process has exited (gone or a zombie), not when it merely stopped
    looking like a server: a process in the middle of its exit has an empty /proc cmdline."""
    from newsmill.flows.local_server import _exited, _kill

    proc = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                             "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(1.5), sys.exit(0)))\n"
                             "time.sleep(60)", "prefect", "server"], start_new_session=True)
    try:
        time.sleep(0.5)
        assert not _exited(proc.pid)
        started = time.monotonic()
        _kill(proc.pid, timeout=10)
        assert time.monotonic() - started >= 1.0  # it waited through the server's own shutdown
        assert _exited(proc.pid)
        assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE
    finally:
        proc.kill()
        proc.wait()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.3)
        assert _exited(other.pid)  # a pid now used by another program is not the server
    finally:
        other.kill()
        other.wait()
