"""DuckDB catalog: views over the warehouse's Parquet files (no DuckDB database file, no lock).

``connect(root)`` returns an in-memory DuckDB connection with these views:

stored tables (``read_parquet(..., hive_partitioning=true, union_by_name=true)``)
    ``article_versions``, ``pages``, ``blocks``, ``boilerplate_history``, ``runs_history``, ``story_members``
derived
    ``articles``            latest version per article_id (processed_at, then fetched_at) + story_id, story_size,
                            copy_of_domain
    ``boilerplate``         removals of the latest extraction of each URL
    ``runs``                latest row per run_id
    ``fetch_state``         latest ``ok`` fetch per URL since the last reset_fetch_state (etag, last_modified)
    ``latest_pages``        latest fetch per URL + its conditional state (``state_etag``, ``state_last_modified``)
    ``daily_counts``        articles per day per domain/site: ``published_date`` (the publisher's own calendar
                            date), else the UTC date of published_at / fetched_at / processed_at
    ``copyright_by_holder`` articles, domains, years, syndication per copyright holder
    ``source_health``       per source and ingest run: health figures, their trailing medians, status, reasons
    ``stories``             one row per story (near-duplicate texts across outlets): first_seen, first_domain,
                            first_title, n_articles, n_domains, copyright_holders, last_seen

A connection reads one *snapshot*: the table symlinks are resolved when it is created, so compaction
or a takedown running meanwhile is invisible to it (see ``warehouse/files.py``). Columns missing from
every file (older schema) are filled with typed NULLs; a table without files is an empty typed view.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import duckdb

from newsmill.warehouse.schema import BOILERPLATE_NONE, SCHEMAS, TABLES, duckdb_type
from newsmill.warehouse.files import current_generation, parquet_files, staging_dir

__all__ = ["connect", "views_sql", "write_views_sql", "VIEW_NAMES"]

# When an article version was first seen: its published date, else its fetch, else its processing time —
# never later than it was processed (a bogus future date must not make it the "latest" or stretch a window).
# Shared by the views and warehouse/stories.py.
FIRST_SEEN_SQL = "least(coalesce(published_at, fetched_at, processed_at), processed_at)"

# stored table -> name of its base view
BASE_VIEW = {
    "article_versions": "article_versions",
    "pages": "pages",
    "blocks": "blocks",
    "boilerplate": "boilerplate_all",
    "runs": "runs_history",
    "story_members": "story_members",
    "source_health": "source_health_all",
}

# latest ``ok`` fetch per URL since the last reset_fetch_state; ``where``: more conditions on the pages rows
# (``Warehouse.conditional_state`` leaves out a run's own rows)
FETCH_STATE_SQL = """WITH r AS (SELECT max(started_at) AS reset_at FROM runs_history WHERE flow = 'reset_fetch_state')
SELECT p.url, p.etag, p.last_modified, p.fetched_at, p.run_id FROM pages p, r
WHERE p.outcome = 'ok' AND (r.reset_at IS NULL OR p.fetched_at > r.reset_at){where}
QUALIFY row_number() OVER (PARTITION BY p.url ORDER BY p.fetched_at DESC) = 1"""

DERIVED = [
    (
        # the latest version of each article, with its story (``story_members``): ``story_size`` = articles
        # in the story now; ``copy_of_domain`` = the earliest other domain that had the text before this one
        "articles",
        ("article_versions", "story_members"),
        f"""WITH v AS (
    SELECT * EXCLUDE (date) FROM article_versions
    QUALIFY row_number() OVER (PARTITION BY article_id ORDER BY processed_at DESC NULLS LAST,
        fetched_at DESC NULLS LAST, extractor_version DESC NULLS LAST, content_hash) = 1
), j AS (
    SELECT v.*, m.story_id, {FIRST_SEEN_SQL} AS _seen FROM v
    LEFT JOIN (SELECT DISTINCT ON (article_id, content_hash) article_id, content_hash, story_id
               FROM story_members ORDER BY article_id, content_hash, processed_at DESC) m
    USING (article_id, content_hash)
)
SELECT j.* EXCLUDE (_seen),
    CASE WHEN j.story_id IS NOT NULL THEN count(*) OVER (PARTITION BY j.story_id) END AS story_size,
    (SELECT arg_min(o.domain, o._seen) FROM j o
     WHERE o.story_id = j.story_id AND o.domain <> j.domain AND o._seen < j._seen) AS copy_of_domain
FROM j""",
    ),
    (
        "boilerplate_history",
        ("boilerplate",),
        f"SELECT * EXCLUDE (date) FROM boilerplate_all WHERE kind IS DISTINCT FROM '{BOILERPLATE_NONE}'",
    ),
    (
        "boilerplate",
        ("boilerplate",),
        f"""SELECT url, kind, rule, text, run_id, processed_at, extractor_version FROM (
    SELECT * FROM boilerplate_all QUALIFY processed_at = max(processed_at) OVER (PARTITION BY url)
) WHERE kind IS DISTINCT FROM '{BOILERPLATE_NONE}'""",
    ),
    (
        "runs",
        ("runs",),
        """SELECT run_id, flow, started_at, finished_at, parameters, counts FROM runs_history
QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY written_at DESC NULLS LAST, finished_at DESC NULLS LAST) = 1""",
    ),
    ("fetch_state", ("pages", "runs"), FETCH_STATE_SQL.format(where="")),
    (
        "latest_pages",
        ("pages", "runs"),
        """SELECT p.* EXCLUDE (date), s.etag AS state_etag, s.last_modified AS state_last_modified
FROM (SELECT * FROM pages QUALIFY row_number() OVER (PARTITION BY url ORDER BY fetched_at DESC) = 1) p
LEFT JOIN fetch_state s ON s.url = p.url""",
    ),
    (
        "daily_counts",
        ("article_versions", "story_members"),
        """SELECT coalesce(published_date,
        CAST(timezone('UTC', coalesce(published_at, fetched_at, processed_at)) AS DATE)) AS day,
    domain, site_name, count(*) AS articles
FROM articles GROUP BY ALL""",
    ),
    (
        "copyright_by_holder",
        ("article_versions", "story_members"),
        """SELECT copyright_holder, count(*) AS articles, count(DISTINCT domain) AS domains,
    min(copyright_year) AS first_year, max(copyright_year) AS last_year,
    count(*) FILTER (WHERE syndicated) AS syndicated,
    list(DISTINCT license_url) FILTER (WHERE license_url IS NOT NULL) AS license_urls
FROM articles GROUP BY copyright_holder ORDER BY articles DESC, copyright_holder""",
    ),
    (
        # one row per story: its earliest copy (likely origin), how far it ran, who claimed it
        "stories",
        ("article_versions", "story_members"),
        f"""SELECT story_id,
    min({FIRST_SEEN_SQL}) AS first_seen,
    arg_min(domain, ({FIRST_SEEN_SQL}, article_id)) AS first_domain,
    arg_min(title, ({FIRST_SEEN_SQL}, article_id)) AS first_title,
    count(*) AS n_articles, count(DISTINCT domain) AS n_domains,
    list(DISTINCT copyright_holder ORDER BY copyright_holder) FILTER (WHERE copyright_holder IS NOT NULL)
        AS copyright_holders,
    max({FIRST_SEEN_SQL}) AS last_seen
FROM articles WHERE story_id IS NOT NULL GROUP BY story_id""",
    ),
    (
        # per source and ingest run (one a night when scheduled): figures vs their medians, status, reasons
        "source_health",
        ("source_health",),
        """SELECT * EXCLUDE (date) FROM source_health_all
QUALIFY row_number() OVER (PARTITION BY source, run_id ORDER BY started_at DESC) = 1""",
    ),
]

VIEW_NAMES = tuple(BASE_VIEW.values()) + tuple(n for n, _d, _s in DERIVED)


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _empty_select(table: str) -> str:
    cols = [f"CAST(NULL AS {duckdb_type(f.type)}) AS {f.name}" for f in SCHEMAS[table]]
    cols.append("CAST(NULL AS DATE) AS date")
    return "SELECT " + ", ".join(cols) + " WHERE false"


def _read_parquet(glob: str) -> str:
    return f"read_parquet({_q(glob)}, hive_partitioning=true, union_by_name=true, hive_types={{'date': DATE}})"


def _base_select(table: str, directory: Path, con: duckdb.DuckDBPyConnection, location: str | None = None) -> str:
    """SELECT over the table's files in ``directory`` (a generation dir or the table symlink).
    ``location``: glob the SELECT reads instead (a published copy of the same files, see
    ``warehouse/publish.py``); the columns are still probed on the local ``directory``."""
    if not parquet_files(Path(os.path.realpath(directory))):
        return _empty_select(table)
    src = _read_parquet(str(directory) + "/*/*.parquet")
    try:
        present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    except duckdb.IOException:
        # files vanished between listing and reading (a superseded generation was collected)
        return _empty_select(table)
    fill = [
        f"CAST(NULL AS {duckdb_type(f.type)}) AS {f.name}" for f in SCHEMAS[table] if f.name not in present
    ]
    if location is not None:
        src = _read_parquet(location)
    return "SELECT *" + "".join(", " + c for c in fill) + f" FROM {src}"


def _statements(
    root: Path, con: duckdb.DuckDBPyConnection, *, snapshot: bool, tables: Iterable[str], base: str | None = None
) -> list[str]:
    tables = [t for t in TABLES if t in set(tables)]
    out = []
    for t in tables:
        gen = current_generation(root, t)
        if gen is None:
            sel = _empty_select(t)
        else:
            loc = None if base is None else f"{base.rstrip('/')}/{t}/**/*.parquet"
            sel = _base_select(t, gen if snapshot else root / t, con, loc)
        out.append(f"CREATE OR REPLACE VIEW {BASE_VIEW[t]} AS {sel};")
    for name, deps, sql in DERIVED:
        if all(d in tables for d in deps):
            out.append(f"CREATE OR REPLACE VIEW {name} AS {sql};")
    return out


def connect(
    root: str | os.PathLike,
    read_only: bool = True,
    *,
    tables: Iterable[str] = TABLES,
) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB connection with the warehouse views (one consistent snapshot of the files).

    There is no database file, so readers never block the writer; ``read_only`` is accepted for API
    symmetry (the views are read-only anyway). Extension autoinstall/autoload are off (only the
    built-in parquet/json/icu are used); the session time zone is UTC."""
    root = Path(os.path.abspath(root))
    con = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    con.execute("SET TimeZone = 'UTC'")
    # files are immutable (new generation on rewrite): caching footers across the view binding and
    # the queries of this connection is safe and saves ~1 ms per file per statement
    con.execute("SET parquet_metadata_cache = true")
    for stmt in _statements(root, con, snapshot=True, tables=tables):
        con.execute(stmt)
    return con


def views_sql(root: str | os.PathLike, *, base: str | None = None, tables: Iterable[str] = TABLES) -> str:
    """A script for the DuckDB CLI (``duckdb -init views.sql`` or ``.read views.sql``): absolute paths
    through the stable ``<root>/<table>`` links (regenerated by every writer).

    ``base`` (used by ``warehouse/publish.py``): the views read ``<base>/<table>/**/*.parquet`` (a
    published copy, e.g. ``s3://bucket/newsmill``) instead; columns are probed on the local current
    generations, so call it while those are the published ones (under the writer lock)."""
    root = Path(os.path.abspath(root))
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        stmts = _statements(root, con, snapshot=base is not None, tables=tables, base=base)
    finally:
        con.close()
    if base is not None:
        head = [
            f"-- newsmill warehouse views for the published copy {base}",
            "-- generated by warehouse/publish.py (newsmill publish); rewritten by every publish (do not edit)",
        ]
    else:
        head = [
            f"-- newsmill warehouse views for {root}",
            "-- generated by warehouse/catalog.py; regenerated by every writer (do not edit)",
            "SET autoinstall_known_extensions = false;",
            "SET autoload_known_extensions = false;",
        ]
    return "\n".join(head + stmts) + "\n"


def write_views_sql(root: str | os.PathLike) -> Path:
    root = Path(os.path.abspath(root))
    text = views_sql(root)
    st = staging_dir(root)
    st.mkdir(parents=True, exist_ok=True)
    tmp = st / f"views.sql.{uuid.uuid4().hex[:8]}"
    tmp.write_text(text)
    dest = root / "views.sql"
    os.replace(tmp, dest)
    return dest
