"""The batch engine (``flows.engine``) in a real Prefect flow (thread-pool task runner, the session's
Prefect API) over a real warehouse: at most ``runner.max_workers`` batches in flight, never two of one
host, batches already stored skipped, a host that defers gets no further batch, the next batch submitted
before the finished one is committed, every result committed once and the run recorded."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest


@dataclass(frozen=True)
class Job:
    batch_id: str
    host: str
    work_s: float = 0.05


def _page(job: Job, run_id: str):
    from newsmill.tasks.records import PageLogEntry

    return PageLogEntry(url=f"http://{job.host}/{job.batch_id}", final_url=None, kind="article", status=200,
                        outcome="ok", error=None, bytes=1, content_type="text/html",
                        fetched_at=datetime.now(timezone.utc), elapsed_ms=1, run_id=run_id, source="s")


def _run(tmp_path, jobs, *, max_workers: int, one_per_host: bool, done=frozenset(), defer: set[str] = frozenset(),
         events: list | None = None):
    """Run ``jobs`` through the engine in a flow; return (events, peak concurrency, info, the run's stored
    batch ids)."""
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    from newsmill.flows.engine import BatchOutput, batch_run
    from newsmill.flows.reporting import IngestInfo
    from newsmill.tasks.config import Settings
    from newsmill.warehouse.store import Warehouse

    lock = threading.Lock()
    events = [] if events is None else events  # ("submit" | "start" | "end" | "commit", batch_id, host)
    active: dict[str, int] = {}
    peak = {"all": 0, "same_host": 0}

    def log(*e):
        with lock:
            events.append(e)

    @task
    def work(job: Job, run_id: str) -> BatchOutput:
        with lock:
            active[job.host] = active.get(job.host, 0) + 1
            peak["all"] = max(peak["all"], sum(active.values()))
            peak["same_host"] = max(peak["same_host"], active[job.host])
            events.append(("start", job.batch_id, job.host))
        time.sleep(job.work_s)
        with lock:
            active[job.host] -= 1
            events.append(("end", job.batch_id, job.host))
        return BatchOutput(batch_id=job.batch_id, source="s", host=job.host, pages=[_page(job, run_id)],
                           timings={"fetch": job.work_s},
                           deferred_hosts=(job.host,) if job.host in defer else ())

    settings = Settings()
    settings = dataclasses.replace(settings, runner=dataclasses.replace(settings.runner, max_workers=max_workers))
    info = IngestInfo(run_id="engine-test", started_at=datetime.now(timezone.utc))

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
    def engine_flow():
        def submit(job):
            log("submit", job.batch_id, job.host)
            return work.submit(job, info.run_id)

        with batch_run(info, tmp_path, settings, parameters={"test": True}) as run:
            run.run(jobs, submit, one_per_host=one_per_host, done=set(done),
                    on_commit=lambda job, out: log("commit", job.batch_id, out.host))

    engine_flow()
    return events, peak, info, Warehouse(tmp_path).done_batches(info.run_id)


def test_bounded_never_two_of_one_host_resume_and_deferral(prefect_api, tmp_path):
    # (long enough that batches overlap even when Prefect's task bookkeeping is slow on a busy machine)
    jobs = ([Job(f"a{i}", "a.example", 0.6) for i in range(4)] + [Job(f"b{i}", "b.example", 0.3) for i in range(3)]
            + [Job(f"c{i}", "c.example", 0.3) for i in range(2)]
            + [Job("slow0", "slow.example", 0.3), Job("slow1", "slow.example", 0.3)])
    events, peak, info, stored = _run(tmp_path, jobs, max_workers=3, one_per_host=True, done={"b1"},
                                      defer={"slow.example"})
    started = [e[1] for e in events if e[0] == "start"]
    assert peak["all"] == 3  # bounded by runner.max_workers, and the bound is used
    assert peak["same_host"] == 1  # never two batches of one host at once
    assert "b1" not in started and info.batches_skipped == 1  # resume: already stored
    assert "slow1" not in started  # the host deferred: nothing more of it this run
    assert [e[1] for e in events if e[0] == "submit"][0] == "a0"  # the host with the most batches first
    expected = {j.batch_id for j in jobs} - {"b1", "slow1"}
    assert sorted(started) == sorted(expected)
    assert stored == expected  # every result committed (pages.batch_id), once
    assert [e[1] for e in events if e[0] == "commit"].count("a0") == 1
    assert info.timings["fetch"] == pytest.approx(sum(j.work_s for j in jobs if j.batch_id in expected))
    assert info.deferred_hosts == {"slow.example"}

    from newsmill.warehouse.catalog import connect

    con = connect(tmp_path)
    try:
        (finished, counts), = con.execute("select finished_at, counts from runs where run_id = ?",
                                          [info.run_id]).fetchall()
    finally:
        con.close()
    assert finished is not None
    assert json.loads(counts) == json.loads(json.dumps(info.asdict()))
    assert json.loads(counts)["batches_skipped_resume"] == 1


def test_next_batch_is_submitted_before_the_finished_one_is_committed(prefect_api, tmp_path):
    jobs = [Job(f"j{i}", f"h{i}.example") for i in range(4)]
    events, peak, _info, stored = _run(tmp_path, jobs, max_workers=1, one_per_host=False)
    order = [(e[0], e[1]) for e in events if e[0] in ("submit", "commit")]
    assert peak["all"] == 1
    for i in range(3):  # j{i+1} is on its way before j{i} is written
        assert order.index(("submit", f"j{i + 1}")) < order.index(("commit", f"j{i}"))
    assert stored == {j.batch_id for j in jobs}


def test_batches_are_pulled_only_when_a_slot_is_free(prefect_api, tmp_path):
    """A streaming planner (``import_warc`` reads its files lazily) holds only the batches in flight and
    the one being committed."""
    events: list[tuple] = []
    jobs = [Job(f"j{i}", "one.example", 0.3) for i in range(6)]

    def planner():
        for j in jobs:
            events.append(("pull", j.batch_id, j.host))
            yield j

    events, peak, _info, stored = _run(tmp_path, planner(), max_workers=2, one_per_host=False, events=events)
    held = 0
    for kind, *_ in events:
        held += {"pull": 1, "commit": -1}.get(kind, 0)
        assert held <= 3  # 2 in flight + 1 finished and being committed
    assert peak["all"] == 2  # (one_per_host off: one host's batches may run side by side)
    assert stored == {j.batch_id for j in jobs}


def test_submit_hands_arguments_over_as_they_are_without_prefect_walking_them(prefect_api):
    """engine.submit quotes a batch task's arguments: the task gets the very values, its run is named from
    them, and Prefect does not walk into them (a future inside an argument stays a future: walked, it
    would have been replaced by its result and recorded as an upstream input)."""
    from prefect import flow, task
    from prefect.client.orchestration import get_client
    from prefect.futures import PrefectFuture
    from prefect.task_runners import ThreadPoolTaskRunner

    from newsmill.flows.engine import submit

    @task
    def upstream() -> int:
        return 7

    @task(task_run_name="batch-{job.host}-{job.batch_id}")
    def work(job: Job, history: dict) -> tuple:
        nested = history["nested"][0]
        return job, history["hosts"], isinstance(nested, PrefectFuture), nested.result()

    history = {"hosts": {"a.example": frozenset({"h1", "h2"})}}

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def quoted_flow():
        history["nested"] = [upstream.submit()]
        fut = submit(work, Job("j1", "a.example"), history)
        return fut.task_run_id, fut.result()

    task_run_id, (job, hosts, still_future, value) = quoted_flow()
    assert job == Job("j1", "a.example") and hosts is history["hosts"]  # the same objects, not copies
    assert still_future and value == 7  # not walked: the future was not resolved on the way in

    async def read():
        async with get_client() as client:
            try:
                return await client.read_task_run(task_run_id)
            except Exception:  # noqa: BLE001 - not recorded yet (task runs reach the server as events)
                return None

    import asyncio

    from prefect_rest import wait_for

    tr = wait_for(lambda: (t := asyncio.run(read())) is not None and t.state_type is not None
                  and t.state_type.value == "COMPLETED" and t, 60, "the task run recorded as completed")
    assert tr.name == "batch-a.example-j1"
    assert not any(tr.task_inputs.values()), tr.task_inputs  # no upstream dependency found inside the arguments


def test_quoted_arguments_survive_pickling():
    """A Dask task runner pickles the parameters to its workers: Prefect's own ``quote`` comes back wrapped
    once more (``quote(("x",))``) and a worker got a tuple where its batch was expected."""
    import pickle

    from prefect.utilities.annotations import quote

    from newsmill.flows.engine import _Quoted

    value = {"hosts": {"a.example": frozenset({"h1"})}}
    back = pickle.loads(pickle.dumps(_Quoted(value)))
    assert isinstance(back, quote) and back.unquote() == value
    back = pickle.loads(pickle.dumps(back))  # and again (the Dask client, then the worker)
    assert back.unquote() == value


def test_pages_extracted_in_the_pool_are_extracted_as_their_text():
    """``engine.extract`` hands the pool UTF-8 bytes instead of text (no pickle encode/decode of every page
    at each process boundary): the results are those of ``extract_page`` on the text itself — non-ASCII
    letters, typographic punctuation and a lone surrogate (what surrogateescape decoding leaves) included."""
    from newsmill.flows import engine, runtime
    from newsmill.tasks.clean import load_rules
    from newsmill.tasks.config import Settings
    from newsmill.tasks.extract import extract_page
    from newsmill.tasks.stories import signature

    para = ("<p>Le conseil municipal de Zürich a voté mardi le budget du pont, après des débats qui ont duré "
            "jusqu’à minuit — « une étape », selon la maire. Les travaux commenceront en mai.</p>")
    html = ("<html lang='fr'><head><title>Le pont de Zürich</title><meta name='author' content='Léa Müller'>"
            "</head><body><article><h1>Le pont de Zürich</h1>" + para * 4 + "</article></body></html>")
    pages = [("https://journal.example.org/a", html), ("https://journal.example.org/b", html.replace("pont", "p\udcffnt"))]
    settings, rules = Settings(), load_rules()
    assert settings.extract.workers > 1  # the real pool: a forkserver, its workers and their children
    run_id = "test-engine-bytes"
    try:
        got = engine.extract(run_id, settings, pages, rules, {})
    finally:
        runtime.close(run_id)
    want = [extract_page(h, u, rules=rules, settings=settings.extract) for u, h in pages]
    assert all(w.article is not None for w in want)
    assert got == [dataclasses.replace(w, signature=signature(w.article.text)) for w in want]
