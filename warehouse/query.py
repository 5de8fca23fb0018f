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
import shutil
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

import duckdb
import pyarrow as pa

from newsmill.tasks.errors import NewsmillError, UnsafeQuery, WarehouseError
from newsmill.warehouse.catalog import connect

__all__ = ["run_query", "stream_query", "check_query", "sandboxed_connect", "FORMATS", "QueryTimeout",
           "QueryTerminated"]

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
    root: str | os.PathLike, *, memory_limit: str = "1GB", threads: int | None = None,
    temp_directory: str | os.PathLike | None = None, max_temp_size: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """Views first, then lock the connection down to the warehouse directory. ``temp_directory`` is where
    DuckDB spills (default: none, so an operator over ``memory_limit`` fails instead of spilling into the
    working directory); ``max_temp_size`` caps the spill. Both are set before the configuration is
    locked. DuckDB lets a query read its own temp directory: give it a private, empty one."""
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise WarehouseError(f"no warehouse at {root}")
    con = connect(root)
    # spill settings first: they cannot be changed once external access is off
    if temp_directory is not None:
        con.execute("SET temp_directory = '" + str(temp_directory).replace("'", "''") + "'")
        if max_temp_size:
            con.execute(f"SET max_temp_directory_size = '{max_temp_size}'")
    else:
        con.execute("SET temp_directory = ''")  # no spilling at all (DuckDB's default is <cwd>/.tmp)
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


def jsonable(v: Any) -> Any:
    """A value from a query (or a record) as JSON data: times ISO 8601, intervals in seconds, big integers
    exact, UUIDs as text, bytes as hex, containers recursively."""
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, _dt.timedelta):
        return v.total_seconds()
    if isinstance(v, pa.MonthDayNano):  # an INTERVAL through Arrow: seconds, a month as 30 days (DuckDB's)
        return (v.months * 30 + v.days) * 86400 + v.nanoseconds / 1e9
    if isinstance(v, decimal.Decimal):  # HUGEINT comes through Arrow as DECIMAL(38,0): keep integers exact
        return int(v) if v == v.to_integral_value() and v.as_tuple().exponent >= 0 else float(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    v = jsonable(v)
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


# ---------------------------------------------------------------------------------------------- output
# Rows are streamed: DuckDB produces Arrow record batches of BATCH_ROWS rows, each is formatted and written
# before the next is fetched, so memory holds one batch, not the result (a 500 MB result was fetched and
# formatted whole, outside DuckDB's memory_limit, and peaked at 1.7 GB RSS).

BATCH_ROWS = 2048
# The table format aligns columns to the widest cell among the first TABLE_WIDTH_ROWS rows (cells are cut
# at 60 characters anyway); later rows use those widths, a longer cell is cut with "…".
TABLE_WIDTH_ROWS = 10_000


class _Table:
    def __init__(self, out: TextIO, cols: list[str], max_width: int = 60):
        self.out, self.cols, self.max_width = out, cols, max_width
        self.pending: list[list[str]] | None = []
        self.widths: list[int] = []
        self.n = 0

    def _cut(self, c: str, w: int) -> str:
        return c if len(c) <= w else c[: w - 1] + "…"

    def _line(self, vals: list[str]) -> str:
        return "| " + " | ".join(self._cut(v, w).ljust(w) for v, w in zip(vals, self.widths)) + " |\n"

    def _flush_pending(self) -> None:
        rows, self.pending = self.pending or [], None
        self.widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(self.cols)]
        self.sep = "+" + "+".join("-" * (w + 2) for w in self.widths) + "+\n"
        self.out.write(self.sep + self._line(self.cols) + self.sep + "".join(self._line(r) for r in rows))

    def rows(self, rows: list[tuple]) -> None:
        for r in rows:
            cells = [self._cut(_cell(v).replace("\n", " "), self.max_width) for v in r]
            self.n += 1
            if self.pending is not None:
                self.pending.append(cells)
                if len(self.pending) >= TABLE_WIDTH_ROWS:
                    self._flush_pending()
            else:
                self.out.write(self._line(cells))

    def end(self, truncated: bool) -> None:
        if self.pending is not None:
            self._flush_pending()
        n = self.n
        self.out.write(self.sep + f"({n} row{'s' if n != 1 else ''}{', truncated' if truncated else ''})\n")


class _Csv:
    def __init__(self, out: TextIO, cols: list[str]):
        self.w = csv.writer(out, lineterminator="\n")
        self.w.writerow(cols)

    def rows(self, rows: list[tuple]) -> None:
        self.w.writerows(["" if v is None else (json.dumps(jsonable(v)) if isinstance(v, (list, dict))
                                                else jsonable(v)) for v in r] for r in rows)

    def end(self, truncated: bool) -> None:
        pass


class _Json:
    """One JSON array of row objects, written row by row (the same text ``json.dumps`` of the list gives)."""

    def __init__(self, out: TextIO, cols: list[str]):
        self.out, self.cols, self.first = out, cols, True
        out.write("[")

    def rows(self, rows: list[tuple]) -> None:
        for r in rows:
            self.out.write(("" if self.first else ", ") + json.dumps(
                {c: jsonable(v) for c, v in zip(self.cols, r)}, ensure_ascii=False))
            self.first = False

    def end(self, truncated: bool) -> None:
        self.out.write("]\n")


_WRITERS = {"table": _Table, "csv": _Csv, "json": _Json}


# ---------------------------------------------------------------------------------------------- running


class QueryTimeout(NewsmillError):
    """The statement ran longer than ``sql.timeout_s``."""


class QueryTerminated(NewsmillError):
    """SIGTERM arrived while the statement ran; it was interrupted and its spill files removed."""

    exit_code = 143


class _Sigterm(BaseException):
    pass


class _EngineError(Exception):
    """An error of DuckDB while it produced the result (not of writing the output)."""


def _failed(exc: BaseException) -> NewsmillError:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    full = str(exc)
    if "max_temp_directory_size" in full:
        return NewsmillError(f"query failed: it needs more temporary disk space than sql.max_temp_size allows "
                             f"({msg})")
    if "Out of Memory" in full or "memory_limit" in full:
        return NewsmillError(f"query failed: it needs more memory than sql.memory_limit allows ({msg})")
    return NewsmillError(f"query failed: {msg}")


def _produce(con: duckdb.DuckDBPyConnection, stmt: str, out: TextIO, fmt: str, max_rows: int | None) -> int:
    try:
        rel = con.sql(stmt)
    except duckdb.PermissionException as exc:
        raise UnsafeQuery(f"query refused: {str(exc).splitlines()[0]}") from None
    except duckdb.Error as exc:
        raise _EngineError(exc) from None
    if rel is None:  # pragma: no cover - check_query lets only statements with a result through
        raise NewsmillError("query returned no result")
    cols = list(rel.columns)
    try:
        reader = rel.to_arrow_reader(BATCH_ROWS)
    except (duckdb.Error, pa.ArrowException, OSError) as exc:
        raise _EngineError(exc) from None
    try:
        writer = _WRITERS[fmt](out, cols)
        n, truncated = 0, False
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (duckdb.Error, pa.ArrowException, OSError) as exc:  # DuckDB errors surface as Arrow's
                raise _EngineError(exc) from None
            rows = list(zip(*(c.to_pylist(maps_as_pydicts="lossy") for c in batch.columns))) if cols else []
            if max_rows is not None and n + len(rows) > max_rows:
                rows, truncated = rows[: max_rows - n], True
            writer.rows(rows)
            n += len(rows)
            if truncated:
                break
    finally:
        reader.close()  # the connection stays busy while a reader of it is open
        del reader, rel
    writer.end(truncated)
    out.flush()
    return n


def _stale_temp_dirs() -> None:
    """Remove spill directories of ``newsmill sql`` processes that died without cleaning up (SIGKILL)."""
    for d in Path(tempfile.gettempdir()).glob(f"{_TEMP_PREFIX}*"):
        try:
            pid = int(d.name[len(_TEMP_PREFIX):].split("-", 1)[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (ValueError, PermissionError, OSError):
            continue


_TEMP_PREFIX = "newsmill-sql-"


def stream_query(
    root: str | os.PathLike,
    sql: str,
    out: TextIO,
    fmt: str = "table",
    max_rows: int | None = None,
    *,
    memory_limit: str = "1GB",
    threads: int | None = None,
    timeout_s: float | None = 300.0,
    max_temp_size: str = "10GB",
) -> int:
    """Run one read-only statement and write its result to ``out`` in ``fmt`` as it is produced
    (``table`` aligned text, ``csv`` with header, ``json`` one array of row objects with ISO dates and
    lists as arrays); return the number of rows written. ``max_rows`` caps the rows.

    Bounds: the statement (output included) is interrupted after ``timeout_s`` seconds
    (``QueryTimeout``); DuckDB spills to a private directory under the system temp dir, at most
    ``max_temp_size``, removed at the end (also on Ctrl-C and SIGTERM); rows are written batch by batch.
    Raises ``UnsafeQuery`` for a refused statement, ``NewsmillError`` (one line) when it fails,
    ``KeyboardInterrupt`` on Ctrl-C and ``QueryTerminated`` on SIGTERM after interrupting DuckDB."""
    if fmt not in FORMATS:
        raise UnsafeQuery(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    stmt = check_query(sql)
    _stale_temp_dirs()
    tmp = tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-")
    try:
        con = sandboxed_connect(root, memory_limit=memory_limit, threads=threads, temp_directory=tmp,
                                max_temp_size=max_temp_size)
        return _supervise(con, stmt, out, fmt, max_rows, timeout_s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _supervise(con, stmt, out, fmt, max_rows, timeout_s) -> int:
    """Produce the result in a worker thread while this thread watches the clock and signals: DuckDB
    does not run Python signal handlers while it streams a result, so Ctrl-C, SIGTERM and the timeout
    are turned into ``con.interrupt()`` from here."""
    box: dict[str, Any] = {}
    # the worker's end is an Event, not Thread.is_alive(): a join() interrupted by a signal handler's
    # exception can leave is_alive() False while the thread still runs
    done = threading.Event()

    def work():
        try:
            box["n"] = _produce(con, stmt, out, fmt, max_rows)
        except BaseException as exc:  # noqa: BLE001 - handed to the supervising thread
            e: BaseException | None = exc
            while e is not None:  # keep no frame alive: a live relation or reader keeps the connection busy
                e = e.with_traceback(None).__context__
            box["exc"] = exc
        finally:
            done.set()

    main = threading.current_thread() is threading.main_thread()
    old_term = None
    if main:
        def on_term(signum, frame):
            raise _Sigterm()

        old_term = signal.signal(signal.SIGTERM, on_term)
    worker = threading.Thread(target=work, name="newsmill-sql", daemon=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    stop: BaseException | None = None
    closed = False
    try:
        worker.start()
        try:
            while not done.is_set():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    stop = QueryTimeout(f"query stopped after sql.timeout_s = {timeout_s:g} s "
                                        f"(raise it in the [sql] section of --config)")
                    break
                done.wait(0.1 if left is None else min(0.1, left))
        except KeyboardInterrupt as exc:
            stop = exc
        except _Sigterm:
            stop = QueryTerminated("query terminated (SIGTERM); its temporary files were removed")
        if stop is not None:
            con.interrupt()
            done.wait(10)  # a worker stuck writing to a blocked pipe is left behind (daemon thread)
        if done.is_set():
            con.close()
            closed = True
    finally:
        if main:
            signal.signal(signal.SIGTERM, old_term)
        if not closed and done.is_set():
            con.close()
    if stop is not None:
        raise stop
    exc = box.get("exc")
    if isinstance(exc, _EngineError):
        raise _failed(exc.args[0]) from None
    if exc is not None:
        raise exc
    return box["n"]


def run_query(
    root: str | os.PathLike,
    sql: str,
    fmt: str = "table",
    max_rows: int | None = None,
    *,
    memory_limit: str = "1GB",
    threads: int | None = None,
    timeout_s: float | None = 300.0,
    max_temp_size: str = "10GB",
) -> str:
    """:func:`stream_query` into a string (for small results: tests, the demo)."""
    buf = io.StringIO()
    stream_query(root, sql, buf, fmt, max_rows, memory_limit=memory_limit, threads=threads,
                 timeout_s=timeout_s, max_temp_size=max_temp_size)
    return buf.getvalue()
