"""Start and stop a local ``prefect server start``: the one place newsmill (``newsmill ui``), its tests and
its benchmarks start a Prefect server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from newsmill.tasks.errors import NewsmillError

__all__ = ["port_free", "server_env", "start_server", "stop_server"]


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        # as the server binds (uvicorn sets SO_REUSEADDR): connections of a server just stopped, left in
        # TIME_WAIT, do not make the port look taken; a listening socket still does
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def server_env(host: str, port: int, *, home: str | os.PathLike | None = None,
               base: dict | None = None) -> dict:
    """Environment for a ``prefect server start`` on host:port and for its clients (API URL, the port
    the UI is told to use, analytics off; ``PREFECT_HOME`` when given)."""
    client_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url_host = f"[{client_host}]" if ":" in client_host else client_host
    env = dict(os.environ if base is None else base)
    env.update({
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),  # also what the UI is told to talk to
        "PREFECT_API_URL": f"http://{url_host}:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "true",
        "DO_NOT_TRACK": "1",
    })
    if home is not None:
        env["PREFECT_HOME"] = str(home)
    return env


def start_server(host: str, port: int, *, timeout: float = 90.0, log_path: Path | None = None,
                 env: dict | None = None):
    """Start ``prefect server start`` on host:port with ``env`` (default: ``server_env(host, port)``);
    returns (process, api_url) once healthy."""
    if not port_free(host, port):
        raise NewsmillError(f"port {port} on {host} is in use (another Prefect server? try --port)")
    env = env or server_env(host, port)
    api_url = env["PREFECT_API_URL"]
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    prefect_exe = Path(sys.executable).with_name("prefect")
    cmd = ([str(prefect_exe)] if prefect_exe.exists() else [sys.executable, "-m", "prefect"])
    proc = subprocess.Popen([*cmd, "server", "start", "--host", host, "--port", str(port)], env=env,
                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT if log_path else None,
                            start_new_session=True)
    import httpx  # here: the warm runner's client imports this module and needs none of httpx (~0.1 s)

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return proc, api_url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise NewsmillError(f"prefect server exited with status {proc.returncode} before answering")
        if time.monotonic() > deadline:
            stop_server(proc)
            raise NewsmillError(f"prefect server did not answer on {api_url} within {timeout:.0f} s")
        time.sleep(0.5)


def stop_server(proc) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
