"""The ``reprocess`` flow: re-clean and re-extract archived responses with the *current* rules.

No network at all: every page is read back from the warehouse's raw WARC archive (``raw/``), located by
the ``pages`` table's ``warc_file``/``warc_offset`` (``Warehouse.archived_pages``: the latest ``ok``
article fetch per URL, filtered by fetch date, source and domain). Nothing is fetched, no HTTP client is
even created.

Shape of a run (like ``ingest``): archived pages grouped per host, cut into batches of
``extract.batch_size``; one ``reprocess-batch-<n>`` task per batch reads its records and cleans/extracts
them in the run's process pool (``flows.runtime.pool``); the flow process is the single writer and commits
each finished batch (``commit_batch``), at most ``runner.max_workers`` batches in flight.

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
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from newsmill.flows import runtime
from newsmill.flows.ingest import BatchOutput, _current_run_id, resolve_warehouse
from newsmill.flows.reporting import FlowProgress, RunSummary, summary_artifacts
from newsmill.flows.reporting import logger as _logger
from newsmill.flows.reporting import notify as _notify
from newsmill.tasks.config import Settings, load_settings
from newsmill.tasks.errors import ConfigError, NewsmillError
from newsmill.tasks.records import Article, Removal, RunRecord
from newsmill.tasks.urls import domain_of

__all__ = ["reprocess", "run_reprocess", "parse_date_bound", "FlowProgress", "load_run_settings"]


# ---------------------------------------------------------------------------------------------- helpers


def parse_date_bound(value: str | date | datetime | None, *, end: bool = False,
                     name: str = "date") -> datetime | None:
    """``--since``/``--until`` → an aware UTC datetime. A bare date means the whole day: ``since`` is its
    midnight, ``until`` the next midnight (``--until 2024-05-31`` includes May 31). A full timestamp is
    used as given (naive = UTC); ``until`` is exclusive."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, dtime.min) + (timedelta(days=1) if end else timedelta(0))
    else:
        text = str(value).strip()
        try:
            if len(text) == 10:
                d = date.fromisoformat(text)
                dt = datetime.combine(d, dtime.min) + (timedelta(days=1) if end else timedelta(0))
            else:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{name}: expected an ISO date (YYYY-MM-DD) or timestamp, got {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def load_run_settings(config: str | None) -> Settings:
    """Settings for a run that needs no sources: ``config`` when given, else the defaults plus the
    nightly source file when it loads, else the bare defaults."""
    if config:
        return load_settings(config)
    try:
        return load_settings()
    except NewsmillError:
        from newsmill.tasks.config import DEFAULTS_FILE, _read_toml, settings_from_dict

        return settings_from_dict(_read_toml(DEFAULTS_FILE), origin=str(DEFAULTS_FILE))


_rules_lock = threading.Lock()
_rules_cache: dict[tuple[str, str | None, str | None], object] = {}


def run_rules(run_id: str, rules_dir: str | None, sites_dir: str | None):
    """The run's rules in this process: the shared ``runtime.rules`` for the defaults, else loaded once per
    (run, rules_dir, sites_dir)."""
    if not rules_dir and not sites_dir:
        return runtime.rules(run_id)
    from newsmill.tasks.clean import load_rules

    key = (run_id, rules_dir, sites_dir)
    with _rules_lock:
        r = _rules_cache.get(key)
        if r is None:
            kwargs = {}
            if rules_dir:
                kwargs["rules_dir"] = Path(rules_dir)
            if sites_dir:
                kwargs["sites_dir"] = Path(sites_dir)
            r = load_rules(**kwargs)
            _rules_cache[key] = r
        return r


def drop_run_rules(run_id: str) -> None:
    with _rules_lock:
        for k in [k for k in _rules_cache if k[0] == run_id]:
            _rules_cache.pop(k, None)


def extract_pages(pages_in: list[tuple[str, str]], *, rules, settings: Settings, run_id: str,
                  history: dict[str, frozenset[str]]) -> list:
    """``tasks.extract.extract_batch`` in the run's process pool (or inline where no pool is allowed)."""
    from newsmill.tasks.extract import extract_batch

    if not pages_in:
        return []
    hist = {h: history.get(h, frozenset()) for h in {domain_of(u) for u, _ in pages_in}}
    pool = runtime.pool(run_id, settings.extract.workers)
    if pool is not None:
        return pool.submit(extract_batch, pages_in, rules=rules, settings=settings.extract,
                           history=hist).result()
    return extract_batch(pages_in, rules=rules, settings=settings.extract, history=hist)


# ---------------------------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class ReprocessBatch:
    batch_id: str
    source: str
    host: str
    index: int
    pages: tuple  # ArchivedPage, ...


@dataclass
class ReprocessOutput(BatchOutput):
    outcomes: Counter = field(default_factory=Counter)
    read_s: float = 0.0


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
                        sites_dir: str | None = None) -> ReprocessOutput:
    """Read one batch's archived records and clean/extract them. Plain function (the task wraps it)."""
    from newsmill.tasks.archive import decode_record, read_record

    log = _logger()
    outcomes: Counter = Counter()
    t0 = time.perf_counter()
    ok: list = []
    pages_in: list[tuple[str, str]] = []
    for p in batch.pages:
        try:
            rec = read_record(Path(warehouse_root), p.warc_file, p.warc_offset)
        except Exception as exc:  # a lost or corrupt archive record is data, not a crash
            outcomes["missing_record"] += 1
            log.warning("reprocess: cannot read %s from %s@%s: %s", p.url, p.warc_file, p.warc_offset, exc)
            continue
        html, _enc = decode_record(rec)
        ok.append(p)
        pages_in.append((p.final_url or p.url, html))
    t1 = time.perf_counter()
    rules = run_rules(run_id, rules_dir, sites_dir)
    extracted = extract_pages(pages_in, rules=rules, settings=settings, run_id=run_id, history=history)
    t2 = time.perf_counter()

    articles: list[Article] = []
    removals: list[Removal] = []
    blocks: list[tuple[str, str, str, str]] = []
    for p, x in zip(ok, extracted):
        outcomes[x.outcome if x.article is None else "ok"] += 1
        if x.article is not None:
            a = x.article.with_context(fetched_at=p.fetched_at, run_id=run_id, source=p.source)
            articles.append(a)
            blocks.extend((a.domain, h, a.article_id, a.content_hash) for h in x.block_hashes)
        removals.extend(_with_run(rm, run_id) for rm in x.removals)
    return ReprocessOutput(batch_id=batch.batch_id, source=batch.source, host=batch.host, pages=[],
                           articles=articles, removals=removals, blocks=blocks, fetch_s=0.0,
                           extract_s=t2 - t1, outcomes=outcomes, read_s=t1 - t0)


def _with_run(rm: Removal, run_id: str) -> Removal:
    import dataclasses

    return dataclasses.replace(rm, run_id=run_id)


@task(name="reprocess-batch", task_run_name="reprocess-batch-{batch.index}", cache_policy=NO_CACHE)
def reprocess_batch(batch: ReprocessBatch, settings: Settings, run_id: str, warehouse_root: str,
                    history: dict[str, frozenset[str]], rules_dir: str | None = None,
                    sites_dir: str | None = None) -> ReprocessOutput:
    out = run_reprocess_batch(batch, settings, run_id, warehouse_root, history, rules_dir, sites_dir)
    _logger().info("%s (%s): %d pages, %d articles, read %.2fs, extract %.2fs", batch.batch_id, batch.host,
                   len(batch.pages), len(out.articles), out.read_s, out.extract_s)
    return out


# ---------------------------------------------------------------------------------------------- flow


@flow(name="reprocess", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=True,
      description="Re-clean and re-extract archived raw responses with the current rules (no network).")
def reprocess(warehouse: str | None = None, since: str | None = None, until: str | None = None,
              source: str | None = None, domain: str | None = None, config: str | None = None,
              rules_dir: str | None = None, sites_dir: str | None = None) -> dict:
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
                  run_id: str | None = None) -> dict:
    from newsmill.tasks.extract import extractor_version
    from newsmill.warehouse.store import Warehouse

    log = _logger()
    run_id = run_id or _current_run_id()
    wh = Warehouse(root)
    summary = RunSummary(run_id=run_id, started_at=datetime.now(timezone.utc))
    outcomes: Counter = Counter()
    try:
        # load the rules first: a broken rules directory fails before anything is written
        version = extractor_version(run_rules(run_id, rules_dir, sites_dir))
        with wh.writer(run_id) as writer:
            writer.write_run(RunRecord(run_id=run_id, flow="reprocess", started_at=summary.started_at,
                                       finished_at=None, parameters=json.dumps(parameters or {}, default=str),
                                       counts="{}"))
            t = time.perf_counter()
            pages = wh.archived_pages(since=since, until=until, source=source, domain=domain)
            batches = plan_reprocess_batches(run_id, pages, settings.extract.batch_size)
            history = wh.recurring_blocks(sorted({b.host for b in batches}), settings.extract.recurring_min_pages)
            summary.timings["plan"] += time.perf_counter() - t
            for p in pages:
                summary.per_source[p.source or ""]["archived"] += 1
            log.info("reprocess %s: %d archived pages in %d batches (extractor %s)", run_id, len(pages),
                     len(batches), version)
            _notify("discovered", total=len(pages))
            progress = FlowProgress(len(pages), key="reprocess-progress",
                                    description="archived pages re-extracted")

            pending = list(batches)
            in_flight: dict = {}
            max_in_flight = max(1, settings.runner.max_workers)

            def submit_more():
                while pending and len(in_flight) < max_in_flight:
                    b = pending.pop(0)
                    fut = reprocess_batch.submit(b, settings, run_id, str(root), history, rules_dir, sites_dir)
                    in_flight[fut] = b

            submit_more()
            while in_flight:
                fut = next(as_completed(list(in_flight)))
                batch = in_flight.pop(fut)
                out: ReprocessOutput = fut.result()
                t = time.perf_counter()
                stats = writer.commit_batch(out.batch_id, [], out.articles, out.removals, out.blocks)
                summary.timings["write"] += time.perf_counter() - t
                summary.timings["read_archive"] += out.read_s
                summary.timings["clean_extract"] += out.extract_s
                outcomes.update(out.outcomes)
                summary.outcomes.update(out.outcomes)
                c = summary.per_source[batch.source]
                c["reprocessed"] += len(batch.pages)
                c["articles_written"] += stats.new_versions
                c["articles_unchanged"] += stats.duplicate_versions
                for outcome, n in out.outcomes.items():
                    if outcome != "ok":
                        c[f"failed:{outcome}"] += n
                for rm in out.removals:
                    summary.boilerplate[rm.kind] += 1
                progress.advance(len(batch.pages))
                submit_more()
            progress.update(len(pages), force=True)

            summary.finished_at = datetime.now(timezone.utc)
            counts = _counts(summary, outcomes, len(pages), version)
            writer.write_run(RunRecord(run_id=run_id, flow="reprocess", started_at=summary.started_at,
                                       finished_at=summary.finished_at,
                                       parameters=json.dumps(parameters or {}, default=str),
                                       counts=json.dumps(counts)))
    finally:
        runtime.close(run_id)
        drop_run_rules(run_id)
    summary_artifacts(summary, "reprocess", {"extractor_version": version,
                                             "pages_reprocessed": counts["pages_reprocessed"]})
    log.info("reprocess %s finished: %s", run_id, json.dumps(counts))
    return counts


def _counts(summary: RunSummary, outcomes: Counter, n_pages: int, version: str) -> dict:
    counts = summary.counts()
    counts.pop("pages_fetched", None)
    counts.pop("deferred_hosts", None)
    counts.pop("batches_skipped_resume", None)
    wall = counts["wall_s"]
    counts["pages_reprocessed"] = n_pages
    counts["pages_per_s"] = round(n_pages / wall, 2) if wall > 0 else None
    counts["articles_unchanged"] = sum(c["articles_unchanged"] for c in summary.per_source.values())
    counts["extractor_version"] = version
    counts["network_requests"] = 0
    return counts
