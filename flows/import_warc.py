"""The ``import_warc`` flow: load ``.warc`` / ``.warc.gz`` files (e.g. CC-NEWS) into the warehouse.

Records go through the same clean → extract → store stages as fetched pages, with no network.

Streaming, flat memory: each file is read once, record by record (warcio); only the records of the
batches being built or in flight are in memory: per-host buffers capped at ``2 × extract.batch_size``
records in total, plus at most ``runner.max_workers`` batches in flight and the one being committed (the
batch engine, ``flows.engine``, asks the reader for the next batch only when a slot frees), whatever the
size of the file. This module is the reader and planner (:class:`WarcScanner`, :class:`ImportPlanner`),
the batch task and the flow.

Which records:

* ``response`` records with a 2xx status and an HTML Content-Type become pages; WARC ``request``,
  ``revisit``, ``warcinfo``, ``metadata``… records are counted (``records.skipped:<type>``) and passed over;
* ``--domain`` (a host and its subdomains; repeatable) and ``--since``/``--until`` (``WARC-Date``; a bare
  ``--until`` date is inclusive) filter response records; filtered records are counted, nothing else;
* a response that is not HTML, truncated (``WARC-Truncated``, a payload shorter than its Content-Length, a
  cut gzip member or a torn end of file), too large or not 2xx is *not* fatal: it becomes a ``pages`` row
  (kind ``article``, url = ``WARC-Target-URI``, outcome ``not_html`` / ``truncated`` / ``too_large`` /
  ``http_error``) and is counted and logged; a torn end of file is also counted as ``truncated_file``;
* a record that cannot be named (no ``WARC-Target-URI``, a broken WARC header, corrupt gzip data) is skipped,
  counted (``records.skipped:unreadable:<why>``) and logged, and reading goes on with the next record.

Where imported pages point (decision): the records are **copied into the warehouse's own raw archive**
(``raw/date=…/<run_id>-….warc.gz``, one gzip member per record, via ``tasks.archive.WarcArchive``) and the
``pages`` row's ``warc_file``/``warc_offset``/``warc_length`` point at the copy. So ``newsmill reprocess``
works on imported pages exactly as on fetched ones, and the warehouse stays self-contained when the
source file is moved or deleted. A record that has a gzip member of its own in the source (the usual
``.warc.gz``) is copied **verbatim**: its member, byte for byte (same record id, headers, digests; reading
it again decodes it as the import did) — no decoding, digesting or compressing again, which cost ~9 % of
an import's CPU. Otherwise (an uncompressed ``.warc``, a member holding several records) a new record is
written with the body's Content-Encoding already removed; its HTTP headers say so (``Content-Encoding``
dropped and kept as ``X-Newsmill-Original-Content-Encoding``, ``Content-Length`` set to the stored body). ``pages.attempts`` is 0 (no request was made),
``pages.fetched_at`` is the record's ``WARC-Date`` and ``pages.source`` the ``--source`` name.

Batches and resume: a batch's id is derived from the file's identity (size + hash of its first and last
64 KiB, so a moved or renamed file is the same file) and the byte offsets of its records:
``w<file>-<first offset>-<hash of offsets>``. Before reading a file, the ids of batches of that file
already in ``pages`` (from any run) are loaded, and those batches are skipped (not extracted, not stored
again). So a retried import resumes where it stopped, and importing the same file again with the same
filters adds nothing (the summary shows the skipped batches). Importing it again with *different* filters
only imports the batches whose records differ; articles are never duplicated anyway (the warehouse keys
article versions by ``(article_id, content_hash, extractor_version)``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from newsmill.flows import runtime
from newsmill.flows.engine import BatchOutput, batch_run, current_run_id, default_task_runner, extract, submit
from newsmill.flows.reporting import FlowProgress, ImportInfo, summary_artifacts
from newsmill.flows.reporting import logger as _logger
from newsmill.flows.reporting import notify as _notify
from newsmill.flows.reprocess import load_run_settings
from newsmill.tasks.config import Settings, resolve_warehouse
from newsmill.tasks.dates import parse_date_bound, parse_datetime
from newsmill.tasks.errors import NewsmillError
from newsmill.tasks.records import PageLogEntry
from newsmill.tasks.urls import domain_of, in_domains
from newsmill.warehouse.catalog import connect

__all__ = ["import_warc", "run_import", "WarcScanner", "WarcEntry", "file_identity"]

# Skipped.reason (tasks.archive) -> pages.outcome
OUTCOME_OF_REASON = {"not_html": "not_html", "truncated": "truncated", "too_large": "too_large",
                     "http_status": "http_error", "parse_error": "parse_error"}
_DROP_ON_COPY = {"content-encoding", "content-length", "transfer-encoding"}


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class WarcEntry:
    """One response record of an input file: the ``RawRecord`` (HTML, 2xx) or why it was skipped."""

    offset: int
    url: str | None
    warc_date: datetime | None
    record: object | None  # tasks.archive.RawRecord
    reason: str | None = None  # tasks.archive.Skipped.reason
    status: int | None = None
    content_type: str | None = None
    error: str | None = None
    member: bytes | None = None  # the record's gzip member as in the file (copied verbatim), when it has one


def file_identity(path: str | os.PathLike) -> str:
    """A content-derived id of a file (size + first and last 64 KiB): stable across moves/renames."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(p, "rb") as fh:
        h.update(fh.read(65536))
        if size > 65536:
            fh.seek(max(65536, size - 65536))
            h.update(fh.read(65536))
    return h.hexdigest()[:16]


class WarcScanner:
    """Iterate one WARC file's response records as ``WarcEntry`` with their byte offsets.

    ``tasks.archive.iter_warc_records`` yields neither offsets nor the WARC-Date of skipped records, both
    needed here (batch ids, ``pages.fetched_at``), so this walks the file with ``tasks.archive.WarcReader``
    and uses the archive module's record conversion for the HTML/truncation/size rules and the body
    decoding. A record that cannot be used is skipped and counted, and reading goes on: with no URL to
    name it (no ``WARC-Target-URI``, an unreadable header, corrupt gzip data) it is counted as
    ``skipped:unreadable:<why>`` and logged; with a URL it is an entry (reason ``parse_error``, or ``truncated``
    for a cut or corrupt gzip member). A torn end of file (the file ends inside a record) is also counted
    as ``truncated_file``. ``stats`` counts every record; ``position`` is the byte position reached."""

    def __init__(self, path: str | os.PathLike, domains=None, since: datetime | None = None,
                 until: datetime | None = None, max_bytes: int | None = None):
        self.path = Path(path)
        self.domains = {d.lower().strip().removeprefix("www.") for d in domains} if domains else None
        self.since, self.until = since, until
        self.max_bytes = max_bytes
        self.stats: Counter = Counter()
        self.position = 0
        self.size = self.path.stat().st_size

    def __iter__(self) -> Iterator[WarcEntry]:
        from newsmill.tasks import archive

        cap = self.max_bytes or archive.DEFAULT_MAX_RECORD_BYTES
        with open(self.path, "rb") as fh:
            reader = archive.WarcReader(fh)
            for item in reader:
                self.position = reader.position
                self.stats["records"] += 1
                if item.kind == "torn":
                    self.stats["truncated_file"] += 1
                if item.record is None:
                    if item.url and item.rec_type in (None, "response"):
                        if not in_domains(item.url, self.domains):
                            self.stats["filtered:domain"] += 1
                            continue
                        reason = "truncated" if item.kind in ("torn", "corrupt_gzip") else "parse_error"
                        self.stats[f"response:{reason}"] += 1
                        yield WarcEntry(offset=item.offset, url=item.url, warc_date=None, record=None,
                                        reason=reason, error=item.problem)
                    elif not item.url:
                        self.stats[f"skipped:unreadable:{item.kind}"] += 1
                        _logger().warning("%s: record skipped: %s", self.path, item.problem)
                    else:
                        self.stats[f"skipped:{item.rec_type}"] += 1
                    continue
                record = item.record
                offset, url = item.offset, item.url
                rtype = record.rec_type
                if rtype != "response":
                    self.stats[f"skipped:{rtype}"] += 1
                    continue
                if not in_domains(url, self.domains):
                    self.stats["filtered:domain"] += 1
                    continue
                when = parse_datetime(record.rec_headers.get_header("WARC-Date"))
                if when is not None and ((self.since and when < self.since) or (self.until and when >= self.until)):
                    self.stats["filtered:date"] += 1
                    continue
                status = ctype = None
                if record.http_headers is not None:
                    ctype = record.http_headers.get_header("content-type")
                    try:
                        status = int(record.http_headers.get_statuscode())
                    except (TypeError, ValueError):
                        status = None
                res = archive.to_raw(record, cap)
                verdict = reader.finish()
                self.position = reader.position
                if verdict:
                    if verdict == "torn":
                        self.stats["truncated_file"] += 1
                    res = archive.Skipped(url, "truncated", f"offset {offset}: record {verdict}")
                if isinstance(res, archive.Skipped):
                    self.stats[f"response:{res.reason}"] += 1
                    yield WarcEntry(offset=offset, url=url, warc_date=when, record=None, reason=res.reason,
                                    status=status, content_type=ctype, error=res.detail or None)
                else:
                    self.stats["response:html"] += 1
                    span = reader.member_span()
                    member = os.pread(fh.fileno(), span[1], span[0]) if span else None
                    if member is not None and len(member) != span[1]:
                        member = None
                    yield WarcEntry(offset=offset, url=url, warc_date=when, record=res, status=status,
                                    content_type=ctype, member=member)
        self.position = self.size


# ---------------------------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class ImportBatch:
    batch_id: str
    file: str
    host: str
    index: int
    entries: tuple[WarcEntry, ...]


def batch_id_for(file_id: str, entries) -> str:
    offsets = [e.offset for e in entries]
    digest = hashlib.sha256(",".join(map(str, offsets)).encode()).hexdigest()[:12]
    return f"w{file_id}-{offsets[0]:012d}-{digest}"


class HostBatcher:
    """Cut a stream of entries into batches of about ``size``, grouped by host where the stream allows
    (same-host recurring-boilerplate learning inside a batch) while holding at most ``cap`` entries.

    A host's buffer is emitted when it reaches ``size``. When the buffers hold more than ``cap`` entries
    (a stream interleaving many hosts, like CC-NEWS), one batch is made of whole host buffers, largest
    first, until it has ``size`` entries: batches stay full and hosts stay together. Deterministic for a
    given stream (batch ids depend on it)."""

    def __init__(self, size: int, cap: int | None = None):
        self.size = max(1, size)
        self.cap = max(self.size, cap or 2 * self.size)
        self.buffers: dict[str, list] = {}
        self.held = 0

    def add(self, entry: WarcEntry) -> list[tuple[str, list]]:
        host = domain_of(entry.url or "") if entry.url else ""
        buf = self.buffers.setdefault(host, [])
        buf.append(entry)
        self.held += 1
        out = []
        if len(buf) >= self.size:
            out.append((host, self.buffers.pop(host)))
            self.held -= len(buf)
        while self.held > self.cap:
            out.append(self._mixed())
        return out

    def _mixed(self) -> tuple[str, list]:
        batch: list = []
        hosts = []
        for h in sorted(self.buffers, key=lambda k: (-len(self.buffers[k]), k)):
            if batch and len(batch) + len(self.buffers[h]) > self.size:
                continue
            batch.extend(self.buffers.pop(h))
            hosts.append(h)
            if len(batch) >= self.size:
                break
        self.held -= len(batch)
        return (hosts[0] if len(hosts) == 1 else f"{hosts[0]}+{len(hosts) - 1}", batch)

    def flush(self) -> list[tuple[str, list]]:
        out = []
        while self.buffers:
            out.append(self._mixed())
        return out


def _copy_headers(headers) -> list[tuple[str, str]]:
    out = []
    for k, v in headers:
        lk = k.lower()
        if lk == "content-encoding":
            out.append(("X-Newsmill-Original-Content-Encoding", v))
        elif lk not in _DROP_ON_COPY:
            out.append((k, v))
    return out


def _header(headers, name: str) -> str | None:
    for k, v in headers or ():
        if k.lower() == name:
            return v
    return None


def run_import_batch(batch: ImportBatch, settings: Settings, run_id: str, warehouse_root: str,
                     history: dict[str, frozenset[str]], source: str) -> BatchOutput:
    """Archive, clean and extract one batch of records. Plain function (the task wraps it)."""
    from newsmill.tasks.archive import record_page

    now = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    arch = runtime.archive(run_id, warehouse_root)
    base: list[PageLogEntry] = []
    ok_idx: list[int] = []
    pages_in: list[tuple[str, str | bytes]] = []
    for e in batch.entries:
        fetched = e.warc_date or now
        if e.record is None:
            if not e.url:  # a torn end of file: no record to name (counted in records.truncated_file)
                _logger().warning("%s: unreadable from offset %d on (%s); rest of the file skipped",
                                  batch.file, e.offset, e.error)
                continue
            outcome = OUTCOME_OF_REASON.get(e.reason or "", "parse_error")
            error = f"WARC record skipped: {e.reason}" + (f" (status {e.status})" if e.reason == "http_status" else "")
            base.append(PageLogEntry(url=e.url, final_url=e.url, kind="article", status=e.status, outcome=outcome,
                                     error=error, bytes=0, content_type=e.content_type, fetched_at=fetched,
                                     elapsed_ms=0, run_id=run_id, source=source, attempts=0))
            continue
        rec = e.record
        warc = (None, None, None)
        error = None
        try:
            if e.member is not None:  # the record's own gzip member, byte for byte
                warc = arch.append_member(e.member, fetched)
            else:  # an uncompressed file, or a member holding more than this record: a new record
                warc = arch.write_response(rec.url, rec.status, _copy_headers(rec.headers), rec.body, fetched)
        except OSError as exc:  # the page is fine; the archive copy is lost and the row says so
            error = f"WARC write failed: {exc}"
        base.append(PageLogEntry(url=rec.url, final_url=rec.url, kind="article", status=rec.status, outcome="ok",
                                 error=error, bytes=len(rec.body), content_type=rec.content_type,
                                 fetched_at=fetched, elapsed_ms=0, run_id=run_id, source=source, attempts=0,
                                 etag=_header(rec.headers, "etag"),
                                 last_modified=_header(rec.headers, "last-modified"),
                                 warc_file=warc[0], warc_offset=warc[1], warc_length=warc[2]))
        ok_idx.append(len(base) - 1)
        pages_in.append((rec.url, record_page(rec)))
    t1 = time.perf_counter()
    rules = runtime.rules(run_id) if pages_in else None
    out = BatchOutput(batch_id=batch.batch_id, source=source, host=batch.host, pages=base)
    for i, x in zip(ok_idx, extract(run_id, settings, pages_in, rules, history)):
        if x.article is None:
            base[i] = dataclasses.replace(base[i], outcome=x.outcome, error=x.error)
        out.add_extraction(x, fetched_at=base[i].fetched_at, run_id=run_id, source=source)
    out.timings = {"archive_copy": t1 - t0, "clean_extract": time.perf_counter() - t1}
    return out


@task(name="import-batch", task_run_name="import-batch-{batch.index}", cache_policy=NO_CACHE)
def import_batch(batch: ImportBatch, settings: Settings, run_id: str, warehouse_root: str,
                 history: dict[str, frozenset[str]], source: str) -> BatchOutput:
    out = run_import_batch(batch, settings, run_id, warehouse_root, history, source)
    log = _logger()
    bad = Counter(p.outcome for p in out.pages if p.outcome != "ok")
    log.info("%s (%s): %d records, %d articles%s, archive %.2fs, extract %.2fs", batch.batch_id,
             batch.host or "-", len(out.pages), len(out.articles),
             (", skipped " + json.dumps(dict(bad))) if bad else "", out.timings["archive_copy"],
             out.timings["clean_extract"])
    for p in out.pages:
        if p.outcome not in ("ok", "no_article"):
            log.warning("%s: %s (%s)", p.url, p.outcome, p.error)
    return out


def _done_batches_of_file(root: Path, file_id: str) -> set[str]:
    """Ids of this file's batches already stored, by any run."""
    with contextlib.closing(connect(root, tables=("pages",))) as con:
        rows = con.execute("SELECT DISTINCT batch_id FROM pages WHERE starts_with(batch_id, ?)",
                           [f"w{file_id}-"]).fetchall()
    return {r[0] for r in rows}


def _known_recurring(wh, min_pages: int) -> dict[str, frozenset[str]]:
    """Recurring block hashes of every domain with stored blocks (read once per run: the hosts of a
    streamed file are not known in advance; only recurring hashes are held, not all blocks)."""
    with contextlib.closing(connect(wh.root, tables=("blocks",))) as con:
        domains = [r[0] for r in con.execute("SELECT DISTINCT domain FROM blocks WHERE domain IS NOT NULL")
                   .fetchall()]
    if not domains:
        return {}
    return {d: h for d, h in wh.recurring_blocks(domains, min_pages).items() if h}


# ---------------------------------------------------------------------------------------------- flow


@flow(name="import_warc", task_runner=default_task_runner(), log_prints=True,
      description="Import .warc/.warc.gz files (e.g. CC-NEWS): clean, extract and store their HTML responses.")
def import_warc(files: list[str], warehouse: str | None = None, domains: list[str] | None = None,
                since: str | None = None, until: str | None = None, source: str = "warc-import",
                config: str | None = None) -> ImportInfo:
    """Import WARC files.

    Args:
        files: paths of .warc / .warc.gz files (absolute, or relative to the flow's working directory).
        warehouse: warehouse directory (default: $NEWSMILL_WAREHOUSE or data/).
        domains: only records of these hosts (and their subdomains).
        since: only records with WARC-Date on/after this ISO date (or timestamp).
        until: only records with WARC-Date up to this ISO date, inclusive (a timestamp: exclusive).
        source: the source name recorded on the pages and articles.
        config: TOML config for extract/runner settings (default: the defaults).
    """
    settings = load_run_settings(config)
    root = resolve_warehouse(warehouse)
    return run_import(settings, root, files, domains=domains, since=parse_date_bound(since, name="since"),
                      until=parse_date_bound(until, end=True, name="until"), source=source,
                      parameters={"files": [str(Path(f).resolve()) for f in files], "warehouse": str(root),
                                  "domains": domains, "since": since, "until": until, "source": source,
                                  "config": config})


class ImportPlanner:
    """The import's planner: reads the files once, record by record, and cuts their entries into batches
    (:class:`HostBatcher`), lazily (the engine asks for the next batch when a slot is free). Opening a
    file, it adds the ids of that file's batches already stored (by any run) to ``done``: the engine
    skips them (resume). ``position``: bytes read over all files; ``records``: every record counted."""

    def __init__(self, paths: list[Path], root: Path, settings: Settings, done: set[str], *,
                 domains: list[str] | None, since: datetime | None, until: datetime | None,
                 progress: FlowProgress):
        self.paths, self.root, self.settings, self.done = paths, root, settings, done
        self.domains, self.since, self.until = domains, since, until
        self.progress = progress
        self.position = 0
        self.records: Counter = Counter()

    def __iter__(self) -> Iterator[ImportBatch]:
        log = _logger()
        n = 0
        before = 0
        for path in self.paths:
            file_id = file_identity(path)
            stored = _done_batches_of_file(self.root, file_id)
            self.done.update(stored)
            scanner = WarcScanner(path, domains=self.domains, since=self.since, until=self.until,
                                  max_bytes=self.settings.fetch.max_bytes)
            batcher = HostBatcher(self.settings.extract.batch_size)
            log.info("importing %s (%d bytes, file id %s, %d batches already stored)", path, scanner.size,
                     file_id, len(stored))
            last = time.monotonic()
            for entry in scanner:
                self.position = before + scanner.position
                for host, entries in batcher.add(entry):
                    yield ImportBatch(batch_id=batch_id_for(file_id, entries), file=str(path), host=host, index=n,
                                      entries=tuple(entries))
                    n += 1
                if time.monotonic() - last > 0.5:  # skipped/filtered stretches move the bar too
                    last = time.monotonic()
                    self.progress.update(self.position)
            for host, entries in batcher.flush():
                yield ImportBatch(batch_id=batch_id_for(file_id, entries), file=str(path), host=host, index=n,
                                  entries=tuple(entries))
                n += 1
            self.records.update(scanner.stats)
            before += scanner.size
            self.position = before


def run_import(settings: Settings, root: Path, files: list[str], *, domains: list[str] | None = None,
               since: datetime | None = None, until: datetime | None = None, source: str = "warc-import",
               parameters: dict | None = None, run_id: str | None = None) -> ImportInfo:
    log = _logger()
    paths = [Path(f).expanduser().resolve() for f in files]
    for p in paths:
        if not p.is_file():
            raise NewsmillError(f"no such file: {p}")
    if not source or not source.strip():
        raise NewsmillError("source: must not be empty")
    info = ImportInfo(run_id=run_id or current_run_id(), started_at=datetime.now(timezone.utc), source_name=source,
                      files=[str(p) for p in paths], bytes_read=sum(p.stat().st_size for p in paths))
    run_id = info.run_id
    runtime.start_extraction_early(settings)  # while the run is set up
    with batch_run(info, root, settings, parameters=parameters) as run:
        if settings.runner.task_runner == "threads":  # the workers forked by the first batch's records
            runtime.warm_pool(run_id, settings.extract.workers)
        _notify("discovered", total=info.bytes_read)
        progress = FlowProgress(info.bytes_read, key="import-warc-progress",
                                description="bytes of the WARC files read and imported")
        history = _known_recurring(run.warehouse, settings.extract.recurring_min_pages)

        def history_for(entries) -> dict[str, frozenset[str]]:
            hosts = {domain_of(e.url) for e in entries if e.url}
            return {h: history[h] for h in hosts if h in history}

        def already_imported(b: ImportBatch) -> None:
            info.source(source).records_already_imported += len(b.entries)

        done: set[str] = set()
        planner = ImportPlanner(paths, root, settings, done, domains=domains, since=since, until=until,
                                progress=progress)
        run.run(planner,
                lambda b: submit(import_batch, b, settings, run_id, str(root), history_for(b.entries), source),
                done=done, on_skip=already_imported, on_commit=lambda _b, _out: progress.update(planner.position))
        info.records.update(planner.records)
        progress.update(info.bytes_read, force=True)
    summary_artifacts(info)
    log.info("import %s finished: %s", run_id, json.dumps(info.asdict()))
    return info
