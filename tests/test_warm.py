"""The warm runner (``newsmill.cli.warm``): flow commands handed to a background process that forks a ready copy of
itself per command. Real commands in subprocesses, a real ``prefect server start`` (the session's), a real
loopback site, real DuckDB over the warehouses the runs write.

The suite runs with ``NEWSMILL_WARM=0`` (conftest); these tests turn it on for their commands."""

from __future__ import annotations

import json
import os
import signal
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


@pytest.fixture(scope="module")
def warm(tmp_path_factory, prefect_api):
    """A shell pointed at the session's Prefect server, with a NEWSMILL_HOME of its own and its warm runner
    started (``newsmill server start --warm-only``); stopped at the end."""
    home = tmp_path_factory.mktemp("warm-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(prefect_api["env"])
    env.update({"NEWSMILL_HOME": str(home), "NEWSMILL_WARM": "1"})
    env.pop("NEWSMILL_WAREHOUSE", None)
    start = subprocess.run([NEWSMILL, "server", "start", "--warm-only"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert start.returncode == 0, start.stdout + start.stderr
    assert "started warm runner" in start.stdout
    yield {"env": env, "home": home, "api": prefect_api["url"]}
    subprocess.run([NEWSMILL, "server", "stop"], env=env, capture_output=True, timeout=60)


def _state(w) -> dict:
    files = sorted((w["home"] / "warm").glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def _log(w) -> str:
    return "".join(p.read_text() for p in sorted((w["home"] / "warm").glob("*.log")))


def nm(w, *args, env=None, cwd=None, timeout=600):
    return subprocess.run([NEWSMILL, *args], env=env or w["env"], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def _rows(wh: Path) -> list[tuple]:
    from newsmill.warehouse.catalog import connect

    con = connect(wh)
    try:
        return con.execute("SELECT url, title, language, len(text) FROM articles ORDER BY url").fetchall()
    finally:
        con.close()


def _flow_runs(api: str) -> list[dict]:
    return httpx.post(f"{api}/flow_runs/filter", json={"sort": "START_TIME_DESC"}, timeout=10).json()


def test_a_command_runs_in_the_warm_runner_exactly_as_it_runs_cold(warm, tmp_path):
    with LoopbackSite(12) as site:
        cfg = write_config(tmp_path / "site.toml", site.base_url, batch_size=4, workers=2)
        cold_env = {**warm["env"], "NEWSMILL_WARM": "0"}
        cold = nm(warm, "ingest", "--config", str(cfg), "--warehouse", "wh-cold", "--quiet", env=cold_env,
                  cwd=tmp_path)
        assert cold.returncode == 0, cold.stderr[-3000:]
        runs0 = _state(warm)["runs"]
        n_flow_runs = len(_flow_runs(warm["api"]))
        # a relative warehouse resolves against the command's directory; NEWSMILL_WAREHOUSE is the command's
        hot = nm(warm, "ingest", "--config", str(cfg), "--quiet", cwd=tmp_path,
                 env={**warm["env"], "NEWSMILL_WAREHOUSE": "wh-warm"})
        assert hot.returncode == 0, hot.stderr[-3000:]
    assert _state(warm)["runs"] == runs0 + 1  # the runner ran it
    log = _log(warm)
    assert f"(cwd {tmp_path})" in log and "exit 0" in log
    # the same output, the same data, the same kind of Prefect flow run
    assert "12 article pages fetched, 12 articles written" in hot.stdout.splitlines()[0]
    assert cold.stdout.splitlines()[1:] == hot.stdout.splitlines()[1:]  # per source, boilerplate removed
    assert f"Prefect API: {warm['api']}" in hot.stderr
    assert _rows(tmp_path / "wh-warm") == _rows(tmp_path / "wh-cold") != []
    runs = _flow_runs(warm["api"])
    assert len(runs) == n_flow_runs + 1 and runs[0]["state_type"] == "COMPLETED"
    assert psutil.Process(_state(warm)["pid"]).children() == []  # nothing of the run is left


def test_errors_exit_codes_and_output_come_back_to_the_terminal(warm, tmp_path):
    runs0 = _state(warm)["runs"]
    bad = nm(warm, "ingest", "--config", str(tmp_path / "missing.toml"), "--quiet", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.startswith("newsmill: error: ") and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stdout == ""
    assert _state(warm)["runs"] == runs0 + 1 and "exit 2" in _log(warm)
    # argparse errors never reach the runner
    usage = nm(warm, "ingest", "--limit", "many")
    assert usage.returncode == 2 and "invalid int value" in usage.stderr
    assert _state(warm)["runs"] == runs0 + 1


def _run_of(w, timeout: float = 60) -> psutil.Process:
    runner = psutil.Process(_state(w)["pid"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = runner.children()
        if kids:
            return kids[0]
        time.sleep(0.05)
    raise AssertionError("no run started in the runner")


def _gone(procs: list[psutil.Process], timeout: float = 20) -> bool:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return all(p.status() == psutil.STATUS_ZOMBIE for p in alive)


def test_ctrl_c_reaches_the_run_and_the_warehouse_is_left_usable(warm, tmp_path):
    with LoopbackSite(8) as site:
        cfg = write_config(tmp_path / "site.toml", site.base_url, batch_size=2, workers=2)
        site.hold({"/a/3.html", "/a/5.html"})
        p = subprocess.Popen([NEWSMILL, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "wh"),
                              "--quiet"], env=warm["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        run = _run_of(warm)
        deadline = time.monotonic() + 120
        while site.held == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert site.held > 0
        tree = [run, *run.children(recursive=True)]
        p.send_signal(signal.SIGINT)  # what the terminal sends the command on Ctrl-C
        out, err = p.communicate(timeout=120)
        site.release()
        assert p.returncode == 130, err[-3000:]
        assert "newsmill: error: interrupted" in err
        assert f"run {run.pid}: exit 130" in _log(warm)  # the run itself took the Ctrl-C and said so
        assert _gone(tree)
        again = nm(warm, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "wh"), "--quiet")
        assert again.returncode == 0, again.stderr[-3000:]
    assert len(_rows(tmp_path / "wh")) == 8


def test_the_command_s_umask_and_a_closed_stdio_are_respected(warm, tmp_path):
    """The run takes the command's process state (here its umask: the Parquet files' modes show it); a
    command with a closed stdin/stdout is never handed over (its socket would take that descriptor)."""
    with LoopbackSite(3) as site:
        cfg = write_config(tmp_path / "site.toml", site.base_url)
        runs0 = _state(warm)["runs"]
        p = subprocess.run([NEWSMILL, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "wh"), "--quiet"],
                           env=warm["env"], capture_output=True, text=True, timeout=600,
                           preexec_fn=lambda: os.umask(0o027))
        assert p.returncode == 0, p.stderr[-3000:]
        assert _state(warm)["runs"] == runs0 + 1
        modes = {f.stat().st_mode & 0o777 for f in (tmp_path / "wh").rglob("*.parquet")}
        assert modes == {0o640}, modes
        closed = subprocess.run([NEWSMILL, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "wh2"),
                                 "--quiet"], env=warm["env"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                timeout=600, preexec_fn=lambda: os.close(0))
        assert closed.returncode == 0, closed.stderr[-3000:]
        assert _state(warm)["runs"] == runs0 + 1  # ran in its own process
    assert len(_rows(tmp_path / "wh2")) == 3


def test_a_command_killed_outright_takes_its_run_and_workers_along(warm, tmp_path):
    with LoopbackSite(8) as site:
        cfg = write_config(tmp_path / "site.toml", site.base_url, batch_size=2, workers=2)
        site.hold({"/a/6.html"})
        p = subprocess.Popen([NEWSMILL, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "wh"),
                              "--quiet"], env=warm["env"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run = _run_of(warm)
        deadline = time.monotonic() + 120
        while (site.held == 0 or len(run.children(recursive=True)) < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = [run, *run.children(recursive=True)]
        assert len(tree) >= 3, tree  # the run, its forkserver, its extraction workers
        p.kill()
        p.wait(timeout=30)
        assert _gone(tree), [(c.pid, c.status()) for c in tree if c.is_running()]
    assert "its command went away" in _log(warm)


def _exits(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_another_environment_or_changed_code_runs_cold_and_a_stale_runner_retires(warm, tmp_path):
    from newsmill.cli import warm as warm_mod

    with LoopbackSite(3) as site:
        cfg = write_config(tmp_path / "site.toml", site.base_url)
        runs0 = _state(warm)["runs"]
        other = nm(warm, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "wh1"), "--quiet",
                   env={**warm["env"], "TZ": "Asia/Tokyo"})  # read at import by some libraries: not this runner's
        assert other.returncode == 0, other.stderr[-3000:]
        assert _state(warm)["runs"] == runs0
        pid = _state(warm)["pid"]
        src = Path(warm_mod.__file__)  # a module the runner loaded, changed on disk (an upgrade, an edit)
        st = src.stat()
        try:
            os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
            changed = nm(warm, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "wh2"), "--quiet")
        finally:
            os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert changed.returncode == 0, changed.stderr[-3000:]
        assert "code changed on disk" in _log(warm)
        assert _exits(pid), "the stale runner did not retire"
        assert list((warm["home"] / "warm").glob("*.sock")) == []
        status = nm(warm, "server", "status")
        assert "warm runner" not in status.stdout
        # a new one starts for the new code
        start = nm(warm, "server", "start", "--warm-only")
        assert start.returncode == 0 and "started warm runner" in start.stdout, start.stdout + start.stderr
        # and `server start` after an upgrade replaces a stale one instead of calling it running
        pid = _state(warm)["pid"]
        try:
            os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
            restart = nm(warm, "server", "start", "--warm-only")
        finally:
            os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert restart.returncode == 0 and "started warm runner" in restart.stdout, restart.stdout + restart.stderr
        assert _state(warm)["pid"] != pid and _exits(pid)
    assert len(_rows(tmp_path / "wh1")) == len(_rows(tmp_path / "wh2")) == 3


def test_status_stop_and_idle_exit(warm, tmp_path):
    st = nm(warm, "server", "status")
    assert f"warm runner: pid {_state(warm)['pid']}" in st.stdout
    stop = nm(warm, "server", "stop")
    assert stop.returncode == 0 and "stopped the warm runner" in stop.stdout
    assert list((warm["home"] / "warm").glob("*.json")) == []
    idle_env = {**warm["env"], "NEWSMILL_WARM_IDLE": "1"}
    start = nm(warm, "server", "start", "--warm-only", env=idle_env)
    assert start.returncode == 0, start.stderr
    deadline = time.monotonic() + 30
    while list((warm["home"] / "warm").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list((warm["home"] / "warm").glob("*.json")) == []
    assert "idle for 1 s; exiting" in _log(warm)
    off = nm(warm, "server", "start", "--warm-only", env={**warm["env"], "NEWSMILL_WARM": "0"})
    assert off.returncode == 2 and "warm runners are off" in off.stderr
    assert nm(warm, "server", "start", "--warm-only").returncode == 0  # for the tests after


def test_the_key_ignores_what_a_shell_changes_by_itself_and_nothing_else():
    from newsmill.cli.warm import env_key

    base = {"PATH": "/usr/bin", "HOME": "/home/a", "PREFECT_API_URL": "http://127.0.0.1:1/api"}
    assert env_key({**base, "PWD": "/x", "SHLVL": "3", "NEWSMILL_WAREHOUSE": "w"}) == env_key(base)
    for k, v in (("PREFECT_API_URL", "http://127.0.0.1:2/api"), ("PYTHONHASHSEED", "1"), ("LANG", "C"),
                 ("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO")):
        assert env_key({**base, k: v}) != env_key(base), k


def test_a_deep_home_gets_its_socket_in_a_private_short_path(tmp_path, monkeypatch):
    from newsmill.cli import warm as warm_mod

    monkeypatch.setenv("NEWSMILL_HOME", str(tmp_path / ("d" * 60) / ("e" * 60)))
    paths = warm_mod._paths("0123456789abcdef")
    assert len(os.fsencode(paths["sock"])) <= 100 and paths["json"].parent == warm_mod.runner_dir()
    assert warm_mod._private_dir(paths["sock"].parent)
    assert paths["sock"].parent.stat().st_mode & 0o777 == 0o700
    monkeypatch.setenv("NEWSMILL_HOME", str(tmp_path / "short"))
    assert warm_mod._paths("0123456789abcdef")["sock"].parent == warm_mod.runner_dir()
