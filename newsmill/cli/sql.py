"""``newsmill sql``: one read-only SQL query over the warehouse (DuckDB; no Prefect)."""

from __future__ import annotations

import sys

from newsmill.cli.common import add_warehouse
from newsmill.tasks.config import resolve_warehouse


def add_commands(sub) -> None:
    s = sub.add_parser("sql", help="run one read-only SQL query over the warehouse")
    s.add_argument("query")
    add_warehouse(s)
    s.add_argument("--format", choices=["table", "csv", "json"], default="table")
    s.add_argument("--config", help="TOML config for the [sql] limits (timeout_s, memory_limit, max_temp_size; "
                   "default: the defaults)")
    s.set_defaults(func=cmd_sql)


def cmd_sql(args) -> int:
    from newsmill.tasks.config import load_settings
    from newsmill.warehouse.query import stream_query  # duckdb: only for this command

    limits = load_settings(args.config).sql
    root = resolve_warehouse(args.warehouse)
    stream_query(root, args.query, sys.stdout, fmt=args.format, timeout_s=limits.timeout_s,
                 memory_limit=limits.memory_limit, max_temp_size=limits.max_temp_size)
    return 0
