"""What a run reports: the run summary (``runs.counts``), Prefect artifacts (per-source table, markdown
report, progress) and the terminal progress bar. Shared by the ingest, reprocess and import_warc flows.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from prefect import get_run_logger

from newsmill.tasks.records import PageLogEntry

# Terminal progress listeners (the CLI registers a progress bar here); called as fn(event, **info).
PROGRESS_LISTENERS: list[Callable[..., None]] = []


def notify(event: str, **info) -> None:
    for fn in list(PROGRESS_LISTENERS):
        try:
            fn(event, **info)
        except Exception:  # a broken progress bar must not break a run
            pass


def logger():
    try:
        return get_run_logger()
    except Exception:  # outside a run context (unit tests calling the functions directly)
        import logging

        return logging.getLogger("newsmill")


@dataclass
class RunSummary:
    run_id: str
    started_at: datetime
    finished_at: datetime | None = None
    per_source: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    outcomes: Counter = field(default_factory=Counter)
    boilerplate: Counter = field(default_factory=Counter)
    timings: Counter = field(default_factory=Counter)
    deferred_hosts: set[str] = field(default_factory=set)
    batches_skipped: int = 0

    def add_pages(self, source: str, pages: list[PageLogEntry]) -> None:
        for p in pages:
            self.outcomes[p.outcome] += 1
            c = self.per_source[source]
            if p.kind == "article":
                c["fetched"] += 1
                if p.outcome == "not_modified":
                    c["not_modified"] += 1
                elif p.outcome != "ok":
                    c[f"failed:{p.outcome}"] += 1

    def counts(self) -> dict:
        wall = ((self.finished_at or datetime.now(timezone.utc)) - self.started_at).total_seconds()
        fetched = sum(c["fetched"] for c in self.per_source.values())
        return {
            "sources": {k: dict(v) for k, v in sorted(self.per_source.items())},
            "outcomes": dict(self.outcomes),
            "articles_written": sum(c["articles_written"] for c in self.per_source.values()),
            "boilerplate": dict(self.boilerplate),
            "pages_fetched": fetched,
            "wall_s": round(wall, 3),
            "pages_per_s": round(fetched / wall, 2) if wall > 0 else None,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "deferred_hosts": sorted(self.deferred_hosts),
            "batches_skipped_resume": self.batches_skipped,
        }


class FlowProgress:
    """Progress for the terminal bar (``PROGRESS_LISTENERS``, events ``progress``) and a Prefect
    progress artifact (updated at most every ``every_s`` seconds: each update is an API call)."""

    def __init__(self, total: int | None, key: str, description: str, every_s: float = 1.0):
        self.total = total
        self.done = 0
        self.every_s = every_s
        self._last = 0.0
        self.artifact_id = None
        try:
            from prefect.artifacts import create_progress_artifact

            self.artifact_id = create_progress_artifact(0.0, key=key, description=description)
        except Exception:
            self.artifact_id = None

    def advance(self, n: int) -> None:
        self.update(self.done + n)

    def update(self, done: int, *, force: bool = False) -> None:
        self.done = done
        notify("progress", done=self.done, total=self.total)
        now = time.monotonic()
        if self.artifact_id is None or (not force and now - self._last < self.every_s):
            return
        self._last = now
        pct = 100.0 * self.done / self.total if self.total else 100.0
        try:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self.artifact_id, max(0.0, min(100.0, pct)))
        except Exception:
            self.artifact_id = None


def summary_artifacts(summary: RunSummary, flow_name: str, extra: dict | None = None,
                      rows: list[dict] | None = None) -> None:
    """Table (per source) + markdown report artifacts for a run page, keyed by flow (best effort)."""
    try:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact
    except ImportError:  # pragma: no cover
        return
    counts = summary.counts()
    if rows is None:
        rows = [{"source": name, **{k: v for k, v in sorted(c.items())}}
                for name, c in counts["sources"].items()]
    try:
        if rows:
            create_table_artifact(rows, key=f"{flow_name.replace('_', '-')}-summary",
                                  description=f"newsmill {flow_name}: per source")
        bp = ", ".join(f"{k}: {v}" for k, v in sorted(summary.boilerplate.items())) or "none"
        md = (f"# newsmill {flow_name} `{summary.run_id}`\n\n"
              f"* wall time: **{counts['wall_s']} s**\n"
              f"* articles written: **{counts['articles_written']}**\n"
              f"* outcomes: {json.dumps(counts['outcomes'])}\n"
              f"* boilerplate removed by kind: {bp}\n"
              f"* stage time (s): {json.dumps(counts['timings_s'])}\n")
        for k, v in (extra or {}).items():
            md += f"* {k}: {json.dumps(v, default=str)}\n"
        create_markdown_artifact(md, key=f"{flow_name.replace('_', '-')}-report",
                                 description=f"newsmill {flow_name} report")
    except Exception as exc:  # artifacts are a view, never a reason to fail a run
        logger().warning("could not create run artifacts: %s", exc)


class ProgressBar:
    """A rich progress bar on the terminal fed by the flow's ``progress`` events (``flows.ingest``
    listeners); ``unit="bytes"`` shows sizes and a transfer rate (WARC import)."""

    def __init__(self, enabled: bool, description: str, unit: str = "pages"):
        import sys

        self.enabled = enabled and sys.stderr.isatty()
        self.description = description
        self.unit = unit
        self.progress = None
        self.task = None

    def __enter__(self):
        if not self.enabled:
            return self
        from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TimeElapsedColumn,
                                   TransferSpeedColumn)

        cols = [DownloadColumn(), TransferSpeedColumn()] if self.unit == "bytes" else [MofNCompleteColumn()]
        self.progress = Progress("[progress.description]{task.description}", BarColumn(), *cols,
                                 TimeElapsedColumn(), transient=False)
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=None)
        PROGRESS_LISTENERS.append(self._on_event)
        return self

    def _on_event(self, event, **info):
        if event == "discovered":
            self.progress.update(self.task, total=info["total"])
        elif event == "progress":
            self.progress.update(self.task, completed=info["done"], total=info["total"])

    def __exit__(self, *exc):
        if self.progress is not None:
            PROGRESS_LISTENERS.remove(self._on_event)
            self.progress.stop()
        return False
