"""Re-run and resume through Prefect, with a real kill.

1. ``newsmill serve`` runs the ``nightly`` deployment against a loopback site; the site holds the requests
   of the third batch, so two batches are stored when the test SIGKILLs the whole serve process group
   (runner + flow-run process) — the run is left *Running* in Prefect (a zombie).
2. ``newsmill serve`` is started again (zombie window 3 s): it marks the zombie Crashed on startup, which
   also frees the deployment's concurrency slot; the warehouse lock (flock) died with the process.
3. The test retries the crashed run exactly as the UI's Retry does (``set_state`` to Scheduled
   ``AwaitingRetry``, force). The same flow-run id is the resume key: the two stored batches are skipped,
   so each of their pages was requested exactly once over both attempts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from newsmill.flows.ingest import batch_bounds

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.orchestration import LoopbackSite, write_config  # noqa: E402
from prefect_rest import api as _api, wait_for as _wait

pytestmark = pytest.mark.slow

N_PAGES = 20
BATCH = 5


def _state(prefect_api, run_id):
    return _api(prefect_api, "GET", f"/flow_runs/{run_id}")["state"]


def _start_serve(prefect_api, cfg, wh, log_path, extra_env=None):
    env = dict(prefect_api["env"])
    env.update(extra_env or {})
    log = open(log_path, "ab")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("newsmill")), "serve", "--config", str(cfg),
                             "--warehouse", str(wh)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    return proc


def _stop(proc, sig=signal.SIGINT):
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_batch_plan_covers_each_url_once_ramps_up_and_is_stable():
    from newsmill.flows.ingest import plan_batches
    from newsmill.tasks.records import DiscoveredURL

    for n, size in [(1, 100), (25, 100), (26, 100), (250, 100), (1000, 100), (7, 5), (20, 5), (100, 40)]:
        bounds = batch_bounds(n, size)
        covered = [i for a, b in bounds for i in range(a, b)]
        assert covered == list(range(n)), (n, size)
        assert all(0 < b - a <= size for a, b in bounds)
        if size >= 40 and n > size // 4:
            assert bounds[0] == (0, size // 4)  # a quarter batch first: the workers start sooner
        else:
            assert bounds[0] == (0, min(n, size))
    urls = [DiscoveredURL(url=f"http://h{h}.example/a/{i:03d}", source=f"s{h}", via="feed")
            for h in range(3) for i in range(130)]
    plan = plan_batches("run-1", urls, 100, {})
    assert sorted(u.url for b in plan for u in b.urls) == sorted(u.url for u in urls)
    assert [len(b.urls) for b in plan if b.host == "h0.example"] == [25, 100, 5]
    assert plan_batches("run-1", list(reversed(urls)), 100, {}) == plan  # same ids for the same URL set
    assert {b.batch_id for b in plan_batches("run-2", urls, 100, {})}.isdisjoint({b.batch_id for b in plan})


def test_killed_run_is_reaped_and_retry_resumes_without_refetching(prefect_api, tmp_path):
    from newsmill.warehouse.store import Warehouse

    wh = tmp_path / "wh"
    log_path = tmp_path / "serve.log"
    with LoopbackSite(N_PAGES) as site:
        cfg = write_config(tmp_path / "site.toml", site.base_url, batch_size=BATCH)
        urls = sorted(site.url(i) for i in range(N_PAGES))  # plan_batches sorts a host's URLs
        batches = [urls[a:b] for a, b in batch_bounds(N_PAGES, BATCH)]
        path = lambda u: u[len(site.base_url):]  # noqa: E731
        site.hold({path(u) for b in batches[2:] for u in b})

        serve = _start_serve(prefect_api, cfg, wh, log_path)
        try:
            dep = _wait(lambda: next((d for d in _api(prefect_api, "POST", "/deployments/filter",
                                                      json={"deployments": {"tags": {"all_": ["newsmill"]}}})
                                      if d["name"] == "nightly"
                                      and d["parameters"].get("warehouse") == str(wh.resolve())), None),
                        60, "the nightly deployment")
            run = _api(prefect_api, "POST", f"/deployments/{dep['id']}/create_flow_run",
                       json={"state": {"type": "SCHEDULED"}, "enforce_parameter_schema": True,
                             "parameters": {"config": str(cfg), "warehouse": str(wh)}})
            run_id = run["id"]

            # two batches (+ the discover log) stored, the third batch's requests held by the site
            _wait(lambda: site.held >= 1 and len(Warehouse(wh).done_batches(run_id)) >= 3, 120,
                  "two stored batches and a held request\n" + log_path.read_text()[-2000:])
        finally:
            _stop(serve, signal.SIGKILL)  # runner + flow-run process, no chance to report anything
        site.release()
        stored_before = Warehouse(wh).done_batches(run_id)
        assert _state(prefect_api, run_id)["type"] == "RUNNING"  # a zombie

        # restarting serve reaps it (no heartbeat within the window)
        time.sleep(4)
        serve = _start_serve(prefect_api, cfg, wh, log_path, {"NEWSMILL_ZOMBIE_AFTER_S": "3"})
        try:
            state = _wait(lambda: (s := _state(prefect_api, run_id))["type"] != "RUNNING" and s, 60,
                          "the zombie to be marked crashed")
            assert state["type"] == "CRASHED", state
            assert "heartbeat" in state["message"]

            # retry exactly as the UI's Retry button does
            _api(prefect_api, "POST", f"/flow_runs/{run_id}/set_state",
                 json={"state": {"type": "SCHEDULED", "name": "AwaitingRetry",
                                 "message": "Retry from the UI"}, "force": True})
            final = _wait(lambda: (s := _state(prefect_api, run_id))["type"] in
                          ("COMPLETED", "FAILED", "CRASHED") and s, 150, "the retried run to finish")
            assert final["type"] == "COMPLETED", log_path.read_text()[-3000:]
        finally:
            _stop(serve)

        counts = dict(site.counts)

    # pages of the batches stored before the kill were requested exactly once over both attempts
    stored_urls = [u for b in batches[:2] for u in b]
    assert len(stored_before) >= 3
    assert {path(u): counts.get(path(u)) for u in stored_urls} == {path(u): 1 for u in stored_urls}
    # every page landed, all under the one run id (the Prefect flow-run id)
    from newsmill.warehouse.catalog import connect

    con = connect(wh)
    try:
        n, ids = con.execute("select count(distinct url), list(distinct run_id) from articles").fetchone()
        run_counts = con.execute("select counts from runs where run_id = ?", [run_id]).fetchall()
    finally:
        con.close()
    assert n == N_PAGES
    assert ids == [run_id]
    assert json.loads(run_counts[-1][0])["batches_skipped_resume"] == 2
