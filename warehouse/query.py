"""Read-only SQL over the warehouse (``newsmill sql``).

``run_query(root, sql, fmt)`` accepts exactly one SELECT / WITH / FROM / DESCRIBE / SHOW / SUMMARIZE /
EXPLAIN statement, classified by DuckDB's own parser (``duckdb.extract_statements``; EXPLAIN is
checked on the statement it explains). It runs on a sandboxed in-memory connection: the views are
defined first, then file access is limited to the warehouse (``allowed_directories``,
``enable_external_access=false``), extension install/autoload is off, memory and threads are capped,
and the configuration is locked so the query cannot undo any of it.
"""

from __future__ import annotations

import csv
import datetime as _dt
import decimal
import io
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import duckdb

from newsmill.tasks.errors import NewsmillError, UnsafeQuery, WarehouseError
from newsmill.warehouse.catalog import connect

__all__ = ["run_query", "check_query", "sandboxed_connect", "FORMATS"]

FORMATS = ("table", "csv", "json")
_ALLOWED = {duckdb.StatementType.SELECT}
_EXPLAIN_RE = re.compile(r"^\s*explain\s+(?:analy[sz]e\s+)?", re.IGNORECASE)


def check_query(sql: str) -> str:
    """Return the single statement in ``sql`` or raise ``UnsafeQuery`` (one line)."""
    if not isinstance(sql, str) or not sql.strip():
        raise UnsafeQuery("empty query: give one SELECT statement")
    try:
        stmts = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise UnsafeQuery(f"cannot parse query: {str(exc).splitlines()[0]}") from None
    if len(stmts) != 1:
        raise UnsafeQuery(f"only one statement allowed, got {len(stmts)}")
    st = stmts[0]
    kind = st.type
    if kind == duckdb.StatementType.EXPLAIN:
        inner = _EXPLAIN_RE.sub("", st.query, count=1)
        if inner == st.query:
            raise UnsafeQuery("cannot classify EXPLAIN statement")
        try:
            inner_stmts = duckdb.extract_statements(inner)
        except duckdb.Error as exc:
            raise UnsafeQuery(f"cannot parse query: {str(exc).splitlines()[0]}") from None
        if len(inner_stmts) != 1 or inner_stmts[0].type not in _ALLOWED:
            name = inner_stmts[0].type.name if inner_stmts else "?"
            raise UnsafeQuery(f"only read-only queries may be explained, not {name}")
        return st.query
    if kind not in _ALLOWED:
        raise UnsafeQuery(
            f"{kind.name} statements are not allowed: only SELECT/WITH/DESCRIBE/SHOW/EXPLAIN (read-only)"
        )
    return st.query


def sandboxed_connect(
    root: str | os.PathLike, *, memory_limit: str = "1GB", threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """Views first, then lock the connection down to the warehouse directory."""
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise WarehouseError(f"no warehouse at {root}")
    con = connect(root)
    dirs = sorted({str(root) + "/", os.path.realpath(root) + "/"})
    con.execute("SET allowed_directories = " + "[" + ", ".join("'" + d.replace("'", "''") + "'" for d in dirs) + "]")
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET threads = {int(threads or min(4, os.cpu_count() or 1))}")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET lock_configuration = true")
    return con


def _jsonable(v: Any) -> Any:
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, _dt.timedelta):
        return v.total_seconds()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    v = _jsonable(v)
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def _table(cols: list[str], rows: list[tuple], truncated: bool, max_width: int = 60) -> str:
    cells = [[_cell(v).replace("\n", " ") for v in r] for r in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in r] for r in cells]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    out = [sep, line(cols), sep] + [line(r) for r in cells] + [sep]
    n = len(rows)
    out.append(f"({n} row{'s' if n != 1 else ''}{', truncated' if truncated else ''})")
    return "\n".join(out) + "\n"


def run_query(
    root: str | os.PathLike,
    sql: str,
    fmt: str = "table",
    max_rows: int | None = None,
    *,
    memory_limit: str = "1GB",
    threads: int | None = None,
) -> str:
    """Run one read-only statement against the warehouse views; return text in ``fmt``
    (``table`` aligned text, ``csv`` with header, ``json`` one array of row objects with ISO dates
    and lists as arrays). ``max_rows`` caps the rows returned. Raises ``UnsafeQuery``."""
    if fmt not in FORMATS:
        raise UnsafeQuery(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    stmt = check_query(sql)
    con = sandboxed_connect(root, memory_limit=memory_limit, threads=threads)
    try:
        try:
            cur = con.execute(stmt)
        except duckdb.PermissionException as exc:
            raise UnsafeQuery(f"query refused: {str(exc).splitlines()[0]}") from None
        except duckdb.Error as exc:
            raise NewsmillError(f"query failed: {str(exc).splitlines()[0]}") from None
        cols = [d[0] for d in (cur.description or [])]
        if max_rows is not None:
            rows = cur.fetchmany(max_rows + 1)
            truncated = len(rows) > max_rows
            rows = rows[:max_rows]
        else:
            rows, truncated = cur.fetchall(), False
    finally:
        con.close()
    if fmt == "json":
        return json.dumps([{c: _jsonable(v) for c, v in zip(cols, r)} for r in rows], ensure_ascii=False) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow(["" if v is None else (json.dumps(_jsonable(v)) if isinstance(v, (list, dict)) else _jsonable(v)) for v in r])
        return buf.getvalue()
    return _table(cols, rows, truncated)
