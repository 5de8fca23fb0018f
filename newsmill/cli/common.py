"""Helpers shared by the command modules: the warehouse option, the writability check, the progress bar
and the ingest summary. Nothing here imports Prefect."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from newsmill.tasks.errors import WarehouseError

WAREHOUSE_HELP = "warehouse directory (default: $NEWSMILL_WAREHOUSE, else data/ in the working directory)"


def add_warehouse(parser) -> None:
    parser.add_argument("--warehouse", help=WAREHOUSE_HELP)


def check_writable(root: Path) -> None:
    """Fail with one line before any flow starts when ``root`` cannot be written or another writer holds
    its lock."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise WarehouseError(f"warehouse {root} is not writable: {exc.strerror or exc}") from None
    from newsmill.warehouse.store import Warehouse  # pyarrow: only for the commands that write

    Warehouse(root).ensure_unlocked()


def progress_bar(enabled: bool, description: str = "fetch + extract", unit: str = "pages"):
    """The terminal progress bar of a run (``flows.reporting.ProgressBar``)."""
    from newsmill.flows.reporting import ProgressBar  # imports Prefect: only for the commands that run flows

    return ProgressBar(enabled, description, unit=unit)


def announce_prefect() -> None:
    """Say where the flow run is recorded (a temporary server costs ~10 s to start)."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        print(f"Prefect API: {url}", file=sys.stderr)
    else:
        print("starting a temporary local Prefect server (set PREFECT_API_URL to use a running one, "
              "see `newsmill ui`)", file=sys.stderr)


def print_summary(info) -> None:
    """The end-of-run lines of a flow run (``ingest``, ``demo``, ``reprocess``, ``import-warc``): the
    flow's typed run info (``flows.reporting.RunInfo``) says them."""
    for line in info.summary_lines():
        print(line)
