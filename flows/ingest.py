"""The ``ingest`` flow: discover → fetch → clean+extract → store, batched.

Shape of a run (few tasks, each doing real work — a Prefect task costs milliseconds of bookkeeping):

* one ``discover-<source>`` task per source;
* URLs grouped per host and cut into batches of ``extract.batch_size``; one ``batch-<source>-<host>-<n>``
  task per batch fetches its pages (threads, polite per host) and cleans/extracts them in a process pool;
  at most ``runner.max_workers`` batches run at once and never two of one host (politeness), so one
  batch's fetching overlaps another's extraction;
* the flow process is the single writer: it commits each finished batch atomically to the warehouse.

Resume: ``run_id`` is the Prefect flow-run id, which a retry keeps. Batches already committed under that
run id (``pages.batch_id``) are skipped, so retrying a crashed run does not fetch them again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from newsmill.flows import runtime
from newsmill.flows.reporting import FlowProgress, RunSummary, summary_artifacts
from newsmill.flows.reporting import logger as _logger
from newsmill.flows.reporting import notify as _notify
from newsmill.tasks.config import Settings, load_settings, resolve_warehouse  # noqa: F401 (re-exported)
from newsmill.tasks.errors import NewsmillError
from newsmill.tasks.records import Article, DiscoveredURL, PageLogEntry, Removal, RunRecord
from newsmill.tasks.urls import domain_of


def _current_run_id() -> str:
    from prefect.runtime import flow_run

    rid = flow_run.get_id()
    return str(rid) if rid else uuid.uuid4().hex


# ---------------------------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class Batch:
    batch_id: str
    source: str
    host: str
    index: int
    urls: tuple[DiscoveredURL, ...]
    conditionals: tuple[tuple[str, str | None, str | None], ...] = ()  # (url, etag, last_modified)


@dataclass
class BatchOutput:
    batch_id: str
    source: str
    host: str
    pages: list[PageLogEntry]
    articles: list[Article]
    removals: list[Removal]
    blocks: list[tuple[str, str, str, str]]  # (domain, block_hash, article_id, content_hash)
    fetch_s: float = 0.0
    extract_s: float = 0.0
    deferred_hosts: tuple[str, ...] = ()


RAMP_MIN_BATCH = 40  # batch sizes from which a host's first batch is a quarter batch


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the batches of a host's ``n`` sorted URLs. The first batch is a quarter of
    ``batch_size`` (when that is at least 10 pages): its pages are fetched and handed to the extraction
    workers sooner, so the workers are not idle while the first full batches download."""
    bounds: list[tuple[int, int]] = []
    start = 0
    if batch_size >= RAMP_MIN_BATCH and n > batch_size // 4:
        bounds.append((0, batch_size // 4))
        start = batch_size // 4
    bounds += [(i, min(i + batch_size, n)) for i in range(start, n, batch_size)]
    return bounds


def plan_batches(run_id: str, urls: list[DiscoveredURL], batch_size: int,
                 conditional: dict[str, tuple[str | None, str | None]]) -> list[Batch]:
    """Group by (source, host), sort, and cut into batches (:func:`batch_bounds`) with ids stable for
    the same URL set."""
    groups: dict[tuple[str, str], list[DiscoveredURL]] = defaultdict(list)
    for u in urls:
        groups[(u.source, domain_of(u.url))].append(u)
    batches: list[Batch] = []
    for (source, host), items in sorted(groups.items()):
        items.sort(key=lambda d: d.url)
        for index, (start, stop) in enumerate(batch_bounds(len(items), batch_size)):
            chunk = tuple(items[start:stop])
            digest = hashlib.sha256(
                "\n".join([run_id, source, *[d.url for d in chunk]]).encode()
            ).hexdigest()[:16]
            conds = tuple((d.url, *conditional[d.url]) for d in chunk if d.url in conditional)
            batches.append(Batch(batch_id=f"b{digest}", source=source, host=host, index=index,
                                 urls=chunk, conditionals=conds))
    return batches


def run_batch(batch: Batch, settings: Settings, run_id: str, warehouse_root: str | None,
              history: dict[str, frozenset[str]]) -> BatchOutput:
    """Fetch and extract one batch. Plain function (the ``process_batch`` task wraps it)."""
    from newsmill.tasks.fetch import Conditional, FetchRequest

    fetcher = runtime.fetcher(run_id, settings.fetch, warehouse_root)
    conds = {u: Conditional(etag=e, last_modified=lm) for (u, e, lm) in batch.conditionals}
    t0 = time.perf_counter()
    requests = [FetchRequest(url=d.url, kind="article", source=batch.source, conditional=conds.get(d.url))
                for d in batch.urls]
    results = list(fetcher.fetch_many(requests))
    robots_rows = fetcher.drain_log()  # robots.txt fetches made on the way (rows of their own)
    t1 = time.perf_counter()

    ok = [r for r in results if r.ok]
    pages_in = [(r.log.final_url or r.log.url, r.html) for r in ok]
    extracted = []
    if pages_in:  # (a batch of 304s has nothing to extract: no rules, pool or extraction stack needed)
        rules = runtime.rules(run_id)
        hist = {h: history.get(h, frozenset()) for h in {domain_of(u) for u, _ in pages_in}}
        pool = runtime.pool(run_id, settings.extract.workers)
        if pool is not None:
            extracted = pool.submit(runtime.extract_batch, pages_in, rules, settings.extract, hist).result()
        else:
            extracted = runtime.extract_batch(pages_in, rules, settings.extract, hist)
    t2 = time.perf_counter()

    by_url = {id(r): x for r, x in zip(ok, extracted)}
    pages: list[PageLogEntry] = []
    articles: list[Article] = []
    removals: list[Removal] = []
    blocks: list[tuple[str, str, str, str]] = []
    for r in results:
        log = dataclasses.replace(r.log, run_id=run_id, source=batch.source)
        x = by_url.get(id(r))
        if x is not None:
            if x.article is None:
                log = dataclasses.replace(log, outcome=x.outcome, error=x.error)
            else:
                a = x.article.with_context(fetched_at=log.fetched_at, run_id=run_id, source=batch.source)
                articles.append(a)
                blocks.extend((a.domain, h, a.article_id, a.content_hash) for h in x.block_hashes)
            removals.extend(dataclasses.replace(rm, run_id=run_id) for rm in x.removals)
        pages.append(log)
    pages.extend(dataclasses.replace(r, run_id=run_id, source=r.source or batch.source) for r in robots_rows)
    return BatchOutput(batch_id=batch.batch_id, source=batch.source, host=batch.host, pages=pages,
                       articles=articles, removals=removals, blocks=blocks, fetch_s=t1 - t0,
                       extract_s=t2 - t1, deferred_hosts=tuple(fetcher.deferred_hosts))


@task(name="discover", task_run_name="discover-{source_name}", cache_policy=NO_CACHE)
def discover_task(source_name: str, settings: Settings, run_id: str, warehouse_root: str | None):
    from newsmill.tasks.discover import discover_source

    fetcher = runtime.fetcher(run_id, settings.fetch, warehouse_root)
    result = discover_source(settings.source(source_name), fetcher, run_id=run_id,
                             now=datetime.now(timezone.utc))
    _logger().info("source %s: %d URLs in scope, skipped %s", source_name, len(result.urls),
                   dict(result.skipped) or "none")
    return result


@task(name="fetch-extract", task_run_name="batch-{batch.source}-{batch.host}-{batch.index}",
      cache_policy=NO_CACHE)
def process_batch(batch: Batch, settings: Settings, run_id: str, warehouse_root: str | None,
                  history: dict[str, frozenset[str]]) -> BatchOutput:
    out = run_batch(batch, settings, run_id, warehouse_root, history)
    _logger().info("%s: %d pages, %d articles, fetch %.1fs, extract %.1fs", batch.batch_id,
                   len(out.pages), len(out.articles), out.fetch_s, out.extract_s)
    return out


# ---------------------------------------------------------------------------------------------- summary


def _ingest_rows(counts: dict) -> list[dict]:
    """The per-source table of an ingest run (named columns for the UI)."""
    def joined(c: dict, prefix: str) -> str:
        return ", ".join(f"{k.split(':', 1)[1]}={v}" for k, v in sorted(c.items()) if k.startswith(prefix)) or "0"

    return [{"source": name, "discovered": c.get("discovered", 0), "fetched": c.get("fetched", 0),
             "not_modified": c.get("not_modified", 0), "failed": joined(c, "failed:"),
             "articles_written": c.get("articles_written", 0), "skipped": joined(c, "skipped:")}
            for name, c in counts["sources"].items()]


# ---------------------------------------------------------------------------------------------- flow


def default_task_runner(settings: Settings | None = None):
    settings = settings or Settings()
    if settings.runner.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.runner.dask_address:
            return DaskTaskRunner(address=settings.runner.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": settings.runner.dask_workers,
                                              "threads_per_worker": 2, "processes": True})
    return ThreadPoolTaskRunner(max_workers=settings.runner.max_workers)


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=True,
      description="Discover, fetch, clean, extract and store the configured news sources.")
def ingest(config: str | None = None, warehouse: str | None = None, sources: list[str] | None = None,
           limit: int | None = None, refetch: bool = False) -> dict:
    """Run one ingest.

    Args:
        config: path of a TOML config (default: config/sources.toml, the nightly source list).
        warehouse: warehouse directory (default: $NEWSMILL_WAREHOUSE or data/).
        sources: only these source names (default: all).
        limit: at most this many article URLs in this run (across sources).
        refetch: fetch unconditionally (ignore stored ETag/Last-Modified).
    """
    settings = load_settings(config).select_sources(sources)
    root = resolve_warehouse(warehouse)
    return run_ingest(settings, root, limit=limit, refetch=refetch,
                      parameters={"config": config, "warehouse": str(root), "sources": sources,
                                  "limit": limit, "refetch": refetch})


def run_ingest(settings: Settings, root: Path, *, limit: int | None = None, refetch: bool = False,
               parameters: dict | None = None, run_id: str | None = None) -> dict:
    from newsmill.warehouse.store import Warehouse

    log = _logger()
    run_id = run_id or _current_run_id()
    wh = Warehouse(root)
    summary = RunSummary(run_id=run_id, started_at=datetime.now(timezone.utc))
    if not settings.sources:
        raise NewsmillError(f"no sources configured in {settings.config_path}")
    if settings.runner.task_runner == "threads" and (refetch or not wh.has_pages()):
        runtime.start_forkserver(settings.extract.workers)  # imports in parallel with discovery
    try:
        with wh.writer(run_id) as writer:
            done = wh.done_batches(run_id)
            if done:
                log.info("resuming run %s: %d batches already stored", run_id, len(done))

            # 1. discover
            t = time.perf_counter()
            futures = [discover_task.submit(s.name, settings, run_id, str(root)) for s in settings.sources]
            urls: list[DiscoveredURL] = []
            for s, fut in zip(settings.sources, futures):
                res = fut.result()
                bid = f"discover-{s.name}"
                if bid not in done:
                    writer.commit_batch(bid, [dataclasses.replace(p, source=s.name) for p in res.log],
                                        [], [], [])
                summary.add_pages(s.name, list(res.log))
                c = summary.per_source[s.name]
                c["discovered"] += len(res.urls)
                for reason, n in res.skipped.items():
                    c[f"skipped:{reason}"] += n
                urls.extend(res.urls)
            if limit is not None:
                urls = urls[:limit]
            summary.timings["discover"] += time.perf_counter() - t
            _notify("discovered", total=len(urls))

            # 2. plan batches (incremental: conditional requests from the stored fetch state)
            t = time.perf_counter()
            conditional = {} if refetch else wh.conditional_state([u.url for u in urls])
            batches = plan_batches(run_id, urls, settings.extract.batch_size, conditional)
            todo = [b for b in batches if b.batch_id not in done]
            summary.batches_skipped = len(batches) - len(todo)
            history = wh.recurring_blocks(sorted({b.host for b in todo}),
                                          settings.extract.recurring_min_pages)
            writer.preload_keys({b.host for b in todo})
            summary.timings["plan"] += time.perf_counter() - t
            if settings.runner.task_runner == "threads" and any(len(b.conditionals) < len(b.urls)
                                                                for b in todo):
                # new URLs to extract: start the workers now, while the first batches are fetched
                # (a run of only conditional requests may get all 304s and never need them)
                runtime.warm_pool(run_id, settings.extract.workers)
            log.info("%d URLs in %d batches (%d already stored)", len(urls), len(batches),
                     summary.batches_skipped)

            # 3. fetch + extract (tasks) and 4. store (this process), never two batches of one host at once
            progress = FlowProgress(sum(len(b.urls) for b in todo), key="ingest-progress",
                                    description="pages fetched and extracted")
            pending: dict[str, list[Batch]] = defaultdict(list)
            for b in todo:
                pending[b.host].append(b)
            host_order = sorted(pending, key=lambda h: -len(pending[h]))
            in_flight: dict = {}
            max_in_flight = max(1, settings.runner.max_workers)

            def submit_more():
                for h in host_order:
                    if len(in_flight) >= max_in_flight:
                        return
                    if pending[h] and h not in {b.host for b in in_flight.values()}:
                        b = pending[h].pop(0)
                        fut = process_batch.submit(b, settings, run_id, str(root), history)
                        in_flight[fut] = b

            t_batches = time.perf_counter()
            submit_more()
            while in_flight:
                fut = next(as_completed(list(in_flight)))
                batch = in_flight.pop(fut)
                out: BatchOutput = fut.result()
                if out.deferred_hosts and batch.host in out.deferred_hosts:
                    pending[batch.host].clear()  # the host asked us to come back later
                submit_more()  # keep fetchers and extraction workers busy while this batch is written
                t = time.perf_counter()
                stats = writer.commit_batch(out.batch_id, out.pages, out.articles, out.removals, out.blocks)
                summary.timings["write"] += time.perf_counter() - t
                runtime.release_memory()  # the batch's bodies and rows are gone: keep RSS flat
                summary.timings["fetch"] += out.fetch_s
                summary.timings["clean_extract"] += out.extract_s
                summary.add_pages(out.source, out.pages)
                summary.per_source[out.source]["articles_written"] += stats.new_versions
                for rm in out.removals:
                    summary.boilerplate[rm.kind] += 1
                summary.deferred_hosts.update(out.deferred_hosts)
                progress.advance(len(batch.urls))

            summary.timings["batch_phase"] += time.perf_counter() - t_batches  # wall: fetch ‖ extract ‖ write
            progress.update(progress.done, force=True)  # the artifact is throttled: show the final state
            t = time.perf_counter()
            writer.consolidate()  # one file per table partition for tonight, not one per batch
            summary.timings["consolidate"] += time.perf_counter() - t
            summary.finished_at = datetime.now(timezone.utc)
            counts = summary.counts()
            writer.write_run(RunRecord(run_id=run_id, flow="ingest", started_at=summary.started_at,
                                       finished_at=summary.finished_at,
                                       parameters=json.dumps(parameters or {}, default=str),
                                       counts=json.dumps(counts)))
    finally:
        runtime.close(run_id)
    summary_artifacts(summary, "ingest", rows=_ingest_rows(counts),
                      extra={"pages/s": counts["pages_per_s"],
                             "hosts deferred to next run": counts["deferred_hosts"] or "none"})
    log.info("run %s finished: %s", run_id, json.dumps(counts))
    return counts
