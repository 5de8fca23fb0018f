"""Warehouse writes: the single writer, idempotent batches of rows (files, generations and the lock on
disk: ``warehouse/files.py``).

A batch commits
article_versions, boilerplate and blocks first and **pages last**: ``done_batches(run_id)`` (batch ids
present in pages) therefore only names fully stored batches.

Article versions are keyed by ``(article_id, content_hash, extractor_version)``: the same text
extracted by the same extractor is stored once (reruns and re-fetches add nothing); a reprocess by a
newer extractor adds a version (with a newer ``processed_at``) even when the text is unchanged, and the
``articles`` view shows the latest ``processed_at`` (then ``fetched_at``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from newsmill.tasks.errors import WarehouseError, WarehouseLocked
from newsmill.tasks.records import Article, PageLogEntry, Removal, RunRecord
from newsmill.tasks.urls import article_id as make_article_id
from newsmill.tasks.urls import domain_of
from newsmill.warehouse.catalog import FETCH_STATE_SQL, connect, write_views_sql
from newsmill.warehouse.files import (
    WriterLock,
    current_generation,
    ensure_meta,
    ensure_tables,
    gc_generations,
    has_files,
    sanitize,
    split_by_date,
    staging_dir,
    utcnow,
    write_file_atomic,
)
from newsmill.warehouse.merge import compact_locked
from newsmill.warehouse.schema import BOILERPLATE_NONE, TABLES, from_columns, to_table

__all__ = [
    "Warehouse",
    "WarehouseWriter",
    "BatchStats",
    "ArchivedPage",
]

# ---------------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True, slots=True)
class BatchStats:
    new_versions: int = 0
    duplicate_versions: int = 0
    pages: int = 0
    removals: int = 0
    blocks: int = 0
    files: int = 0


@dataclass(frozen=True, slots=True)
class ArchivedPage:
    url: str
    final_url: str | None
    source: str | None
    warc_file: str
    warc_offset: int
    fetched_at: datetime
    run_id: str | None
    warc_length: int | None = None


# ---------------------------------------------------------------------------------------------------
# warehouse


class Warehouse:
    """A warehouse directory. Reads go through DuckDB views (``warehouse.catalog``); writes through
    ``writer(run_id)`` which holds the single-writer lock."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.abspath(root))
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseError(f"cannot create warehouse directory {self.root}: {exc}") from exc

    # -- writing --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self, run_id: str, *, wait_s: float | None = None) -> Iterator["WarehouseWriter"]:
        """Take the single-writer lock (``<root>/_lock``) for the duration of the block. Raises
        ``WarehouseLocked`` naming the holder (after waiting up to ``wait_s`` seconds when given)."""
        lock = WriterLock(self.root, str(run_id), wait_s)
        lock.acquire()
        try:
            self._prepare()
            yield WarehouseWriter(self, str(run_id))
        finally:
            try:
                write_views_sql(self.root)
            except Exception:  # noqa: BLE001 - views.sql is a convenience; never mask the real error
                pass
            lock.release()

    def _prepare(self) -> None:
        st = staging_dir(self.root)
        if st.exists():
            shutil.rmtree(st, ignore_errors=True)
        st.mkdir(parents=True, exist_ok=True)
        ensure_meta(self.root)
        ensure_tables(self.root)
        for t in TABLES:
            gc_generations(self.root, t)
        with contextlib.suppress(OSError):
            write_views_sql(self.root)

    def ensure_unlocked(self) -> None:
        """Raise ``WarehouseLocked`` now if a writer holds the lock: a pre-flight check so a command
        can refuse with one line before it starts a flow run (the writer still takes the lock)."""
        path = self.root / "_lock"
        if not path.exists():
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = WriterLock(self.root, "", None).holder()
            raise WarehouseLocked(f"warehouse {self.root} is locked by {holder}; only one writer at a time") from None
        finally:
            os.close(fd)

    def reset_fetch_state(self, *, wait_s: float | None = None, reason: str = "") -> str:
        """Make the next run fetch every URL unconditionally (no If-None-Match / If-Modified-Since).
        Recorded as a ``runs`` row with flow ``reset_fetch_state``; returns its run_id."""
        run_id = "reset-" + utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        with self.writer(run_id, wait_s=wait_s) as w:
            w.reset_fetch_state(reason=reason)
        return run_id

    # -- reading --------------------------------------------------------------------------------

    def connect(self):
        return connect(self.root)

    def has_pages(self) -> bool:
        """Whether any ``pages`` file is stored (cheap: no query)."""
        return has_files(self.root, "pages")

    def done_batches(self, run_id: str) -> set[str]:
        # only the views a query reads (each table's view probes the columns of its files: ~15 ms a table)
        with contextlib.closing(connect(self.root, tables=("pages",))) as con:
            rows = con.execute(
                "SELECT DISTINCT batch_id FROM pages WHERE run_id = ? AND batch_id IS NOT NULL", [run_id]
            ).fetchall()
        return {r[0] for r in rows}

    def conditional_state(self, urls: Iterable[str] | None = None, *, exclude_run: str | None = None
                          ) -> dict[str, tuple[str | None, str | None]]:
        """``{url: (etag, last_modified)}`` from the latest ``ok`` pages row per URL since the last
        ``reset_fetch_state`` (URLs without a validator are left out). ``urls=None``: all URLs.
        ``exclude_run``: ignore that run's own rows (a retried run plans as its first attempt did)."""
        params: list[Any] = []
        source = "fetch_state"
        if exclude_run is not None:
            source = f"({FETCH_STATE_SQL.format(where=' AND p.run_id IS DISTINCT FROM ?')})"
            params.append(exclude_run)
        sql = f"SELECT url, etag, last_modified FROM {source} WHERE (etag IS NOT NULL OR last_modified IS NOT NULL)"
        if urls is not None:
            urls = list(dict.fromkeys(urls))
            if not urls:
                return {}
            sql += " AND url IN (SELECT unnest(?::VARCHAR[]))"
            params.append(urls)
        with contextlib.closing(connect(self.root, tables=("pages", "runs"))) as con:  # fetch_state
            rows = con.execute(sql, params).fetchall()
        return {u: (e, lm) for u, e, lm in rows}

    def recurring_blocks(self, domains: Iterable[str], min_pages: int) -> dict[str, frozenset[str]]:
        """Block hashes seen on >= ``min_pages`` distinct articles (distinct article_id and distinct
        content_hash) per domain."""
        domains = list(dict.fromkeys(domains))
        if not domains:
            return {}
        with contextlib.closing(connect(self.root, tables=("blocks",))) as con:
            rows = con.execute(
                """SELECT domain, block_hash FROM blocks
                   WHERE domain IN (SELECT unnest(?::VARCHAR[]))
                   GROUP BY domain, block_hash
                   HAVING count(DISTINCT article_id) >= ? AND count(DISTINCT coalesce(content_hash, article_id)) >= ?""",
                [domains, int(min_pages), int(min_pages)],
            ).fetchall()
        out: dict[str, set[str]] = {d: set() for d in domains}
        for d, h in rows:
            out[d].add(h)
        return {d: frozenset(v) for d, v in out.items()}

    def archived_pages(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        source: str | None = None,
        domain: str | None = None,
    ) -> list[ArchivedPage]:
        """Latest ``ok`` article fetch per URL that has a WARC location, fetched in [since, until)."""
        conds = ["kind = 'article'", "outcome = 'ok'", "warc_file IS NOT NULL", "warc_offset IS NOT NULL"]
        params: list[Any] = []
        if source is not None:
            conds.append("source = ?")
            params.append(source)
        sql = (
            "SELECT url, final_url, source, warc_file, warc_offset, fetched_at, run_id, warc_length FROM pages WHERE "
            + " AND ".join(conds)
            + " QUALIFY row_number() OVER (PARTITION BY url ORDER BY fetched_at DESC) = 1"
        )
        outer = []
        if since is not None:
            outer.append("fetched_at >= ?")
            params.append(since)
        if until is not None:
            outer.append("fetched_at < ?")
            params.append(until)
        sql = f"SELECT * FROM ({sql})" + (" WHERE " + " AND ".join(outer) if outer else "") + " ORDER BY fetched_at, url"
        with contextlib.closing(self.connect()) as con:
            rows = con.execute(sql, params).fetchall()
        out = [ArchivedPage(*r) for r in rows]
        if domain:
            dom = domain.lower().removeprefix("www.")
            out = [
                a
                for a in out
                if (d := domain_of(a.final_url or a.url)) == dom or d.endswith("." + dom)
            ]
        return out


_BLOCK_FIELDS = ("domain", "block_hash", "article_id", "content_hash")


class WarehouseWriter:
    """Obtained from ``Warehouse.writer(run_id)``; valid while the lock is held."""

    def __init__(self, warehouse: Warehouse, run_id: str):
        self.warehouse = warehouse
        self.root = warehouse.root
        self.run_id = run_id
        self.touched: dict[str, set[str]] = {}  # table -> partitions written by this writer
        self._key_domains: set[str] = set()  # domains whose stored version keys are loaded
        self._versions: set[int] = set()  # hash((article_id, content_hash, extractor_version))
        self._contents: set[int] = set()  # hash((article_id, content_hash))
        self._articles: set[int] = set()  # hash(article_id)

    def _load_keys(self, domains: set[str]) -> None:
        """Load the stored version keys of ``domains`` not loaded yet (one query per new domain set)."""
        new = sorted(d for d in domains if d and d not in self._key_domains)
        if not new:
            return
        if not has_files(self.root, "article_versions"):  # nothing stored yet: no query needed
            self._key_domains.update(new)
            return
        with contextlib.closing(connect(self.root, tables=("article_versions",))) as con:
            rows = con.execute(
                """SELECT article_id, content_hash, coalesce(extractor_version, '') FROM article_versions
                   WHERE domain IN (SELECT unnest(?::VARCHAR[]))""",
                [new],
            ).fetchall()
        for aid, ch, ev in rows:
            self._versions.add(hash((aid, ch, ev)))
            self._contents.add(hash((aid, ch)))
            self._articles.add(hash(aid))
        self._key_domains.update(new)

    def preload_keys(self, domains: Iterable[str]) -> None:
        """Load the stored version keys of all these domains in one query (a run calls it with the hosts
        it is about to fetch, instead of one query per new domain as batches arrive)."""
        self._load_keys(set(domains))

    # -- internals ------------------------------------------------------------------------------

    def _write(self, table: str, tbl: pa.Table, batch_id: str, now: datetime) -> int:
        if tbl.num_rows == 0:
            return 0
        gen = current_generation(self.root, table)
        if gen is None:
            ensure_tables(self.root)
            gen = current_generation(self.root, table)
        n = 0
        for day, part in split_by_date(table, tbl, now):
            name = f"part-{sanitize(self.run_id)}-{sanitize(batch_id)}-{uuid.uuid4().hex[:12]}.parquet"
            write_file_atomic(self.root, table, part, gen / f"date={day}" / name)
            self.touched.setdefault(table, set()).add(f"date={day}")
            n += 1
        return n

    def write_table(self, table: str, tbl: pa.Table, batch_id: str, now: datetime | None = None) -> int:
        """Stage and write rows of ``table`` (partitioned by date, atomic files) as part of this run;
        consolidated with the run's other files. Returns the number of files written."""
        return self._write(table, tbl, batch_id, now or utcnow())

    def consolidate(self) -> dict:
        """Merge the small per-batch files of the partitions this writer touched into one file per
        partition (same atomic generation swap as ``newsmill compact``; readers see no gap or
        duplicate). Called at the end of a run, so a night leaves one file per table partition."""
        touched, self.touched = self.touched, {}
        return compact_locked(self.root, sorted(touched), partitions=touched)

    # -- public ---------------------------------------------------------------------------------

    def commit_batch(
        self,
        batch_id: str,
        pages: Iterable[PageLogEntry] = (),
        articles: Iterable[Article] = (),
        removals: Iterable[Removal] = (),
        blocks: Mapping[str, Iterable[str]] | Iterable[Any] = (),
        *,
        processed_at: datetime | None = None,
    ) -> BatchStats:
        """Store one batch. ``blocks`` is either ``{url: block_hashes}`` (resolved against the
        batch's articles: domain, article_id, content_hash) or an iterable of ``BlockRow``-like
        records. Articles whose ``(article_id, content_hash, extractor_version)`` is already stored
        are skipped; pages are written last (the batch counts as done once they are)."""

        batch_id = str(batch_id)
        now = processed_at or utcnow()
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        pages = list(pages)
        removals = list(removals)

        # ---- articles
        by_key: dict[tuple, dict] = {}
        for a in articles:
            d = dict(a) if isinstance(a, Mapping) else {f.name: getattr(a, f.name) for f in dataclasses.fields(a)}
            if not d.get("article_id"):
                d["article_id"] = make_article_id(d.get("canonical_url") or d["url"])
            d.setdefault("run_id", None)
            d["run_id"] = d["run_id"] or self.run_id
            d["processed_at"] = d.get("processed_at") or now
            key = (d["article_id"], d.get("content_hash"), d.get("extractor_version") or "")
            by_key.setdefault(key, d)
        # dedupe against what is stored, with keys cached for this writer session (loaded once per
        # domain, then kept up to date): a commit costs the same on the first night and the 500th
        self._load_keys({d.get("domain") or domain_of(d["url"]) for d in by_key.values()})
        new_rows = []
        dup = 0
        new_contents: set[tuple] = set()
        for key, d in by_key.items():
            if hash(key) in self._versions:
                dup += 1
                continue
            new_rows.append(d)
            if hash(key[:2]) not in self._contents:
                new_contents.add(key[:2])

        # ---- boilerplate: written with each new version of an article (a re-run or a refetch of
        # unchanged content writes none); an extraction that removed nothing writes a marker that
        # hides the older removals
        new_urls = {d["url"]: d.get("extractor_version") for d in new_rows}
        batch_bp: dict[str, list[Removal]] = {u: [] for u in new_urls}
        for r in removals:
            if r.url in batch_bp:
                batch_bp[r.url].append(r)
        bp_rows: list[dict] = []
        seen_before = {d["url"] for d in new_rows if hash(d["article_id"]) in self._articles}
        for u, rs in batch_bp.items():
            if not rs:
                if u not in seen_before:
                    continue  # never stored: nothing to hide
                rs_rows = [dict(url=u, kind=BOILERPLATE_NONE, rule=BOILERPLATE_NONE, text="")]
            else:
                rs_rows = [dict(url=r.url, kind=r.kind, rule=r.rule, text=r.text, run_id=r.run_id) for r in rs]
            for row in rs_rows:
                row["run_id"] = row.get("run_id") or self.run_id
                row["processed_at"] = now
                row["extractor_version"] = new_urls.get(u)
                row["batch_id"] = batch_id
                bp_rows.append(row)

        # ---- blocks: (domain, block_hash, article_id, content_hash), stored once per (article, content)
        block_keys: list[tuple] = []
        if isinstance(blocks, Mapping):
            by_url = {d["url"]: d for d in by_key.values()}
            for u, hashes in blocks.items():
                d = by_url.get(u)
                if d is None:
                    continue
                dom = d.get("domain") or domain_of(u)
                block_keys.extend((dom, h, d["article_id"], d.get("content_hash")) for h in hashes)
        else:
            for b in blocks:
                if type(b) is tuple:  # the flows' own rows
                    block_keys.append(b)
                elif isinstance(b, Mapping):
                    block_keys.append(tuple(b.get(f) for f in _BLOCK_FIELDS))
                else:
                    block_keys.append(tuple(getattr(b, f, None) for f in _BLOCK_FIELDS))
        fresh_blocks = list(dict.fromkeys(k for k in block_keys if (k[2], k[3]) in new_contents))

        files = 0
        files += self._write("article_versions", to_table("article_versions", new_rows), batch_id, now)
        files += self._write("boilerplate", to_table("boilerplate", bp_rows), batch_id, now)
        block_cols = dict(zip(_BLOCK_FIELDS, map(list, zip(*fresh_blocks)))) if fresh_blocks else {}
        files += self._write("blocks", from_columns("blocks", block_cols, len(fresh_blocks), run_id=self.run_id,
                                                    processed_at=now), batch_id, now)
        # pages LAST: their presence marks the batch done
        files += self._write(
            "pages", to_table("pages", pages, run_id=self.run_id, batch_id=batch_id), batch_id, now
        )
        for d in new_rows:
            key = (d["article_id"], d.get("content_hash"), d.get("extractor_version") or "")
            self._versions.add(hash(key))
            self._contents.add(hash(key[:2]))
            self._articles.add(hash(key[0]))
        return BatchStats(
            new_versions=len(new_rows),
            duplicate_versions=dup,
            pages=len(pages),
            removals=sum(1 for r in bp_rows if r["kind"] != BOILERPLATE_NONE),
            blocks=len(fresh_blocks),
            files=files,
        )

    def write_run(self, run: RunRecord) -> None:
        """Append a runs row (call at start and at end; the ``runs`` view shows the latest per run_id)."""
        now = utcnow()
        tbl = to_table("runs", [run], written_at=now)
        self._write("runs", tbl, "run", now)

    def reset_fetch_state(self, reason: str = "") -> None:
        now = utcnow()
        self.write_run(
            RunRecord(
                run_id=self.run_id,
                flow="reset_fetch_state",
                started_at=now,
                finished_at=now,
                parameters=json.dumps({"reason": reason}),
                counts="{}",
            )
        )
