"""Scale-out: the ``ingest`` flow on a Dask cluster (``[runner] task_runner = "dask"`` + ``dask_address``).

A ``distributed.LocalCluster`` with 2 worker *processes* stands in for a remote cluster; the batch tasks
run in the workers (extraction in the worker itself: ``runtime.pool()`` is None in daemonic workers),
the flow process stays the single warehouse writer."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.orchestration import LoopbackSite, write_config  # noqa: E402

pytestmark = pytest.mark.slow

N_PAGES = 16


def test_ingest_on_a_dask_cluster_lands_data(prefect_api, tmp_path):
    distributed = pytest.importorskip("distributed")
    from newsmill.flows.ingest import default_task_runner, ingest
    from newsmill.tasks.config import load_settings
    from newsmill.warehouse.catalog import connect

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    try:
        client = distributed.Client(cluster)
        with LoopbackSite(N_PAGES) as site:
            cfg = write_config(tmp_path / "dask.toml", site.base_url, batch_size=4, workers=2,
                               task_runner="dask", dask_address=cluster.scheduler_address)
            settings = load_settings(cfg)
            runner = default_task_runner(settings)
            assert type(runner).__name__ == "DaskTaskRunner"
            info = ingest.with_options(task_runner=runner)(config=str(cfg), warehouse=str(tmp_path / "wh"))
        # the batch tasks ran on the cluster's workers (Prefect submits them as Dask tasks)
        worker_tasks = client.run(lambda dask_worker: len(dask_worker.state.log), nanny=False)
        client.close()
    finally:
        cluster.close()

    assert info.articles_written == N_PAGES
    assert all(v > 0 for v in worker_tasks.values()), worker_tasks
    con = connect(tmp_path / "wh")
    try:
        assert con.execute("select count(distinct url) from articles").fetchone()[0] == N_PAGES
        assert con.execute("select count(*) from pages where outcome = 'ok' and kind = 'article'"
                           ).fetchone()[0] == N_PAGES
    finally:
        con.close()
