"""Arrow schemas of the warehouse tables (derived from ``tasks/records.py``) and record -> Arrow conversion.

Tables stored on disk (Hive-partitioned Parquet, one directory per table, ``date=YYYY-MM-DD``):

* ``article_versions`` — every stored version of an article; key ``(article_id, content_hash,
  extractor_version)``. ``articles`` is a *view* (latest ``processed_at``, then ``fetched_at``).
* ``pages`` — the fetch log (``PageLogEntry`` + ``batch_id``).
* ``boilerplate`` — removed segments (``Removal`` + ``processed_at``, ``extractor_version``).
* ``blocks`` — short-block fingerprints per article (recurring-boilerplate learning).
* ``runs`` — one row per ``write_run`` call (view keeps the latest per run_id).
* ``story_members`` — the story of each article version and its text signature (``stories`` view).
* ``source_health`` — per source and ingest run: health figures, their medians, status and reasons.

``SCHEMA_VERSION`` is written to ``<root>/_meta.json`` and into every file's key-value metadata
(``newsmill.schema_version``, ``newsmill.table``). Columns are only ever *added*; readers use
``union_by_name`` and the catalog fills columns missing from every file with typed NULLs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 1

TS = pa.timestamp("us", tz="UTC")
STR = pa.string()
LIST_STR = pa.list_(pa.string())

ARTICLE_VERSIONS = pa.schema(
    [
        ("article_id", STR),
        ("url", STR),
        ("canonical_url", STR),
        ("domain", STR),
        ("site_name", STR),
        ("title", STR),
        ("authors", LIST_STR),
        ("published_at", TS),
        ("published_date", pa.date32()),  # the publisher's calendar date (issue 12; NULL in older files)
        ("modified_at", TS),
        ("language", STR),
        ("description", STR),
        ("text", STR),
        ("copyright_holder", STR),
        ("copyright_year", pa.int32()),
        ("copyright_notice", STR),
        ("license_url", STR),
        ("content_hash", STR),
        ("fetched_at", TS),
        ("run_id", STR),
        ("tags", LIST_STR),
        ("image_url", STR),
        ("paywalled", pa.bool_()),
        ("copyright_source", STR),
        ("syndicated", pa.bool_()),
        ("text_path", STR),  # which extraction path produced the text (issue 12; NULL in older files)
        ("source", STR),
        ("extractor_version", STR),
        ("processed_at", TS),
    ]
)

PAGES = pa.schema(
    [
        ("url", STR),
        ("final_url", STR),
        ("kind", STR),
        ("status", pa.int32()),
        ("outcome", STR),
        ("error", STR),
        ("bytes", pa.int64()),
        ("content_type", STR),
        ("fetched_at", TS),
        ("elapsed_ms", pa.int64()),
        ("run_id", STR),
        ("source", STR),
        ("attempts", pa.int32()),
        ("etag", STR),
        ("last_modified", STR),
        ("warc_file", STR),
        ("warc_offset", pa.int64()),
        ("warc_length", pa.int64()),
        ("batch_id", STR),
    ]
)

BOILERPLATE = pa.schema(
    [
        ("url", STR),
        ("kind", STR),
        ("rule", STR),
        ("text", STR),
        ("run_id", STR),
        ("processed_at", TS),
        ("extractor_version", STR),
        ("batch_id", STR),
    ]
)

BLOCKS = pa.schema(
    [
        ("domain", STR),
        ("block_hash", STR),
        ("article_id", STR),
        ("content_hash", STR),
        ("run_id", STR),
        ("processed_at", TS),
    ]
)

RUNS = pa.schema(
    [
        ("run_id", STR),
        ("flow", STR),
        ("started_at", TS),
        ("finished_at", TS),
        ("parameters", STR),  # JSON
        ("counts", STR),  # JSON
        ("written_at", TS),
    ]
)

# Story membership of every article version (``warehouse/stories.py``): its story and its text signature, so
# a later run matches new articles against the stored window without re-reading texts.
STORY_MEMBERS = pa.schema(
    [
        ("article_id", STR),
        ("content_hash", STR),
        ("url", STR),
        ("domain", STR),
        ("story_id", STR),
        ("first_seen", TS),  # published_at, else fetched_at, else processed_at of the version
        ("similarity", pa.float64()),  # estimated Jaccard with the member it matched; NULL = opened the story
        ("matched_article_id", STR),
        ("minhash", pa.list_(pa.uint32())),  # NUM_PERM values; NULL: too short to sign (a story of its own)
        ("shingles", pa.int32()),
        ("signature_version", STR),
        ("run_id", STR),
        ("processed_at", TS),
    ]
)

# Per source and run: the health figures, their medians over the source's previous runs, the status and
# the reasons (``warehouse/health.py``, ``tasks/health.py``).
_HEALTH_FIGURES = [
    ("ok_share", pa.float64()), ("no_article_share", pa.float64()), ("median_text_chars", pa.float64()),
    ("authors_share", pa.float64()), ("published_share", pa.float64()), ("copyright_share", pa.float64()),
    ("boilerplate_per_article", pa.float64()),
]
SOURCE_HEALTH = pa.schema(
    [
        ("source", STR),
        ("run_id", STR),
        ("night", pa.date32()),
        ("started_at", TS),
        ("discovered", pa.int64()),
        ("fetched", pa.int64()),
        ("articles", pa.int64()),
        *_HEALTH_FIGURES,
        ("median_articles", pa.float64()),
        *[(f"median_{n}", t) for n, t in _HEALTH_FIGURES],
        ("status", STR),  # new | ok | degraded | broken
        ("reasons", LIST_STR),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "article_versions": ARTICLE_VERSIONS,
    "pages": PAGES,
    "boilerplate": BOILERPLATE,
    "blocks": BLOCKS,
    "runs": RUNS,
    "story_members": STORY_MEMBERS,
    "source_health": SOURCE_HEALTH,
}
TABLES = tuple(SCHEMAS)

# column whose UTC date names the partition (``date=YYYY-MM-DD``)
PARTITION_COLUMN = {
    "article_versions": "processed_at",
    "pages": "fetched_at",
    "boilerplate": "processed_at",
    "blocks": "processed_at",
    "runs": "started_at",
    "story_members": "processed_at",
    "source_health": "started_at",
}

# "marker" row kind in boilerplate: the latest extraction of this URL removed nothing (never shown)
BOILERPLATE_NONE = "_none"


def _norm(value: Any, typ: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_timestamp(typ):
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=timezone.utc)
            return value.astimezone(timezone.utc)
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
        if isinstance(value, str):
            return _norm(datetime.fromisoformat(value), typ)
        return value
    if pa.types.is_list(typ):
        return [str(v) for v in value]
    if pa.types.is_integer(typ):
        return int(value)
    if pa.types.is_boolean(typ):
        return bool(value)
    if pa.types.is_string(typ):
        return str(value)
    return value


def _field_getter(rec: Any):
    if isinstance(rec, Mapping):
        return rec.get
    if dataclasses.is_dataclass(rec) or hasattr(rec, "_asdict"):
        return lambda name: getattr(rec, name, None)
    raise TypeError(f"cannot convert {type(rec).__name__} to a warehouse row")


def _column(values: list, typ: pa.DataType) -> pa.Array:
    """Arrow's own conversion when the values already have the column's Python type (the common case,
    done in C); the per-value normalisation of :func:`_norm` otherwise (naive or non-UTC datetimes are
    converted to UTC by Arrow too; dates, ISO strings, numbers given as strings... take the slow path)."""
    try:
        return pa.array(values, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return pa.array([_norm(v, typ) for v in values], type=typ)


def to_table(name: str, records: Iterable[Any], **extra: Any) -> pa.Table:
    """Arrow table for ``name`` from dataclass records / mappings. ``extra`` sets a column for every
    row that the records do not provide (e.g. ``batch_id=...``, ``processed_at=...``). Unknown
    record fields are ignored; missing ones are NULL."""
    schema = SCHEMAS[name]
    getters = [_field_getter(rec) for rec in records]
    arrays = []
    for f in schema:
        values = [get(f.name) for get in getters]
        if f.name in extra:
            fill = extra[f.name]
            values = [fill if v is None else v for v in values]
        arrays.append(_column(values, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def from_columns(name: str, columns: Mapping[str, list], num_rows: int, **constant: Any) -> pa.Table:
    """Arrow table for ``name`` from column lists (``num_rows`` long) plus ``constant`` columns; columns
    given neither way are NULL. The fast path for many narrow rows (``blocks``)."""
    schema = SCHEMAS[name]
    arrays = []
    for f in schema:
        if f.name in columns:
            values = columns[f.name]
        else:
            values = [constant.get(f.name)] * num_rows
        arrays.append(_column(values, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def file_metadata(name: str) -> dict[bytes, bytes]:
    return {
        b"newsmill.schema_version": str(SCHEMA_VERSION).encode(),
        b"newsmill.table": name.encode(),
    }


_DUCK = {
    pa.string(): "VARCHAR",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
    TS: "TIMESTAMPTZ",
    LIST_STR: "VARCHAR[]",
    pa.date32(): "DATE",
    pa.float64(): "DOUBLE",
    pa.list_(pa.uint32()): "UINTEGER[]",
}


def duckdb_type(typ: pa.DataType) -> str:
    try:
        return _DUCK[typ]
    except KeyError:
        raise TypeError(f"no DuckDB type for {typ}") from None
