"""The batch engine: how ``ingest``, ``reprocess`` and ``import_warc`` run their batches.

A flow brings its planner (batches, each with a ``batch_id`` and a ``host``), its task (one batch in, a
:class:`BatchOutput` out) and its run info (``flows.reporting.IngestInfo`` …); the engine does the rest::

    plan ──► run bounded, never two of one host ──► commit each ──► stories ──► consolidate ──► run record

* :func:`batch_run` takes the warehouse's single-writer lock, writes the run's ``runs`` row at the start
  (``finished_at`` empty, so a crashed run is visible) and at the end (``info.asdict()`` as ``counts``),
  consolidates the partitions the run wrote when asked (ingest), and closes the run's per-process
  resources (``flows.runtime``) whatever happens.
* :meth:`BatchRun.run` keeps at most ``runner.max_workers`` batch tasks in flight. With ``one_per_host``
  never two batches of one host at once (politeness; hosts with the most batches first) and a host that
  asked to be left alone (``deferred_hosts``) gets no further batch this run. Batches whose id is in
  ``done`` are skipped (resume). When a batch finishes, the next one is submitted *before* the finished
  one is committed, so a slow commit does not idle the fetchers and extraction workers. Batches are
  pulled from the planner only when a slot is free, so a streaming planner (a WARC file read record by
  record) holds only the batches in flight. The flow process is the single writer: it commits each
  batch atomically (``WarehouseWriter.commit_batch``) and counts it into the run info.
* :func:`submit` submits a batch task with its arguments quoted (Prefect does not walk into them).
* :func:`extract` is the clean+extract step of every batch task: in the run's process pool (the flow
  process never imports the extraction stack), and :meth:`BatchOutput.add_extraction` the shared
  assembly of its results.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections import Counter, defaultdict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Generic, Iterable, Iterator, Protocol, TypeVar

from prefect.futures import PrefectFuture, as_completed
from prefect.utilities.annotations import quote

from newsmill.flows import runtime
from newsmill.flows.reporting import RunInfo, logger
from newsmill.tasks.config import Settings
from newsmill.tasks.records import Article, PageLogEntry, Removal, RunRecord
from newsmill.tasks.urls import domain_of
from newsmill.warehouse.stories import update_stories

__all__ = ["Batch", "BatchOutput", "BatchRun", "batch_run", "current_run_id", "default_task_runner", "extract",
           "in_worker", "submit"]


class Batch(Protocol):
    """What the engine needs of a planned batch (each flow has its own batch type)."""

    batch_id: str
    host: str


B = TypeVar("B", bound=Batch)

# worker-computed signatures a run holds before it assigns them to stories (~0.7 KB each)
PENDING_SIGNATURES = 20_000


@dataclass
class BatchOutput:
    """What a batch task returns: the rows to commit and the work it did."""

    batch_id: str
    source: str
    host: str
    pages: list[PageLogEntry] = field(default_factory=list)
    articles: list[Article] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    blocks: list[tuple[str, str, str, str]] = field(default_factory=list)  # (domain, hash, article_id, content_hash)
    outcomes: Counter = field(default_factory=Counter)  # re-extractions by outcome (reprocess: no pages rows)
    timings: dict[str, float] = field(default_factory=dict)  # seconds of work per stage ("fetch", …)
    deferred_hosts: tuple[str, ...] = ()  # hosts that asked us to come back later (Retry-After)
    signatures: dict = field(default_factory=dict)  # (article_id, content_hash) -> worker-computed signature

    def add_extraction(self, x, *, fetched_at: datetime | None, run_id: str, source: str | None) -> None:
        """Add one ``ExtractResult``: its article (with the fetch context), block fingerprints, removals."""
        if x.article is not None:
            a = x.article.with_context(fetched_at=fetched_at, run_id=run_id, source=source)
            self.articles.append(a)
            self.blocks.extend((a.domain, h, a.article_id, a.content_hash) for h in x.block_hashes)
            if x.signature is not None:
                self.signatures[(a.article_id, a.content_hash)] = x.signature
        # (no run_id per row: the run's writer stamps its run id on rows without one, and a copy of each of
        # a page's ~16 frozen rows cost the flow process ~0.25 ms per page)
        self.removals.extend(x.removals)


def _heartbeats_not_joined() -> None:
    """Flow runs keep their heartbeats (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, zombie detection), but the
    end of a run no longer waits for the heartbeat thread. Prefect 3.9's sync engine joins it on exit
    while it sleeps in 1 s steps, so every run's teardown waited up to 1 s (0.5 s on average; ~12 % of an
    all-304 rerun from the command line). Prefect's async engine runs the same context manager with
    ``join_on_exit=False``; so do ours: the thread sees the stop flag within a second and ends (a daemon,
    it never outlives the process), and it emits no heartbeat once the run's state is final. A Prefect
    whose ``_send_heartbeats`` lacks that parameter is left untouched."""
    import functools
    import inspect

    import prefect.flow_engine as fe

    send = getattr(fe, "_send_heartbeats", None)
    if send is None or getattr(send, "newsmill_not_joined", False):
        return
    try:
        if "join_on_exit" not in inspect.signature(send).parameters:
            return
    except (TypeError, ValueError):  # pragma: no cover - not introspectable: leave Prefect as it is
        return

    @functools.wraps(send)
    def send_not_joined(engine, join_on_exit: bool = False):
        return send(engine, join_on_exit=False)

    send_not_joined.newsmill_not_joined = True
    fe._send_heartbeats = send_not_joined


_heartbeats_not_joined()


def current_run_id() -> str:
    """The Prefect flow-run id (a retry keeps it: resume), or a fresh id outside a flow run."""
    from prefect.runtime import flow_run

    rid = flow_run.get_id()
    return str(rid) if rid else uuid.uuid4().hex


class _Quoted(quote):
    """Prefect's ``quote`` that survives pickling (a Dask task runner sends the parameters to its workers):
    ``quote`` is a 1-tuple subclass whose default pickle calls ``quote(tuple(self))``, wrapping the value
    once more on every trip, so a worker got ``(value,)`` instead of ``value``."""

    __slots__ = ()

    def __reduce__(self):
        return (type(self), (self.unquote(),))


def submit(task, *args) -> PrefectFuture:
    """``task.submit(*args)`` with each argument wrapped in Prefect's ``quote``: the task gets the values
    as they are, and Prefect's task engine does not walk into them looking for upstream futures. It walks
    every parameter of every task run twice (task inputs, resolution) — a batch's URLs, the settings and
    the recurring-block history of every host of the run, which grows with the warehouse: ~8 ms per task
    with 100 URLs and 1,200 block hashes, 0.08 ms quoted. (The Dask task runner still walks the arguments
    once in the flow process, looking for futures to hand to Dask.) Batch arguments are plain values,
    never futures."""
    return task.submit(*(_Quoted(a) for a in args))


# ---------------------------------------------------------------------------------------------- workers


def in_worker(run_id: str, settings: Settings, fn: Callable, *args):
    """``fn(*args)`` in the run's extraction pool, or here where no pool is allowed (``workers = 1``, a
    daemonic Dask worker). ``fn`` must be importable without the extraction stack (``flows.runtime``)."""
    pool = runtime.pool(run_id, settings.extract.workers)
    if pool is not None:
        return pool.submit(fn, *args).result()
    return fn(*args)


def extract(run_id: str, settings: Settings, pages_in: list[tuple[str, str | bytes]], rules,
            history: dict[str, frozenset[str]]) -> list:
    """Clean and extract ``[(url, html)]`` in the run's pool: one ``ExtractResult`` per page, in order.
    ``html``: the page's text, or its UTF-8 bytes (``tasks.archive.record_page``).
    ``history``: recurring block hashes per host (only the hosts of these pages are sent)."""
    if not pages_in:  # (a batch of 304s or unreadable records: no pool, no extraction stack)
        return []
    hist = {h: history.get(h, frozenset()) for h in {domain_of(u) for u, _ in pages_in}}
    # UTF-8 bytes cross the two process boundaries (the pool's worker, its extraction child) as a plain copy;
    # pickle encodes and decodes a non-ASCII str at each (~0.1-0.7 ms per 170 KB page), and parse_html
    # encodes it the same way anyway
    pages_in = [(u, h.encode("utf-8", "surrogatepass") if isinstance(h, str) else h) for u, h in pages_in]
    return in_worker(run_id, settings, runtime.extract_batch, pages_in, rules, settings.extract, hist)


def default_task_runner(settings: Settings | None = None):
    """The Prefect task runner of ``settings.runner``: a thread pool of ``max_workers`` (the default of
    every flow) or Dask."""
    settings = settings or Settings()
    if settings.runner.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.runner.dask_address:
            return DaskTaskRunner(address=settings.runner.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": settings.runner.dask_workers,
                                              "threads_per_worker": 2, "processes": True})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=settings.runner.max_workers)


# ---------------------------------------------------------------------------------------------- run


class BatchRun(Generic[B]):
    """The batches of one run (obtained from :func:`batch_run`)."""

    def __init__(self, writer, info: RunInfo, max_in_flight: int, settings: Settings | None = None):
        self.writer = writer  # warehouse.store.WarehouseWriter
        self.warehouse = writer.warehouse
        self.info = info
        self.max_in_flight = max(1, max_in_flight)
        self.stories = settings.stories if settings is not None else None
        self.signatures: dict = {}  # committed new versions' signatures, until the stories step uses them

    def assign_stories(self) -> None:
        """Tie the committed new article versions to stories (``warehouse.stories``), with the signatures
        the workers computed; also called during a long run so the pending signatures stay bounded."""
        if self.stories is None or not self.stories.enabled:
            return
        t = time.perf_counter()
        got = update_stories(self.writer, self.stories, signatures=self.signatures).as_dict()
        self.signatures = {}
        for k, v in got.items():
            self.info.stories[k] = round(self.info.stories.get(k, 0) + v, 3)
        self.info.timings["stories"] += time.perf_counter() - t

    def run(self, batches: Iterable[B], submit: Callable[[B], PrefectFuture], *, one_per_host: bool = False,
            done: set[str] | frozenset[str] = frozenset(), on_skip: Callable[[B], None] | None = None,
            on_commit: Callable[[B, BatchOutput], None] | None = None) -> None:
        """Run ``submit(batch)`` (a Prefect task's ``.submit``) for every batch not in ``done`` and commit
        each result; ``on_skip``/``on_commit`` let the flow count or show progress. ``done`` may grow while
        ``batches`` is consumed (a streaming planner adds the stored ids of each file it opens)."""
        info = self.info

        def fresh() -> Iterator[B]:
            for b in batches:
                if b.batch_id in done:
                    info.batches_skipped += 1
                    if on_skip is not None:
                        on_skip(b)
                else:
                    yield b

        queues: dict[str, deque] = defaultdict(deque)
        if one_per_host:
            for b in fresh():
                queues[b.host].append(b)
            hosts = sorted(queues, key=lambda h: -len(queues[h]))  # stable: the planner's order among equals

            def next_batch(busy: set[str]) -> B | None:
                for h in hosts:
                    if queues[h] and h not in busy:
                        return queues[h].popleft()
                return None
        else:
            stream = fresh()

            def next_batch(busy: set[str]) -> B | None:
                return next(stream, None)

        in_flight: dict[PrefectFuture, B] = {}

        def fill() -> None:
            while len(in_flight) < self.max_in_flight:
                b = next_batch({x.host for x in in_flight.values()})
                if b is None:
                    return
                in_flight[submit(b)] = b

        t0 = time.perf_counter()
        fill()
        while in_flight:
            fut = next(as_completed(list(in_flight)))
            batch = in_flight.pop(fut)
            out: BatchOutput = fut.result()
            if batch.host in out.deferred_hosts:
                queues[batch.host].clear()  # the host asked us to come back later
            fill()  # keep fetchers and extraction workers busy while this batch is written
            self.commit(out)
            if on_commit is not None:
                on_commit(batch, out)
        info.timings["batch_phase"] += time.perf_counter() - t0  # wall: work ‖ commits

    def commit(self, out: BatchOutput) -> None:
        """Store one batch atomically and count it."""
        t = time.perf_counter()
        stats = self.writer.commit_batch(out.batch_id, out.pages, out.articles, out.removals, out.blocks)
        self.info.timings["write"] += time.perf_counter() - t
        runtime.release_memory()  # the batch's bodies and rows are gone: keep RSS flat
        self.info.timings.update(out.timings)
        self.info.add_batch(out, stats)
        if self.stories is not None and self.stories.enabled and out.signatures:
            self.signatures.update(out.signatures)
            if len(self.signatures) >= PENDING_SIGNATURES:
                self.assign_stories()
        if out.deferred_hosts:
            logger().warning("%s: hosts deferred to the next run (Retry-After above fetch.max_retry_after_s): %s",
                             out.batch_id, ", ".join(sorted(out.deferred_hosts)))


def _record(info: RunInfo, parameters: str) -> RunRecord:
    return RunRecord(run_id=info.run_id, flow=info.FLOW, started_at=info.started_at, finished_at=info.finished_at,
                     parameters=parameters, counts=json.dumps(info.asdict() if info.finished_at else {}))


@contextmanager
def batch_run(info: RunInfo, root: Path, settings: Settings, *, parameters: dict | None = None,
              consolidate: bool = False) -> Iterator[BatchRun]:
    """Hold the warehouse for one run: ``runs`` row at start and end, consolidation, resources closed."""
    from newsmill.warehouse.store import Warehouse

    params = json.dumps(parameters or {}, default=str)
    try:
        with Warehouse(root).writer(info.run_id) as writer:
            writer.write_run(_record(info, params))
            run = BatchRun(writer, info, settings.runner.max_workers, settings)
            yield run
            run.assign_stories()  # tie the run's new articles to stories (warehouse/stories.py)
            if consolidate:
                t = time.perf_counter()
                writer.consolidate()  # one file per table partition for tonight, not one per batch
                info.timings["consolidate"] += time.perf_counter() - t
            info.finished_at = datetime.now(timezone.utc)
            writer.write_run(_record(info, params))
    finally:
        runtime.close(info.run_id)
