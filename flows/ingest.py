"""The ``ingest`` flow: discover → fetch → clean+extract → store, batched.

Shape of a run (few tasks, each doing real work — a Prefect task costs milliseconds of bookkeeping):

* one ``discover-<source>`` task per source;
* URLs grouped per host and cut into batches of ``extract.batch_size``; one ``batch-<source>-<host>-<n>``
  task per batch fetches its pages (threads, polite per host) and cleans/extracts them in a process pool;
  at most ``runner.max_workers`` batches run at once and never two of one host (politeness), so one
  batch's fetching overlaps another's extraction;
* the flow process is the single writer: it commits each finished batch atomically to the warehouse.

The batches run on the shared batch engine (``flows.engine``); this module is the planner
(:func:`plan_batches`), the task (:func:`run_batch`) and the flow.

Resume: ``run_id`` is the Prefect flow-run id, which a retry keeps. Batches already committed under that
run id (``pages.batch_id``) are skipped, so retrying a crashed run does not fetch them again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from newsmill.flows import runtime
from newsmill.flows.engine import BatchOutput, batch_run, current_run_id, default_task_runner, extract, submit
from newsmill.flows.health import check_sources
from newsmill.flows.reporting import FlowProgress, IngestInfo, summary_artifacts
from newsmill.flows.reporting import logger as _logger
from newsmill.flows.reporting import notify as _notify
from newsmill.tasks.config import Settings, load_settings, resolve_warehouse  # noqa: F401 (re-exported)
from newsmill.tasks.errors import NewsmillError
from newsmill.tasks.records import DiscoveredURL
from newsmill.tasks.urls import domain_of

__all__ = ["ingest", "run_ingest", "plan_batches", "batch_bounds", "default_task_runner"]


# ---------------------------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class Batch:
    batch_id: str
    source: str
    host: str
    index: int
    urls: tuple[DiscoveredURL, ...]
    conditionals: tuple[tuple[str, str | None, str | None], ...] = ()  # (url, etag, last_modified)


RAMP_MIN_BATCH = 40  # batch sizes from which a host's first batch is a quarter batch
REVALIDATE_FACTOR = 4  # a batch of URLs fetched before (conditional requests) holds this × batch_size URLs
REVALIDATE_MAX_GAPS_S = 10.0  # ... when the politeness gaps of a batch_size batch to one host stay under this


def revalidate_batch_size(batch_size: int, per_host_delay_s: float) -> int:
    """URLs per revalidation batch: ``REVALIDATE_FACTOR × batch_size`` where requests to a host may follow
    each other quickly (a batch task and its commit cost ~50-70 ms, a 304 ~1 ms); ``batch_size`` where the
    per-host delay makes a batch last long anyway (the default 1 s: 100 s per batch), so progress and a
    retry's unit stay as fine as for new URLs."""
    if per_host_delay_s * batch_size <= REVALIDATE_MAX_GAPS_S:
        return batch_size * REVALIDATE_FACTOR
    return batch_size


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
                 conditional: dict[str, tuple[str | None, str | None]],
                 revalidate_size: int | None = None) -> list[Batch]:
    """Group by (source, host), sort, and cut into batches with ids stable for the same URL set: a host's
    new URLs first (:func:`batch_bounds`: they need extraction, the workers start on them), then the URLs
    with stored validators in batches of ``revalidate_size`` (default ``batch_size``; the flow passes
    :func:`revalidate_batch_size`: conditional requests mostly answer 304 and hold no body, and a batch
    task and a commit per 100 of them were most of a fast rerun; pages that did change are extracted
    ``batch_size`` at a time, :func:`run_batch`)."""
    groups: dict[tuple[str, str], list[DiscoveredURL]] = defaultdict(list)
    for u in urls:
        groups[(u.source, domain_of(u.url))].append(u)
    batches: list[Batch] = []
    step = revalidate_size or batch_size
    for (source, host), items in sorted(groups.items()):
        items.sort(key=lambda d: d.url)
        new = [d for d in items if d.url not in conditional]
        known = [d for d in items if d.url in conditional]
        chunks = [new[a:b] for a, b in batch_bounds(len(new), batch_size)]
        chunks += [known[i:i + step] for i in range(0, len(known), step)]
        for index, chunk in enumerate(chunks):
            chunk = tuple(chunk)
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
    logs = []  # every request's row, in the order the fetches finished
    extracted: dict[int, object] = {}  # index in logs -> its ExtractResult
    pending: list[tuple[int, object]] = []  # fetched pages not yet extracted: at most batch_size held
    rules = None  # (a batch of 304s loads no rules)
    t_extract = 0.0

    def extract_pending() -> None:
        nonlocal rules, t_extract
        t = time.perf_counter()
        if rules is None:
            rules = runtime.rules(run_id)
        pages_in = [(r.log.final_url or r.log.url, r.html) for _, r in pending]
        for (i, _), x in zip(pending, extract(run_id, settings, pages_in, rules, history)):
            extracted[i] = x
        pending.clear()
        t_extract += time.perf_counter() - t

    for r in fetcher.fetch_many(requests):
        if r.ok:
            pending.append((len(logs), r))
        logs.append(r.log)
        if len(pending) >= settings.extract.batch_size:  # a revalidation batch of pages that all changed
            extract_pending()
    robots_rows = fetcher.drain_log()  # robots.txt fetches made on the way (rows of their own)
    if pending:
        extract_pending()
    elapsed = time.perf_counter() - t0

    out = BatchOutput(batch_id=batch.batch_id, source=batch.source, host=batch.host,
                      timings={"fetch": elapsed - t_extract, "clean_extract": t_extract},
                      deferred_hosts=tuple(fetcher.deferred_hosts))
    for i, log in enumerate(logs):
        log = dataclasses.replace(log, run_id=run_id, source=batch.source)
        x = extracted.get(i)
        if x is not None:
            if x.article is None:
                log = dataclasses.replace(log, outcome=x.outcome, error=x.error)
            out.add_extraction(x, fetched_at=log.fetched_at, run_id=run_id, source=batch.source)
        out.pages.append(log)
    out.pages.extend(dataclasses.replace(r, run_id=run_id, source=r.source or batch.source) for r in robots_rows)
    return out


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
                   len(out.pages), len(out.articles), out.timings["fetch"], out.timings["clean_extract"])
    return out


# ---------------------------------------------------------------------------------------------- flow


@flow(name="ingest", task_runner=default_task_runner(), log_prints=True,
      description="Discover, fetch, clean, extract and store the configured news sources.")
def ingest(config: str | None = None, warehouse: str | None = None, sources: list[str] | None = None,
           limit: int | None = None, refetch: bool = False) -> IngestInfo:
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
               parameters: dict | None = None, run_id: str | None = None) -> IngestInfo:
    log = _logger()
    if not settings.sources:
        raise NewsmillError(f"no sources configured in {settings.config_path}")
    info = IngestInfo(run_id=run_id or current_run_id(), started_at=datetime.now(timezone.utc))
    run_id = info.run_id
    runtime.start_extraction_early(settings, root, refetch)  # imports in parallel with discovery
    with batch_run(info, root, settings, parameters=parameters, consolidate=True) as run:
        wh = run.warehouse
        done = wh.done_batches(run_id)
        if done:
            log.info("resuming run %s: %d batches already stored", run_id, len(done))

        # 1. discover (one task per source; the discovery fetches are a batch of their own per source)
        t = time.perf_counter()
        futures = [submit(discover_task, s.name, settings, run_id, str(root)) for s in settings.sources]
        urls: list[DiscoveredURL] = []
        for s, fut in zip(settings.sources, futures):
            res = fut.result()
            pages = [dataclasses.replace(p, source=s.name) for p in res.log]
            if f"discover-{s.name}" not in done:
                run.writer.commit_batch(f"discover-{s.name}", pages, [], [], [])
            info.add_pages(s.name, pages)
            info.source(s.name).discovered += len(res.urls)
            info.source(s.name).skipped.update(res.skipped)
            urls.extend(res.urls)
        if limit is not None:
            urls = urls[:limit]
        info.timings["discover"] += time.perf_counter() - t
        _notify("discovered", total=len(urls))

        # 2. plan batches (incremental: conditional requests from the stored fetch state)
        t = time.perf_counter()
        # (this run's own rows left out: a retry plans the batches, and batch ids, of its first attempt)
        conditional = {} if refetch else wh.conditional_state([u.url for u in urls], exclude_run=run_id)
        batches = plan_batches(run_id, urls, settings.extract.batch_size, conditional,
                               revalidate_batch_size(settings.extract.batch_size, settings.fetch.per_host_delay_s))
        todo = [b for b in batches if b.batch_id not in done]
        history = wh.recurring_blocks(sorted({b.host for b in todo}), settings.extract.recurring_min_pages)
        run.writer.preload_keys({b.host for b in todo})
        info.timings["plan"] += time.perf_counter() - t
        if settings.runner.task_runner == "threads" and any(len(b.conditionals) < len(b.urls) for b in todo):
            # new URLs to extract: start the workers now, while the first batches are fetched
            # (a run of only conditional requests may get all 304s and never need them)
            runtime.warm_pool(run_id, settings.extract.workers)
        log.info("%d URLs in %d batches (%d already stored)", len(urls), len(batches), len(batches) - len(todo))

        # 3. fetch + extract (tasks) and 4. store (this process), never two batches of one host at once
        progress = FlowProgress(sum(len(b.urls) for b in todo), key="ingest-progress",
                                description="pages fetched and extracted")
        run.run(batches, lambda b: submit(process_batch, b, settings, run_id, str(root), history),
                one_per_host=True, done=done, on_commit=lambda b, _out: progress.advance(len(b.urls)))
        progress.update(progress.done, force=True)  # the artifact is throttled: show the final state

        # 5. is tonight normal for each source? (source_health rows, log lines, events, artifact)
        discovered = {s.name: 0 for s in settings.sources} | {n: si.discovered for n, si in info.sources.items()}
        info.health = check_sources(run.writer, run_id, info.started_at, discovered, settings)
    summary_artifacts(info)
    log.info("run %s finished: %s", run_id, json.dumps(info.asdict()))
    return info
