"""Helpers for tests that read a real Prefect server's REST API (the ``prefect_api`` fixture's server)."""

from __future__ import annotations

import time

import httpx


def api(prefect_api: dict, method: str, path: str, **kw):
    """One REST call; a busy SQLite-backed server answers 429/503: retried with backoff, like Prefect's client."""
    for attempt in range(6):
        r = httpx.request(method, prefect_api["url"] + path, timeout=30, **kw)
        if r.status_code not in (429, 503):
            break
        time.sleep(0.5 * 2 ** attempt)
    r.raise_for_status()
    return r.json() if r.content else None


def wait_for(pred, timeout: float, what: str):
    """``pred()``'s first truthy value, polled until ``timeout`` seconds have passed (then the test fails)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.3)
