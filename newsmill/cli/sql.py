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
    s.set_defaults(func=cmd_sql)


def cmd_sql(args) -> int:
    from newsmill.warehouse.query import run_query  # duckdb: only for this command

    root = resolve_warehouse(args.warehouse)
    out = run_query(root, args.query, fmt=args.format)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0
