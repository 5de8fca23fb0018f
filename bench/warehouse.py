"""Warehouse query benchmark: fragmented nightly files vs one file vs after ``compact()``.

    .venv/bin/python bench/warehouse.py                      # 1,000,000 articles, 365 nights x 8 batches
    .venv/bin/python bench/warehouse.py --articles 100000    # quicker

Builds a synthetic warehouse in the writer's layout (``_data/article_versions/g*/date=YYYY-MM-DD/
part-<run>-<batch>-<uuid>.parquet``, zstd, schema-version metadata; rows generated vectorised with
pyarrow/numpy, ~5% of articles with a second version), the same rows in a single file, times typical
queries through ``warehouse.catalog.connect`` on both, then runs ``warehouse.compact.compact`` on the
fragmented one and times again. Prints seconds (best of ``--repeat``) and ratios to the single file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from newsmill.warehouse.catalog import connect  # noqa: E402
from newsmill.warehouse.compact import compact  # noqa: E402
from newsmill.warehouse.schema import ARTICLE_VERSIONS, file_metadata  # noqa: E402
from newsmill.warehouse.files import current_generation, ensure_meta, ensure_tables, staging_dir, stats_columns  # noqa: E402

QUERIES = {
    "count by day and site": """SELECT CAST(published_at AS DATE) AS day, site_name, count(*) AS n
        FROM articles GROUP BY ALL ORDER BY day, site_name""",
    "top authors (unnest)": """SELECT author, count(*) AS n FROM (SELECT unnest(authors) AS author FROM articles)
        GROUP BY author ORDER BY n DESC, author LIMIT 20""",
    "text ILIKE search": "SELECT count(*) FROM articles WHERE text ILIKE '%quantum harbour%'",
    "latest version per article": """SELECT count(*), count(DISTINCT domain), max(processed_at) FROM articles""",
    "daily_counts view": "SELECT sum(articles) FROM daily_counts",
}

WORDS = ("council budget river harbour quantum election school transit housing storm climate court market "
         "festival museum library hospital police energy water farm bridge rail airport science").split()


def _pools(rng: np.random.Generator):
    paragraphs = []
    for _ in range(2000):
        n = int(rng.integers(40, 120))
        paragraphs.append(" ".join(rng.choice(WORDS, n)))
    first = ["Ann", "Bob", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lena"]
    last = ["Smith", "Garcia", "Okafor", "Nguyen", "Müller", "Rossi", "Kim", "Silva", "Cohen", "Patel"]
    authors = [f"{f} {l}{i}" for i in range(25) for f in first for l in last][:2000]
    sites = [(f"site{i}.example", f"Site {i} News") for i in range(50)]
    return pa.array(paragraphs), pa.array(authors), sites


def _night_table(rng, start_id: int, n: int, night: datetime, pools, run_id: str) -> pa.Table:
    paragraphs, authors_pool, sites = pools
    ids = np.arange(start_id, start_id + n)
    site_idx = rng.integers(0, len(sites), n)
    domains = pa.array([sites[i][0] for i in range(len(sites))]).take(pa.array(site_idx))
    site_names = pa.array([sites[i][1] for i in range(len(sites))]).take(pa.array(site_idx))
    article_id = pa.array([f"{i:032x}" for i in ids])
    url = pa.array([f"https://{sites[s][0]}/news/{i}" for s, i in zip(site_idx, ids)])
    n_auth = rng.integers(1, 4, n)
    offsets = np.concatenate([[0], np.cumsum(n_auth)]).astype(np.int32)
    flat = authors_pool.take(pa.array(rng.integers(0, len(authors_pool), int(offsets[-1]))))
    authors = pa.ListArray.from_arrays(pa.array(offsets), flat)
    text = paragraphs.take(pa.array(rng.integers(0, len(paragraphs), n)))
    base_us = int(night.timestamp() * 1_000_000)
    pub = pa.array(base_us - rng.integers(0, 86_400_000_000, n), type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    fetched = pa.array(np.full(n, base_us + 3_600_000_000), type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    hashes = pa.array([f"h{i:x}" for i in ids])
    cols = {
        "article_id": article_id, "url": url, "canonical_url": url, "domain": domains, "site_name": site_names,
        "title": pa.array([f"Headline {i}" for i in ids]), "authors": authors, "published_at": pub,
        "modified_at": pa.nulls(n, pa.timestamp("us", tz="UTC")), "language": pa.array(["en"] * n),
        "description": pa.nulls(n, pa.string()), "text": text,
        "copyright_holder": site_names, "copyright_year": pa.array(np.full(n, night.year, dtype=np.int32)),
        "copyright_notice": pa.nulls(n, pa.string()), "license_url": pa.nulls(n, pa.string()),
        "content_hash": hashes, "fetched_at": fetched, "run_id": pa.array([run_id] * n),
        "tags": pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)),
                                         pa.array(rng.choice(WORDS, n).tolist())),
        "image_url": pa.nulls(n, pa.string()), "paywalled": pa.array(rng.random(n) < 0.1),
        "copyright_source": pa.array(["jsonld"] * n), "syndicated": pa.array(rng.random(n) < 0.05),
        "source": site_names, "extractor_version": pa.array(["1"] * n), "processed_at": fetched,
    }
    return pa.table(cols, schema=ARTICLE_VERSIONS)


def build(root: Path, single: Path, n_articles: int, nights: int, batches: int, seed: int = 7) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    pools = _pools(rng)
    for r in (root, single):
        r.mkdir(parents=True, exist_ok=True)
        staging_dir(r).mkdir(exist_ok=True)
        ensure_meta(r)
        ensure_tables(r)
    gen = current_generation(root, "article_versions")
    meta = file_metadata("article_versions")
    per_night = np.full(nights, n_articles // nights)
    per_night[: n_articles % nights] += 1
    start = datetime(2024, 1, 1, 2, 0, tzinfo=timezone.utc)
    next_id, files, rows = 0, 0, 0
    single_path = current_generation(single, "article_versions") / "date=2024-01-01" / "part-single.parquet"
    single_path.parent.mkdir(parents=True)
    stats = stats_columns("article_versions", ARTICLE_VERSIONS.empty_table())
    writer = pq.ParquetWriter(single_path, ARTICLE_VERSIONS.with_metadata(meta), compression="zstd",
                              write_statistics=stats)
    recent: list[pa.Table] = []
    for d in range(nights):
        night = start + timedelta(days=d)
        tbl = _night_table(rng, next_id, int(per_night[d]), night, pools, f"run-{d:03d}")
        next_id += int(per_night[d])
        # ~5% re-versions of articles from the previous nights (newer processed_at, new text)
        if recent:
            old = pa.concat_tables(recent)
            k = max(1, int(per_night[d]) // 20)
            pick = old.take(pa.array(rng.integers(0, old.num_rows, k)))
            pick = pick.set_column(pick.schema.get_field_index("processed_at"), "processed_at",
                                   tbl.column("processed_at").slice(0, k))
            pick = pick.set_column(pick.schema.get_field_index("content_hash"), "content_hash",
                                   pa.array([f"v2-{i}" for i in range(k)]))
            tbl = pa.concat_tables([tbl, pick])
        recent = (recent + [tbl])[-3:]
        part = gen / f"date={night:%Y-%m-%d}"
        part.mkdir(parents=True, exist_ok=True)
        bounds = np.linspace(0, tbl.num_rows, batches + 1).astype(int)
        for b in range(batches):
            chunk = tbl.slice(bounds[b], bounds[b + 1] - bounds[b]).replace_schema_metadata(meta)
            pq.write_table(chunk, part / f"part-run-{d:03d}-b{b:02d}-{uuid.uuid4().hex[:12]}.parquet",
                           compression="zstd", write_statistics=stats)
            files += 1
        writer.write_table(tbl.replace_schema_metadata(meta))
        rows += tbl.num_rows
    writer.close()
    return files, rows


def time_queries(root: Path, repeat: int) -> dict[str, float]:
    t = time.perf_counter()
    con = connect(root)
    out = {"connect (views)": time.perf_counter() - t}
    con.execute("SET threads = 2")
    results = {}
    for name, sql in QUERIES.items():
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            res = con.execute(sql).fetchall()
            best = min(best, time.perf_counter() - t)
        out[name] = best
        results[name] = res
    con.close()
    out["_results"] = results  # type: ignore[assignment]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=1_000_000)
    ap.add_argument("--nights", type=int, default=365)
    ap.add_argument("--batches", type=int, default=1, help="files per nightly partition before compaction")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir, removed afterwards)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)

    work = Path(args.dir or tempfile.mkdtemp(prefix="newsmill-bench-"))
    frag, single = work / "fragmented", work / "single"
    try:
        t = time.perf_counter()
        files, rows = build(frag, single, args.articles, args.nights, args.batches)
        print(f"built {rows:,} article versions ({args.articles:,} articles) in {files:,} files over "
              f"{args.nights} partitions + 1 single file in {time.perf_counter() - t:.1f}s  [{work}]")
        size = lambda p: sum(f.stat().st_size for f in p.rglob("*.parquet")) / 1e6  # noqa: E731
        print(f"size: fragmented {size(frag):.0f} MB, single {size(single):.0f} MB")

        t_single = time_queries(single, args.repeat)
        t_frag = time_queries(frag, args.repeat)
        assert t_single.pop("_results") == t_frag.pop("_results"), "fragmented and single results differ"
        t = time.perf_counter()
        rep = compact(frag, "article_versions")["article_versions"]
        t_compact = time.perf_counter() - t
        print(f"compact(): {rep['files_before']:,} -> {rep['files_after']:,} files in {t_compact:.1f}s")
        t_comp = time_queries(frag, args.repeat)
        t_comp.pop("_results")

        print(f"\n{'query':32} {'single':>9} {'fragment':>9} {'ratio':>6} {'compact':>9} {'ratio':>6}")
        tot = [0.0, 0.0, 0.0]
        for name in t_single:
            s, f, c = t_single[name], t_frag[name], t_comp[name]
            if name != "connect (views)":
                tot[0] += s
                tot[1] += f
                tot[2] += c
            print(f"{name:32} {s:9.3f} {f:9.3f} {f / s:6.2f} {c:9.3f} {c / s:6.2f}")
        print(f"{'total (queries)':32} {tot[0]:9.3f} {tot[1]:9.3f} {tot[1] / tot[0]:6.2f} {tot[2]:9.3f} "
              f"{tot[2] / tot[0]:6.2f}")
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
