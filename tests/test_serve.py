"""``newsmill serve`` against a real Prefect API: deployments, schedule, concurrency, parameter schema, a
run started exactly as the UI's Run button does, its artifacts, and the data it landed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.orchestration import LoopbackSite, write_config  # noqa: E402

pytestmark = pytest.mark.slow

N_PAGES = 12


def api(prefect_api, method: str, path: str, **kw) -> httpx.Response:
    # a busy SQLite-backed server answers 503 (database locked); retry as Prefect's own client does
    for attempt in range(6):
        r = httpx.request(method, prefect_api["url"] + path, timeout=30, **kw)
        if r.status_code not in (429, 503):
            return r
        time.sleep(0.5 * 2 ** attempt)
    return r


def wait_for(pred, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def deployments(prefect_api) -> dict[str, dict]:
    r = api(prefect_api, "POST", "/deployments/filter", json={"deployments": {"tags": {"all_": ["newsmill"]}}})
    r.raise_for_status()
    return {d["name"]: d for d in r.json()}


def wait_run(prefect_api, run_id: str, timeout: float = 120) -> dict:
    def final():
        run = api(prefect_api, "GET", f"/flow_runs/{run_id}").json()
        return run if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

    return wait_for(final, timeout, f"flow run {run_id} to finish")


@pytest.fixture(scope="module")
def served(prefect_api, tmp_path_factory):
    """One ``newsmill serve`` subprocess for this module, with its own loopback site and warehouse."""
    tmp = tmp_path_factory.mktemp("serve")
    newsmill_cmd = str(Path(sys.executable).with_name("newsmill"))
    with LoopbackSite(N_PAGES) as site:
        cfg = write_config(tmp / "site.toml", site.base_url, batch_size=5)
        wh = tmp / "wh-default"
        log = open(tmp / "serve.log", "wb")
        proc = subprocess.Popen([newsmill_cmd, "serve", "--config", str(cfg), "--warehouse", str(wh),
                                 "--timezone", "Europe/Berlin"], env=prefect_api["env"], cwd=tmp,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            def registered():
                if proc.poll() is not None:
                    raise AssertionError("newsmill serve exited:\n" + (tmp / "serve.log").read_text()[-3000:])
                deps = deployments(prefect_api)
                if not {"nightly", "compact", "reprocess", "import-warc"} <= set(deps):
                    return None
                # other test modules may have served the same deployments earlier in the session: wait
                # until this serve process has (re-)registered them all with its own config
                mine = str(cfg.resolve())
                if any(deps[n]["parameters"].get("config") != mine for n in ("nightly", "reprocess", "import-warc")):
                    return None
                if deps["compact"]["parameters"].get("warehouse") != str(wh.resolve()):
                    return None
                return deps

            deps = wait_for(registered, 60, "deployments to register")
            yield {"site": site, "config": cfg, "warehouse": wh, "tmp": tmp, "deployments": deps,
                   "proc": proc, "log": tmp / "serve.log"}
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()


def test_deployments_registered_with_schedule_concurrency_and_schema(served, prefect_api):
    deps = served["deployments"]
    nightly = deps["nightly"]
    assert "ingest" in nightly["tags"] and "newsmill" in nightly["tags"]
    assert nightly["description"]
    assert nightly["entrypoint"] == "newsmill.flows.serve.served_ingest"
    (sched,) = nightly["schedules"]
    assert sched["schedule"]["cron"] == "0 2 * * *"
    assert sched["schedule"]["timezone"] == "Europe/Berlin"
    assert sched["active"] is True
    # one run at a time per deployment (3.9: a global concurrency limit + collision strategy)
    assert nightly["global_concurrency_limit"]["limit"] == 1
    assert nightly["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    assert nightly["enforce_parameter_schema"] is True
    props = nightly["parameter_openapi_schema"]["properties"]
    assert set(props) == {"config", "warehouse", "sources", "limit", "refetch"}
    assert props["refetch"]["type"] == "boolean"
    assert {"type": "integer"} in props["limit"]["anyOf"]
    assert {"type": "array", "items": {"type": "string"}} in props["sources"]["anyOf"]
    # parameter defaults = the --config/--warehouse given to serve
    assert nightly["parameters"] == {"config": str(served["config"].resolve()),
                                     "warehouse": str(served["warehouse"].resolve())}

    compact = deps["compact"]
    assert compact["schedules"] == []
    assert set(compact["parameter_openapi_schema"]["properties"]) == {"warehouse", "table"}
    assert compact["global_concurrency_limit"]["limit"] == 1
    reprocess = deps["reprocess"]
    assert reprocess["schedules"] == []
    assert {"warehouse", "since", "until", "source", "domain"} <= set(
        reprocess["parameter_openapi_schema"]["properties"])
    imp = deps["import-warc"]
    assert imp["schedules"] == [] and "files" in imp["parameter_openapi_schema"]["required"]

    # the serve process installed the zombie-run automation
    autos = api(prefect_api, "POST", "/automations/filter", json={}).json()
    assert any(a["name"] == "newsmill-zombie-runs" for a in autos)


def test_wrong_parameter_type_is_rejected_like_the_ui(served, prefect_api):
    dep = served["deployments"]["nightly"]
    r = api(prefect_api, "POST", f"/deployments/{dep['id']}/create_flow_run",
            json={"state": {"type": "SCHEDULED"}, "parameters": {"limit": "lots"},
                  "enforce_parameter_schema": True})
    assert r.status_code == 409, r.text
    assert "limit" in r.text


def test_custom_run_from_the_ui_completes_and_lands_data(served, prefect_api, tmp_path):
    dep = served["deployments"]["nightly"]
    wh = tmp_path / "wh-custom"
    # exactly what the UI's "Run > Custom run" sends
    r = api(prefect_api, "POST", f"/deployments/{dep['id']}/create_flow_run",
            json={"state": {"type": "SCHEDULED"}, "enforce_parameter_schema": True,
                  "parameters": {"config": str(served["config"]), "warehouse": str(wh), "limit": 10,
                                 "sources": ["gazette"], "refetch": False}})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    run = wait_run(prefect_api, run_id, timeout=150)
    assert run["state"]["type"] == "COMPLETED", served["log"].read_text()[-3000:]

    # the data landed in the custom warehouse (the limit was honoured)
    from newsmill.warehouse.catalog import connect

    con = connect(wh)
    n_articles = con.execute("select count(*) from articles").fetchone()[0]
    run_ids = {r[0] for r in con.execute("select distinct run_id from articles").fetchall()}
    con.close()
    assert n_articles == 10
    served["landed"] = wh
    assert run_ids == {run_id}  # run_id = the Prefect flow-run id (the resume key)
    assert sum(served["site"].counts[f"/a/{i}.html"] for i in range(N_PAGES)) == 10

    # the run view: per-source table, markdown report and progress artifacts
    arts = api(prefect_api, "POST", "/artifacts/filter",
               json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
    by_type = {}
    for a in arts:
        by_type.setdefault(a["type"], []).append(a)
    assert {"table", "markdown", "progress"} <= set(by_type), [a["type"] for a in arts]
    table = next(a for a in by_type["table"] if a["key"] == "ingest-summary")
    rows = json.loads(table["data"]) if isinstance(table["data"], str) else table["data"]
    assert rows[0]["source"] == "gazette" and rows[0]["articles_written"] == 10
    progress = by_type["progress"][0]
    assert float(progress["data"]) == pytest.approx(100.0)

    # task names are meaningful in the run view
    tasks = api(prefect_api, "POST", "/task_runs/filter",
                json={"flow_runs": {"id": {"any_": [run_id]}}}).json()
    names = {t["name"] for t in tasks}
    assert "discover-gazette" in names
    assert any(n.startswith("batch-gazette-127.0.0.1") for n in names), names


def test_compact_deployment_runs(served, prefect_api):
    pytest.importorskip("newsmill.warehouse.compact")
    dep = served["deployments"]["compact"]
    r = api(prefect_api, "POST", f"/deployments/{dep['id']}/create_flow_run",
            json={"state": {"type": "SCHEDULED"}, "enforce_parameter_schema": True,
                  "parameters": {"warehouse": str(served.get("landed") or served["warehouse"])}})
    assert r.status_code == 201, r.text
    run = wait_run(prefect_api, r.json()["id"], timeout=90)
    assert run["state"]["type"] == "COMPLETED", served["log"].read_text()[-3000:]
