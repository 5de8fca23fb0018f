"""The ``compact`` flow: merge a warehouse table's small Parquet files (``warehouse.compact``).

Unscheduled; served as deployment ``compact/compact`` by ``newsmill serve`` so it can be started from the
Prefect UI, and runnable directly with ``newsmill compact``.
"""

from __future__ import annotations

import json

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from newsmill.tasks.config import resolve_warehouse
from newsmill.warehouse.compact import compact as compact_tables


@flow(name="compact", log_prints=True,
      description="Compact the warehouse: merge small Parquet files of one table (or all tables).")
def compact(warehouse: str | None = None, table: str | None = None) -> dict:
    """Compact the warehouse.

    Args:
        warehouse: warehouse directory (default: $NEWSMILL_WAREHOUSE or data/).
        table: only this table (default: all tables).
    """
    root = resolve_warehouse(warehouse)
    result = compact_tables(root, table=table)
    try:
        get_run_logger().info("compacted %s: %s", root, json.dumps(result, default=str))
    except Exception:  # outside a run context
        pass
    try:
        create_markdown_artifact(f"# newsmill compact\n\n```json\n{json.dumps(result, indent=2, default=str)}\n```\n",
                                 key="compact-report", description="newsmill compact result")
    except Exception:
        pass
    return result
