"""Shared fixtures.

``prefect_api``: one real Prefect API server (``prefect server start``) on loopback for the whole test
session, with ``PREFECT_HOME`` in a temp dir; tests that run flows use it (in-process and in subprocesses
through ``PREFECT_API_URL``).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
AEB_DIR = REPO.parent / "shared" / "benchmarks" / "aeb"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def _newsmill_home(tmp_path_factory):
    """Every test (and every command it runs) gets a session ``NEWSMILL_HOME`` and a free port for the local
    Prefect server newsmill starts on first use, which is stopped at the end: the suite never touches the
    user's server nor leaves one running. Warm runners are off (``NEWSMILL_WARM=0``) unless a test turns
    them on."""
    keys = ("NEWSMILL_HOME", "NEWSMILL_SERVER_PORT", "NEWSMILL_WARM")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["NEWSMILL_HOME"] = str(tmp_path_factory.mktemp("newsmill-home"))
    os.environ["NEWSMILL_SERVER_PORT"] = str(free_port())
    # every command runs in its own process, as typed cold; tests/test_warm.py turns warm runners on
    os.environ["NEWSMILL_WARM"] = "0"
    yield Path(os.environ["NEWSMILL_HOME"])
    from newsmill.cli import warm
    from newsmill.flows import local_server

    warm.stop_all()
    local_server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory, _newsmill_home):
    """Start ``prefect server start`` on a free loopback port; point this process and children at it."""
    from newsmill.flows.server import server_env, start_server, stop_server
    from newsmill.tasks.errors import NewsmillError

    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = server_env("127.0.0.1", port, home=home)
    # quiet consoles, but INFO still reaches the API (as the CLI sets it): the UI shows the runs' logs
    env.update({"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING", "PREFECT_SERVER_LOGGING_LEVEL": "WARNING"})
    try:
        # a fresh database (every migration) takes ~60 s on a loaded 2-core machine
        proc, url = start_server("127.0.0.1", port, env=env, log_path=home / "server.log", timeout=180)
    except NewsmillError as exc:
        log = home / "server.log"
        pytest.fail(f"prefect server did not start: {exc}\n" + (log.read_text()[-3000:] if log.exists() else ""))
    saved = {k: os.environ.get(k) for k in env if k.startswith("PREFECT_") or k == "DO_NOT_TRACK"}
    for k in saved:
        os.environ[k] = env[k]
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    with temporary_settings({PREFECT_API_URL: url, PREFECT_HOME: str(home)}):
        yield {"url": url, "port": port, "home": home, "env": env}
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    stop_server(proc)


@pytest.fixture
def newsmill_cmd():
    """Path of the installed console script."""
    exe = VENV_BIN / "newsmill"
    if not exe.exists():
        found = shutil.which("newsmill")
        assert found, "newsmill console script not installed (pip install -e .)"
        return found
    return str(exe)
