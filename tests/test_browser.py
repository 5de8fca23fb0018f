"""``newsmill ui`` in a real browser: the command starts the local Prefect server on 127.0.0.1:PORT (in the
background, ``NEWSMILL_HOME``), serves the deployments, and headless Chromium's deployments page lists
``nightly``; Ctrl-C stops serving, the server stays until ``newsmill server stop``. The screenshot is kept in
``test-artifacts/deployments.png`` (git-ignored)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"

from browser import CHROME_FLAGS, chromium, free_port  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _chrome(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([exe, *CHROME_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def test_ui_command_serves_deployments_visible_in_the_browser(tmp_path):
    exe = chromium()
    if exe is None:
        pytest.skip("headless Chromium not installed (apt-get install chromium)")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_LOGGING_LEVEL": "WARNING",
                "DO_NOT_TRACK": "1", "NEWSMILL_HOME": str(tmp_path / "nm-home")})
    log_path = tmp_path / "ui.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("newsmill")), "ui", "--port", str(port),
                                 "--warehouse", str(tmp_path / "wh")], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                deps = httpx.post(f"{api}/deployments/filter", json={}, timeout=5).json()
                if {"nightly", "compact"} <= {d["name"] for d in deps}:
                    break
            except (httpx.HTTPError, ValueError, TypeError):
                pass
            assert proc.poll() is None, "newsmill ui exited:\n" + log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "no deployments:\n" + log_path.read_text()[-3000:]
            time.sleep(0.5)
        # the UI is told to talk to this port's API (not 4200)
        ui_settings = httpx.get(f"http://127.0.0.1:{port}/ui-settings", timeout=5).json()
        assert ui_settings["api_url"] == api

        page = f"http://127.0.0.1:{port}/deployments"
        dom = _chrome(exe, tmp_path / "profile-dom", "--virtual-time-budget=15000", "--dump-dom", page)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "deployments.png"
        _chrome(exe, tmp_path / "profile-shot", "--window-size=1400,900", "--virtual-time-budget=15000",
                f"--screenshot={shot}", page)
        assert "nightly" in dom.stdout, dom.stdout[-2000:] + dom.stderr[-2000:]
        assert "compact" in dom.stdout
        assert shot.exists() and shot.stat().st_size > 10_000
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: stops serving; the server runs on in the background
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        try:
            alive = httpx.get(f"{api}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            alive = False
        stop = subprocess.run([str(Path(sys.executable).with_name("newsmill")), "server", "stop"], env=env,
                              capture_output=True, text=True, timeout=60)
    assert alive
    assert stop.returncode == 0 and "stopped the local Prefect server" in stop.stdout, stop.stdout + stop.stderr
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{api}/health", timeout=2)
