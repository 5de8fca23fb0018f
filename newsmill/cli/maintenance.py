"""Warehouse maintenance: ``compact``, ``delete``, ``publish``, ``reset-fetch-state`` (no Prefect)."""

from __future__ import annotations

import json

from newsmill.cli.common import add_warehouse
from newsmill.tasks.config import existing_warehouse
from newsmill.tasks.errors import NewsmillError


def add_compact_delete(sub) -> None:
    s = sub.add_parser("compact", help="merge small Parquet files of the warehouse")
    s.add_argument("--table", help="only this table (default: all)")
    add_warehouse(s)
    s.set_defaults(func=cmd_compact)

    s = sub.add_parser("delete", help="delete every stored row of one URL from the warehouse")
    s.add_argument("--url", required=True, help="the article/page URL to delete")
    add_warehouse(s)
    s.set_defaults(func=cmd_delete)


def add_publish_reset(sub) -> None:
    s = sub.add_parser("publish", help="mirror a consistent snapshot of the warehouse to a filesystem/object "
                       "store URI (s3://, gs://, abfs://, file://, fsspec schemes) for remote readers")
    s.add_argument("dest", metavar="DEST_URI", help="destination, e.g. s3://bucket/newsmill or file:///mnt/share/nm")
    add_warehouse(s)
    s.add_argument("--table", action="append", metavar="T", help="only this table (repeatable; default: all)")
    s.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                   help="wait up to this long for a running writer to release the lock (default: fail at once)")
    s.add_argument("--views-base", metavar="URL",
                   help="base URL the published views.sql reads (default: DEST_URI without its query string)")
    s.set_defaults(func=cmd_publish)

    s = sub.add_parser("reset-fetch-state", help="forget stored ETag/Last-Modified: the next ingest fetches "
                       "every URL unconditionally (recorded in runs)")
    add_warehouse(s)
    s.add_argument("--reason", default="", help="why (kept in the runs table)")
    s.set_defaults(func=cmd_reset_fetch_state)


# The warehouse modules load pyarrow/duckdb: imported by the handler that needs them, so `newsmill --help`
# and the other commands start fast.


def cmd_compact(args) -> int:
    from newsmill.warehouse.compact import compact

    result = compact(existing_warehouse(args.warehouse), table=args.table)
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_delete(args) -> int:
    from newsmill.warehouse.compact import delete_url

    result = delete_url(existing_warehouse(args.warehouse), args.url)
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_publish(args) -> int:
    from newsmill.warehouse.publish import publish

    root = existing_warehouse(args.warehouse)
    try:
        result = publish(root, args.dest, tables=args.table, wait_s=args.wait, views_base=args.views_base)
    except OSError as exc:  # the destination: credentials, network, permissions (pyarrow raises OSError)
        raise NewsmillError(f"publish to {args.dest} failed: {exc}") from exc
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_reset_fetch_state(args) -> int:
    from newsmill.warehouse.store import Warehouse

    run_id = Warehouse(existing_warehouse(args.warehouse)).reset_fetch_state(reason=args.reason)
    print(f"fetch state reset (runs.run_id = {run_id}): the next ingest requests every URL unconditionally")
    return 0
