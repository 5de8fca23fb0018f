"""Source health in the warehouse: tonight's figures per source (SQL over what the run stored), the
source's previous runs (the ``source_health`` table), the assessment (``tasks/health.py``), stored as rows.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

import pyarrow as pa

from newsmill.tasks.config import HealthSettings
from newsmill.tasks.health import Assessment, SourceNight, assess, night_fields
from newsmill.warehouse.catalog import connect
from newsmill.warehouse.files import has_files
from newsmill.warehouse.schema import BOILERPLATE_NONE, SOURCE_HEALTH

__all__ = ["assess_run", "night_figures"]

_FIGURES_SQL = f"""
WITH p AS (
    SELECT source,
        count(*) AS fetched,
        count(*) FILTER (WHERE outcome = 'not_modified') AS not_modified,
        count(*) FILTER (WHERE outcome = 'ok') AS ok,
        count(*) FILTER (WHERE outcome = 'no_article') AS no_article
    FROM pages WHERE run_id = $run AND kind = 'article' GROUP BY source
), a AS (
    SELECT source, count(*) AS articles, median(length(text)) AS median_text_chars,
        avg(CASE WHEN len(authors) > 0 THEN 1 ELSE 0 END) AS authors_share,
        avg(CASE WHEN published_at IS NOT NULL THEN 1 ELSE 0 END) AS published_share,
        avg(CASE WHEN copyright_holder IS NOT NULL THEN 1 ELSE 0 END) AS copyright_share
    FROM article_versions WHERE run_id = $run GROUP BY source
), b AS (
    SELECT u.source, count(*) AS removed
    FROM boilerplate_all b JOIN (SELECT DISTINCT url, source FROM pages WHERE run_id = $run) u USING (url)
    WHERE b.run_id = $run AND b.kind IS DISTINCT FROM '{BOILERPLATE_NONE}' GROUP BY u.source
)
SELECT coalesce(p.source, a.source) AS source, coalesce(p.fetched, 0), coalesce(a.articles, 0),
    CASE WHEN p.fetched - p.not_modified > 0 THEN (p.ok + p.no_article) / (p.fetched - p.not_modified) END,
    CASE WHEN p.ok + p.no_article > 0 THEN p.no_article / (p.ok + p.no_article) END,
    a.median_text_chars, a.authors_share, a.published_share, a.copyright_share,
    CASE WHEN a.articles > 0 THEN coalesce(b.removed, 0) / a.articles END
FROM p FULL JOIN a USING (source) LEFT JOIN b ON b.source = coalesce(p.source, a.source)
"""


def night_figures(con, run_id: str, started_at: datetime, discovered: dict[str, int]) -> list[SourceNight]:
    """Each source's figures for one run (sources that discovered nothing and fetched nothing included,
    with zeros: a source whose feed went empty is what this is for)."""
    rows = {r[0]: r for r in con.execute(_FIGURES_SQL, {"run": run_id}).fetchall() if r[0] is not None}
    out = []
    for source in sorted(set(rows) | set(discovered)):
        r = rows.get(source)
        vals = dict(zip(("fetched", "articles", "ok_share", "no_article_share", "median_text_chars",
                         "authors_share", "published_share", "copyright_share", "boilerplate_per_article"),
                        r[1:] if r else (0, 0) + (None,) * 7))
        out.append(SourceNight(source=source, run_id=run_id, night=started_at.date(), started_at=started_at,
                               discovered=int(discovered.get(source, 0)),
                               **{k: (float(v) if isinstance(v, (int, float)) and k not in ("fetched", "articles")
                                      else v) for k, v in vals.items()}))
    return out


def _previous(con, sources: list[str], run_id: str, started_at: datetime, n: int) -> dict[str, list[SourceNight]]:
    cols = ", ".join(night_fields())
    rows = con.execute(
        f"""SELECT {cols} FROM source_health
            WHERE source IN (SELECT unnest(?::VARCHAR[])) AND run_id <> ? AND started_at < ?
            QUALIFY row_number() OVER (PARTITION BY source ORDER BY started_at DESC) <= ?
            ORDER BY source, started_at""",
        [sources, run_id, started_at, n],
    ).fetchall()
    out: dict[str, list[SourceNight]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(SourceNight(*r))
    return out


def _table(assessments: list[Assessment]) -> pa.Table:
    rows = [a.row() for a in assessments]
    return pa.table({f.name: pa.array([r.get(f.name) for r in rows], f.type) for f in SOURCE_HEALTH})


def assess_run(writer, run_id: str, started_at: datetime, discovered: dict[str, int],
               settings: HealthSettings) -> list[Assessment]:
    """Assess every source of one ingest run against its previous runs; store the rows (through the run's
    ``writer``, as part of the run) and return them."""
    root = writer.root
    tables = ("pages", "article_versions", "boilerplate", "source_health")
    with contextlib.closing(connect(root, tables=tables)) as con:
        nights = night_figures(con, run_id, started_at, discovered)
        if not nights:
            return []
        prev = (_previous(con, [n.source for n in nights], run_id, started_at, settings.history_nights)
                if has_files(root, "source_health") else {})
    assessments = [assess(n, prev.get(n.source, []), settings) for n in nights]
    writer.write_table("source_health", _table(assessments), "health", started_at)
    return assessments
