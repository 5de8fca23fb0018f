"""Shared fixtures.

``prefect_api``: one real Prefect API server (``prefect server start``) on loopback for the whole test
session, with ``PREFECT_HOME`` in a temp dir; tests that run flows use it (in-process and in subprocesses
through ``PREFECT_API_URL``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
AEB_DIR = REPO.parent / "shared" / "benchmarks" / "aeb"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _prefect_env(home: Path, port: int) -> dict:
    env = dict(os.environ)
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "true",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        "DO_NOT_TRACK": "1",
    })
    return env


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """Start ``prefect server start`` on a free loopback port; point this process and children at it."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = _prefect_env(home, port)
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = env["PREFECT_API_URL"]
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("prefect server did not start:\n" + (home / "server.log").read_text()[-3000:])
        time.sleep(0.5)
    saved = {k: os.environ.get(k) for k in env if k.startswith("PREFECT_")}
    for k, v in env.items():
        if k.startswith("PREFECT_") or k == "DO_NOT_TRACK":
            os.environ[k] = v
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    with temporary_settings({PREFECT_API_URL: url, PREFECT_HOME: str(home)}):
        yield {"url": url, "port": port, "home": home, "env": env}
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def newsmill_cmd():
    """Path of the installed console script."""
    exe = VENV_BIN / "newsmill"
    if not exe.exists():
        found = shutil.which("newsmill")
        assert found, "newsmill console script not installed (pip install -e .)"
        return found
    return str(exe)
