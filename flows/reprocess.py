"""The ``reprocess`` flow: re-clean and re-extract archived responses with the *current* rules.

No network at all: every page is read back from the warehouse's raw WARC archive (``raw/``), located by
the ``pages`` table's ``warc_file``/``warc_offset`` (``Warehouse.archived_pages``: the latest ``ok``
article fetch per URL, filtered by fetch date, source and domain). Nothing is fetched, no HTTP client is
even created.

Shape of a run (like ``ingest``, on the same batch engine, ``flows.engine``): archived pages grouped per
host, cut into batches of ``extract.batch_size``; one ``reprocess-batch-<n>`` task per batch reads its
records and cleans/extracts them in the run's process pool (``flows.runtime.pool``; the flow process never
imports the extraction stack); the flow process is the single writer and commits each finished batch
(``commit_batch``), at most ``runner.max_workers`` batches in flight.

What lands in the warehouse:

* ``article_versions``: the new extraction of each article (``extractor_version`` on every row,
  ``run_id`` = the reprocess run, ``fetched_at`` = the original fetch). Versions are keyed by
  ``(article_id, content_hash, extractor_version)`` and the ``articles`` view shows the latest
  ``processed_at``. ``extractor_version`` includes a hash of the rule data, so after a rule change every
  re-extracted article gets a new version with a newer ``processed_at``, which becomes the visible row;
  with unchanged code and rules the keys already exist and nothing is written (``articles_unchanged``).
  Either way ``articles`` holds exactly one row per article. (Known limit, in the store's keying: rules
  changed A → B → back to A re-derive A's key, which already exists, so nothing is written and B's row
  stays visible until the rules or code change again.)
* ``boilerplate``: the removals of the new extraction, written when they differ from the stored ones
  (an extraction that removed nothing writes the store's "none" marker), so the ``boilerplate`` view
  reflects the new rules.
* ``blocks``: new block fingerprints (recurring-boilerplate learning).
* ``runs``: a row with flow ``reprocess``.
* No ``pages`` rows: ``pages`` is the fetch log and a reprocess makes no request. Consequently a retried
  reprocess does not skip committed batches by id; it re-extracts them and the store's version keys make
  the re-commit a no-op (nothing is written twice).

Pages whose archived record cannot be read (file removed, corrupt) or no longer yield an article are
counted (``outcomes``: ``missing_record``, ``no_article``, ``parse_error``) and logged, never fatal; their
previous article row stays.

Rules: the default rules (``config/rules``, ``config/sites``), or ``rules_dir``/``sites_dir`` given to the
flow (a copy of the rules being tried out).
"""

from __future__ import annotations

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
from newsmill.flows.engine import (BatchOutput, batch_run, current_run_id, default_task_runner, extract, in_worker,
                                   submit)
from newsmill.flows.reporting import FlowProgress, ReprocessInfo, summary_artifacts
from newsmill.flows.reporting import logger as _logger
from newsmill.flows.reporting import notify as _notify
from newsmill.tasks.config import Settings, load_run_settings, resolve_warehouse
from newsmill.tasks.dates import parse_date_bound
from newsmill.tasks.urls import domain_of

__all__ = ["reprocess", "run_reprocess", "FlowProgress", "load_run_settings"]


# ---------------------------------------------------------------------------------------------- helpers


# ---------------------------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class ReprocessBatch:
    batch_id: str
    source: str
    host: str
    index: int
    pages: tuple  # ArchivedPage, ...


def plan_reprocess_batches(run_id: str, pages: list, batch_size: int) -> list[ReprocessBatch]:
    """Group archived pages per (source, host) (same-host recurring learning inside a batch), cut into
    batches of ``batch_size``."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for p in pages:
        groups[(p.source or "", domain_of(p.final_url or p.url))].append(p)
    batches: list[ReprocessBatch] = []
    n = 0
    for (source, host), items in sorted(groups.items()):
        items.sort(key=lambda p: p.url)
        for i in range(0, len(items), batch_size):
            chunk = tuple(items[i:i + batch_size])
            digest = hashlib.sha256("\n".join([run_id, source, host, *[p.url for p in chunk]]).encode()
                                    ).hexdigest()[:16]
            batches.append(ReprocessBatch(batch_id=f"r{digest}", source=source, host=host, index=n,
                                          pages=chunk))
            n += 1
    return batches


def run_reprocess_batch(batch: ReprocessBatch, settings: Settings, run_id: str, warehouse_root: str,
                        history: dict[str, frozenset[str]], rules_dir: str | None = None,
                        sites_dir: str | None = None) -> BatchOutput:
    """Read one batch's archived records and clean/extract them. Plain function (the task wraps it)."""
    from newsmill.tasks.archive import read_record, record_page

    log = _logger()
    out = BatchOutput(batch_id=batch.batch_id, source=batch.source, host=batch.host)
    t0 = time.perf_counter()
    ok: list = []
    pages_in: list[tuple[str, str | bytes]] = []
    for p in batch.pages:
        try:
            rec = read_record(Path(warehouse_root), p.warc_file, p.warc_offset)
        except Exception as exc:  # a lost or corrupt archive record is data, not a crash
            out.outcomes["missing_record"] += 1
            log.warning("reprocess: cannot read %s from %s@%s: %s", p.url, p.warc_file, p.warc_offset, exc)
            continue
        ok.append(p)
        pages_in.append((p.final_url or p.url, record_page(rec)))
    t1 = time.perf_counter()
    rules = runtime.rules(run_id, rules_dir, sites_dir)
    for p, x in zip(ok, extract(run_id, settings, pages_in, rules, history)):
        out.outcomes[x.outcome if x.article is None else "ok"] += 1
        out.add_extraction(x, fetched_at=p.fetched_at, run_id=run_id, source=p.source)
    out.timings = {"read_archive": t1 - t0, "clean_extract": time.perf_counter() - t1}
    return out


@task(name="reprocess-batch", task_run_name="reprocess-batch-{batch.index}", cache_policy=NO_CACHE)
def reprocess_batch(batch: ReprocessBatch, settings: Settings, run_id: str, warehouse_root: str,
                    history: dict[str, frozenset[str]], rules_dir: str | None = None,
                    sites_dir: str | None = None) -> BatchOutput:
    out = run_reprocess_batch(batch, settings, run_id, warehouse_root, history, rules_dir, sites_dir)
    _logger().info("%s (%s): %d pages, %d articles, read %.2fs, extract %.2fs", batch.batch_id, batch.host,
                   len(batch.pages), len(out.articles), out.timings["read_archive"], out.timings["clean_extract"])
    return out


# ---------------------------------------------------------------------------------------------- flow


@flow(name="reprocess", task_runner=default_task_runner(), log_prints=True,
      description="Re-clean and re-extract archived raw responses with the current rules (no network).")
def reprocess(warehouse: str | None = None, since: str | None = None, until: str | None = None,
              source: str | None = None, domain: str | None = None, config: str | None = None,
              rules_dir: str | None = None, sites_dir: str | None = None) -> ReprocessInfo:
    """Reprocess archived pages.

    Args:
        warehouse: warehouse directory (default: $NEWSMILL_WAREHOUSE or data/).
        since: only pages fetched on/after this ISO date (or timestamp).
        until: only pages fetched up to this ISO date, inclusive (a timestamp: exclusive).
        source: only pages of this source name.
        domain: only pages of this domain (and its subdomains).
        config: TOML config for extract/runner settings (default: the defaults).
        rules_dir: boilerplate rules directory (default: config/rules).
        sites_dir: per-site rules directory (default: config/sites).
    """
    settings = load_run_settings(config)
    root = resolve_warehouse(warehouse)
    return run_reprocess(settings, root, since=parse_date_bound(since, name="since"),
                         until=parse_date_bound(until, end=True, name="until"), source=source,
                         domain=domain, rules_dir=rules_dir, sites_dir=sites_dir,
                         parameters={"warehouse": str(root), "since": since, "until": until, "source": source,
                                     "domain": domain, "config": config, "rules_dir": rules_dir,
                                     "sites_dir": sites_dir})


def run_reprocess(settings: Settings, root: Path, *, since: datetime | None = None, until: datetime | None = None,
                  source: str | None = None, domain: str | None = None, rules_dir: str | None = None,
                  sites_dir: str | None = None, parameters: dict | None = None,
                  run_id: str | None = None) -> ReprocessInfo:
    log = _logger()
    info = ReprocessInfo(run_id=run_id or current_run_id(), started_at=datetime.now(timezone.utc))
    run_id = info.run_id
    runtime.start_extraction_early(settings)  # imports in parallel with the planning
    # load the rules first: a broken rules directory fails before anything is written
    rules = runtime.rules(run_id, rules_dir, sites_dir)
    with batch_run(info, root, settings, parameters=parameters) as run:
        t = time.perf_counter()
        pages = run.warehouse.archived_pages(since=since, until=until, source=source, domain=domain)
        batches = plan_reprocess_batches(run_id, pages, settings.extract.batch_size)
        history = run.warehouse.recurring_blocks(sorted({b.host for b in batches}),
                                                 settings.extract.recurring_min_pages)
        info.timings["plan"] += time.perf_counter() - t
        # the version names the extraction stack: asked of a worker, so this process never imports it
        info.extractor_version = in_worker(run_id, settings, runtime.extractor_version, rules)
        for p in pages:
            info.source(p.source or "").archived += 1
        log.info("reprocess %s: %d archived pages in %d batches (extractor %s)", run_id, len(pages),
                 len(batches), info.extractor_version)
        _notify("discovered", total=len(pages))
        progress = FlowProgress(len(pages), key="reprocess-progress", description="archived pages re-extracted")
        run.run(batches, lambda b: submit(reprocess_batch, b, settings, run_id, str(root), history, rules_dir,
                                          sites_dir),
                on_commit=lambda b, _out: progress.advance(len(b.pages)))
        progress.update(len(pages), force=True)
    summary_artifacts(info)
    log.info("reprocess %s finished: %s", run_id, json.dumps(info.asdict()))
    return info
