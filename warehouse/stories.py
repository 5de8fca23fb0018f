"""Stories in the warehouse: assign new article versions to stories, rebuild them, all from stored data.

State lives in the ``story_members`` table (one row per ``(article_id, content_hash)``: its story, the
signature of its text). ``update_stories`` runs at the end of every ingest, reprocess and import-warc run,
under the run's writer lock:

1. the article versions processed in the last ``stories.window_days`` that have no ``story_members`` row
   (this run's, and those of a run that died before this step) are read and their texts signed;
2. the stored signatures of the window that share an LSH band with any of them are found by one DuckDB join
   (bands computed in SQL from the stored ``minhash`` lists, so no band table is kept and the window is never
   loaded whole into Python);
3. :class:`newsmill.tasks.stories.StoryIndex` assigns the new versions in time order;
4. their rows are written with the run's other files (staged, atomic) and consolidated with them.

``rebuild_stories`` recomputes every story from the stored texts (``newsmill stories --rebuild``, after a
change of the matching settings): article versions are streamed in time order, a sliding window of
signatures is kept (memory bounded by the articles of one window, whatever the history), and the result
replaces the table in one generation swap. A takedown (``newsmill delete``) removes the article's rows here
too; the views then recount its story without it.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from newsmill.tasks.config import StoriesSettings
from newsmill.tasks.stories import BANDS, SIGNATURE_VERSION, Signature, Signed, StoryIndex, bands, signature
from newsmill.warehouse.catalog import FIRST_SEEN_SQL, connect
from newsmill.warehouse.files import (
    finish_generation, has_files, new_generation_dir, sanitize, split_by_date, utcnow, write_file_atomic,
)
from newsmill.warehouse.schema import STORY_MEMBERS

__all__ = ["StoriesInfo", "update_stories", "rebuild_stories", "run_stories"]



@dataclass
class StoriesInfo:
    articles: int = 0  # versions assigned
    joined: int = 0  # of which joined an existing story
    new_stories: int = 0
    unsigned: int = 0  # too short to sign: a story of their own
    signed_here: int = 0  # texts signed in this process (not by the extraction workers)
    candidates: int = 0  # stored members that shared a band
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _key(article_id: str, content_hash: str) -> str:
    return f"{article_id}:{content_hash}"


def _rows(assigned, items: dict[str, Signed], meta: dict[str, tuple], run_id: str, now: datetime) -> pa.Table:
    cols: dict[str, list] = {f.name: [] for f in STORY_MEMBERS}
    for a in assigned:
        item = items[a.key]
        aid, ch, url = meta[a.key]
        cols["article_id"].append(aid)
        cols["content_hash"].append(ch)
        cols["url"].append(url)
        cols["domain"].append(item.domain)
        cols["story_id"].append(a.story_id)
        cols["first_seen"].append(item.first_seen)
        cols["similarity"].append(a.similarity)
        cols["matched_article_id"].append(a.matched_key.split(":", 1)[0] if a.matched_key else None)
        cols["minhash"].append(item.sig.values if item.sig is not None else None)
        cols["shingles"].append(item.sig.size if item.sig is not None else None)
        cols["signature_version"].append(SIGNATURE_VERSION)
        cols["run_id"].append(run_id)
        cols["processed_at"].append(now)
    return pa.table({f.name: pa.array(cols[f.name], f.type) for f in STORY_MEMBERS})


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def update_stories(writer, settings: StoriesSettings, *, now: datetime | None = None,
                   signatures: dict | None = None) -> StoriesInfo:
    """Assign the unassigned article versions of the window to stories; write their ``story_members`` rows
    through ``writer`` (a :class:`~newsmill.warehouse.store.WarehouseWriter` holding the lock).
    ``signatures``: ``{(article_id, content_hash): Signature}`` computed by the extraction workers; the
    texts of the other versions are read and signed here."""
    info = StoriesInfo()
    root: Path = writer.root
    if not settings.enabled or not has_files(root, "article_versions"):
        return info
    t0 = time.perf_counter()
    now = now or utcnow()
    since = now - timedelta(days=settings.window_days)
    with contextlib.closing(connect(root, tables=("article_versions", "story_members"))) as con:
        rows = con.execute(
            f"""SELECT article_id, content_hash, any_value(url), any_value(domain),
                   min({FIRST_SEEN_SQL}) AS first_seen
                FROM article_versions v
                WHERE processed_at >= ? AND article_id IS NOT NULL AND content_hash IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM story_members m
                                  WHERE m.article_id = v.article_id AND m.content_hash = v.content_hash)
                GROUP BY article_id, content_hash""",
            [since],
        ).fetchall()
        if not rows:
            return info
        signatures = signatures or {}
        unsigned = [(aid, ch) for aid, ch, *_ in rows if (aid, ch) not in signatures]
        texts = {}
        if unsigned:  # versions no worker signed (an earlier run that died, `newsmill extract` imports, ...)
            con.register("unsigned_keys", pa.table({"article_id": [a for a, _ in unsigned],
                                                    "content_hash": [c for _, c in unsigned]}))
            texts = {(a, c): t for a, c, t in con.execute(
                """SELECT article_id, content_hash, any_value(text) FROM article_versions
                   JOIN unsigned_keys USING (article_id, content_hash) GROUP BY ALL""").fetchall()}
            con.unregister("unsigned_keys")
        items: dict[str, Signed] = {}
        meta: dict[str, tuple] = {}
        for aid, ch, url, dom, seen in rows:
            k = _key(aid, ch)
            sig = signatures[(aid, ch)] if (aid, ch) in signatures else signature(texts.get((aid, ch)) or "")
            items[k] = Signed(k, dom or "", _aware(seen), sig, story_key=ch)
            meta[k] = (aid, ch, url)
        index = StoryIndex(threshold=settings.threshold, containment=settings.containment,
                           min_jaccard=settings.min_jaccard, window_days=settings.window_days)
        signed = [s for s in items.values() if s.sig is not None]
        if signed and has_files(root, "story_members"):
            _load_candidates(con, index, signed, since=min(s.first_seen for s in signed)
                             - timedelta(days=settings.window_days), info=info)
    assigned = index.assign(items.values())
    tbl = _rows(assigned, items, meta, writer.run_id, now)
    writer.write_table("story_members", tbl, "stories", now)
    info.articles = len(assigned)
    info.joined = sum(1 for a in assigned if a.matched_key is not None)
    info.new_stories = info.articles - info.joined
    info.unsigned = sum(1 for s in items.values() if s.sig is None)
    info.signed_here = len(unsigned)
    info.seconds = round(time.perf_counter() - t0, 3)
    return info


def _load_candidates(con, index: StoryIndex, signed: list[Signed], *, since: datetime, info: StoriesInfo,
                     source: str = "story_members") -> None:
    """Stored members of the window sharing an LSH band with any new signature, into ``index`` (time order).
    ``source``: the relation holding the members (the ``story_members`` view, or a rebuild's new files);
    the ``first_seen`` filter lets DuckDB skip files and row groups older than the window by their stats."""
    mat = np.stack([s.sig.values for s in signed])
    b = bands(mat)  # n × BANDS uint64
    nb = pa.table({"i": pa.array(np.tile(np.arange(BANDS, dtype=np.int64), len(signed))),
                   "band": pa.array(b.reshape(-1))})
    con.register("new_bands", nb)
    try:
        found = con.execute(
            f"""WITH w AS (
                    SELECT DISTINCT ON (article_id, content_hash) article_id, content_hash, domain, story_id,
                           first_seen, minhash, shingles
                    FROM {source}
                    WHERE minhash IS NOT NULL AND signature_version = ? AND first_seen >= ?
                    ORDER BY article_id, content_hash, processed_at DESC
                ), wb AS (
                    SELECT article_id, content_hash, r.i AS i,
                           (CAST(minhash[2 * r.i + 1] AS UBIGINT) << 32) | CAST(minhash[2 * r.i + 2] AS UBIGINT) AS band
                    FROM w, range({BANDS}) r(i)
                ), hit AS (
                    SELECT DISTINCT wb.article_id, wb.content_hash FROM wb JOIN (SELECT DISTINCT i, band FROM new_bands) n
                    ON wb.i = n.i AND wb.band = n.band
                )
                SELECT w.article_id, w.content_hash, w.domain, w.story_id, w.first_seen, w.minhash, w.shingles
                FROM w JOIN hit USING (article_id, content_hash)
                ORDER BY w.first_seen, w.article_id, w.content_hash""",
            [SIGNATURE_VERSION, since],
        ).fetchall()
    finally:
        con.unregister("new_bands")
    info.candidates = len(found)
    for aid, ch, dom, story, seen, mh, n in found:
        sig = Signature(np.asarray(mh, dtype=np.uint32), int(n or 0))
        index.add_member(Signed(_key(aid, ch), dom or "", _aware(seen), sig, story_key=story), story)


def rebuild_stories(writer, settings: StoriesSettings, *, chunk: int = 5000, workers: int = 1,
                    progress=None) -> StoriesInfo:
    """Recompute every story from the stored texts and replace the ``story_members`` table in one
    generation swap. Versions are streamed in ``first_seen`` order, ``chunk`` at a time; each chunk is
    matched against the rows already rebuilt (the last ``window_days`` of them, found by the same DuckDB
    band join as a nightly run) and within itself. Memory: one chunk of texts plus DuckDB's bounded buffers
    (the time-ordered scan spills inside the warehouse's staging area), whatever the number of articles.
    ``workers`` > 1 signs each chunk's texts in that many processes (signing is most of the work)."""
    info = StoriesInfo()
    root: Path = writer.root
    t0 = time.perf_counter()
    now = utcnow()
    new_gen = new_generation_dir(root, "story_members")
    window = timedelta(days=settings.window_days)
    spill = root / "_staging" / f"duckdb-{sanitize(writer.run_id)}"
    n_files = 0
    pool = None
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
    try:
        if has_files(root, "article_versions"):
            with contextlib.closing(connect(root, tables=("article_versions",))) as con, \
                    contextlib.closing(connect(root, tables=())) as built:
                # DuckDB's buffers bounded (the sort over the texts spills beyond its limit; 1 GB and one
                # thread are what a time-ordered scan of texts needs to stream without failing to pin a
                # block); spills go inside the warehouse's staging area
                for c, limit in ((con, "1GB"), (built, "256MB")):
                    c.execute(f"SET temp_directory = '{spill.as_posix()}'")
                    c.execute(f"SET memory_limit = '{limit}'")
                con.execute("SET threads = 1")
                con.execute("SET preserve_insertion_order = false")
                built_src = f"read_parquet('{new_gen.as_posix()}/*/*.parquet', union_by_name = true)"
                # a plain sort spills to disk; a GROUP BY over the texts would have to hold them. The same
                # version stored under several extractor versions sorts next to itself (same first_seen,
                # then key) and is skipped below; nothing that grows with the history is kept.
                rel = con.sql(
                    f"""SELECT article_id, content_hash, url, domain, {FIRST_SEEN_SQL} AS first_seen, text
                        FROM article_versions WHERE article_id IS NOT NULL AND content_hash IS NOT NULL
                        ORDER BY first_seen, article_id, content_hash"""
                )
                last_key: tuple | None = None
                with rel.to_arrow_reader(batch_size=chunk) as reader:  # one chunk in Python at a time
                    for batch in reader:
                        items: dict[str, Signed] = {}
                        meta: dict[str, tuple] = {}
                        cols = [c.to_pylist() for c in batch.columns]
                        keep = []
                        for i, key in enumerate(zip(cols[0], cols[1])):
                            if key != last_key:
                                keep.append(i)
                            last_key = key
                        if len(keep) < len(cols[0]):
                            cols = [[c[i] for i in keep] for c in cols]
                        texts = [t or "" for t in cols[5]]
                        sigs = (list(pool.map(signature, texts, chunksize=max(1, len(texts) // (4 * workers))))
                                if pool is not None else [signature(t) for t in texts])
                        for aid, ch, url, dom, seen, sig in zip(*cols[:5], sigs):
                            k = _key(aid, ch)
                            items[k] = Signed(k, dom or "", _aware(seen), sig, story_key=ch)
                            meta[k] = (aid, ch, url)
                        index = StoryIndex(threshold=settings.threshold, containment=settings.containment,
                                           min_jaccard=settings.min_jaccard, window_days=settings.window_days)
                        signed = [x for x in items.values() if x.sig is not None]
                        if signed and n_files:
                            _load_candidates(built, index, signed, since=min(x.first_seen for x in signed) - window,
                                             info=info, source=built_src)
                        assigned = index.assign(items.values())
                        tbl = _rows(assigned, items, meta, writer.run_id, now)
                        for day, part in split_by_date("story_members", tbl, now):
                            name = f"part-{sanitize(writer.run_id)}-rebuild{n_files:06d}.parquet"
                            write_file_atomic(root, "story_members", part, new_gen / f"date={day}" / name)
                            n_files += 1
                        info.articles += len(assigned)
                        info.joined += sum(1 for a in assigned if a.matched_key is not None)
                        info.unsigned += sum(1 for x in items.values() if x.sig is None)
                        if progress is not None:
                            progress(info.articles)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        shutil.rmtree(spill, ignore_errors=True)
    finish_generation(root, "story_members", new_gen)
    writer.touched.setdefault("story_members", set()).update(p.name for p in new_gen.iterdir() if p.is_dir())
    info.new_stories = info.articles - info.joined
    info.seconds = round(time.perf_counter() - t0, 3)
    return info


def run_stories(root: str | Path, settings: StoriesSettings, *, rebuild: bool = False, workers: int = 1,
                wait_s: float | None = None, progress=None) -> dict:
    """``newsmill stories``: assign what is pending (default) or rebuild every story, under the warehouse
    lock, recorded as a ``runs`` row (flow ``stories``)."""
    import json
    import uuid

    from newsmill.tasks.records import RunRecord
    from newsmill.warehouse.store import Warehouse

    wh = Warehouse(root)
    run_id = f"stories-{utcnow().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    started = utcnow()
    params = json.dumps({"rebuild": rebuild, **asdict(settings)})
    with wh.writer(run_id, wait_s=wait_s) as w:
        if rebuild:
            info = rebuild_stories(w, settings, workers=workers, progress=progress)
        else:
            info = update_stories(w, settings)
        w.write_run(RunRecord(run_id=run_id, flow="stories", started_at=started, finished_at=utcnow(),
                              parameters=params, counts=json.dumps(info.as_dict())))
        w.consolidate()
    return {"run_id": run_id, "rebuild": rebuild, **info.as_dict()}
