"""Headless Chromium driven over the DevTools protocol (no extra dependency: ``websockets`` and ``httpx``
come with Prefect): open a page, wait until its rendered text shows what a person would look for, take a
screenshot. ``--dump-dom`` alone snapshots single-page apps before their data requests return."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


# what the probe of this workplace found a root, offline headless Chromium needs
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Page:
    """One headless Chromium with one tab; use as a context manager."""

    def __init__(self, exe: str, profile: Path, *, width: int = 1400, height: int = 1000):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [exe, *CHROME_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             f"--remote-debugging-port={self.port}", "--remote-allow-origins=*", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                targets = httpx.get(f"http://127.0.0.1:{self.port}/json/list", timeout=2).json()
                page = next(t for t in targets if t.get("type") == "page")
                break
            except (httpx.HTTPError, StopIteration, ValueError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError("headless Chromium did not open its DevTools endpoint")
                time.sleep(0.3)
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=64 * 2**20, open_timeout=30)
        self._id = 0

    def call(self, method: str, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        res = self.call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''",
                        returnByValue=True)
        return res.get("result", {}).get("value") or ""

    def wait_for_text(self, needle: str, timeout: float = 60.0) -> str:
        """The page's rendered text once it contains ``needle``; AssertionError with the text if it never does."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if needle in text:
                return text
            time.sleep(0.5)
        raise AssertionError(f"{needle!r} never appeared on the page; it shows:\n{text[-3000:]}")

    def click_text(self, label: str) -> None:
        """Click the first button, link or tab whose visible text is ``label`` (e.g. a tab of a run page)."""
        js = ("(() => { const el = [...document.querySelectorAll('button, a, [role=tab], li, div')]"
              f".find(e => e.innerText && e.innerText.trim() === {json.dumps(label)} && e.children.length < 3);"
              " if (!el) return false; el.click(); return true; })()")
        res = self.call("Runtime.evaluate", expression=js, returnByValue=True)
        if not res.get("result", {}).get("value"):
            raise AssertionError(f"nothing to click labelled {label!r}; the page shows:\n{self.text()[-2000:]}")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            getattr(self, "ws", None) and self.ws.close()
        finally:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def __enter__(self) -> "Page":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
