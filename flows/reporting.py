"""What a run reports: the typed run info (``IngestInfo``, ``ReprocessInfo``, ``ImportInfo``: stored as
``runs.counts``, printed by the CLI), Prefect artifacts (per-source table, markdown report, progress) and
the terminal progress bar. Shared by the ingest, reprocess and import_warc flows.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from prefect import get_run_logger

from newsmill.tasks.health import report_lines
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


# ---------------------------------------------------------------------------------------------- run info


@dataclass
class SourceInfo:
    """What a run did for one source. ``failed`` counts article pages by ``pages.outcome`` (anything but
    ``ok``/``not_modified``); ``skipped`` counts discovered URLs left out, by reason. In ``runs.counts``
    they are the flat keys ``failed:<outcome>`` / ``skipped:<reason>`` of the source (the stored form)."""

    discovered: int = 0  # ingest
    fetched: int = 0  # ingest, import_warc: article pages (fetched or imported)
    not_modified: int = 0
    archived: int = 0  # reprocess: archived pages selected
    reprocessed: int = 0
    articles_written: int = 0
    articles_unchanged: int = 0  # reprocess
    records_already_imported: int = 0  # import_warc (resume)
    failed: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)

    FIELDS = {  # the scalar fields each flow reports per source
        "ingest": ("discovered", "fetched", "not_modified", "articles_written"),
        "reprocess": ("archived", "reprocessed", "articles_written", "articles_unchanged"),
        "import_warc": ("fetched", "not_modified", "articles_written", "records_already_imported"),
    }

    def asdict(self, flow: str) -> dict:
        out: dict = {k: getattr(self, k) for k in self.FIELDS[flow]}
        out.update({f"failed:{k}": v for k, v in sorted(self.failed.items())})
        out.update({f"skipped:{k}": v for k, v in sorted(self.skipped.items())})
        return out


@dataclass
class RunInfo:
    """What a flow run did (as dlt's ``ExtractInfo``/``LoadInfo``): filled by the batch engine
    (``flows.engine``) and the flow, stored by ``asdict()`` as ``runs.counts`` (JSON), printed by
    ``summary_lines()`` and shown in the run's Prefect artifacts. One subclass per flow."""

    FLOW = ""

    run_id: str
    started_at: datetime
    finished_at: datetime | None = None
    sources: dict[str, SourceInfo] = field(default_factory=dict)
    outcomes: Counter = field(default_factory=Counter)  # every pages row (or re-extraction) by outcome
    boilerplate: Counter = field(default_factory=Counter)  # removals by kind
    timings: Counter = field(default_factory=Counter)  # seconds per stage
    batches_skipped: int = 0  # already stored (resume)
    stories: dict = field(default_factory=dict)  # warehouse.stories.StoriesInfo of the run's end step
    health: list = field(default_factory=list)  # tasks.health.Assessment per source (ingest)

    def source(self, name: str) -> SourceInfo:
        s = self.sources.get(name)
        if s is None:
            s = self.sources[name] = SourceInfo()
        return s

    def add_pages(self, source: str, pages: list[PageLogEntry]) -> None:
        """Count ``pages`` rows: every row by outcome, article rows per source."""
        s = self.source(source)
        for p in pages:
            self.outcomes[p.outcome] += 1
            if p.kind == "article":
                s.fetched += 1
                if p.outcome == "not_modified":
                    s.not_modified += 1
                elif p.outcome != "ok":
                    s.failed[p.outcome] += 1

    def add_batch(self, out, stats) -> None:
        """Count one committed batch (``engine.BatchOutput``, the store's ``BatchStats``)."""
        self.add_pages(out.source, out.pages)
        self.source(out.source).articles_written += stats.new_versions
        self.boilerplate.update(rm.kind for rm in out.removals)

    # -- figures ----------------------------------------------------------------------------------

    @property
    def wall_s(self) -> float:
        return round(((self.finished_at or datetime.now(timezone.utc)) - self.started_at).total_seconds(), 3)

    @property
    def articles_written(self) -> int:
        return sum(s.articles_written for s in self.sources.values())

    @property
    def pages_done(self) -> int:
        """The pages the run's pages/s figure counts."""
        return sum(s.fetched for s in self.sources.values())

    @property
    def pages_per_s(self) -> float | None:
        wall = self.wall_s
        return round(self.pages_done / wall, 2) if wall > 0 else None

    def asdict(self) -> dict:
        """``runs.counts`` (and the flow's JSON summary)."""
        return {
            "sources": {k: v.asdict(self.FLOW) for k, v in sorted(self.sources.items())},
            "outcomes": dict(self.outcomes),
            "articles_written": self.articles_written,
            "boilerplate": dict(self.boilerplate),
            "wall_s": self.wall_s,
            "pages_per_s": self.pages_per_s,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            **({"stories": self.stories} if self.stories else {}),
            **({"health": {a.night.source: {"status": a.status, "reasons": list(a.reasons)} for a in self.health}}
               if self.health else {}),
        }

    # -- views ------------------------------------------------------------------------------------

    def summary_lines(self) -> list[str]:
        """What the CLI prints at the end of the run."""
        return self._boilerplate_line() + self._stories_health_lines()

    def _stories_health_lines(self) -> list[str]:
        out = []
        if self.stories.get("articles"):
            out.append(f"  stories: {self.stories['articles']} article versions assigned, "
                       f"{self.stories['joined']} joined an existing story")
        out += [f"  source {a.night.source}: {a.status.upper()} — {'; '.join(a.reasons)}"
                for a in self.health if a.status in ("degraded", "broken")]
        return out

    def _boilerplate_line(self) -> list[str]:
        if not self.boilerplate:
            return []
        return ["  boilerplate removed: " + ", ".join(f"{k} {v}" for k, v in sorted(self.boilerplate.items()))]

    def table_rows(self) -> list[dict]:
        """The per-source table artifact."""
        return [{"source": name, **c} for name, c in self.asdict()["sources"].items()]

    def report_extra(self) -> dict:
        """Flow-specific lines of the markdown report artifact."""
        return {}


@dataclass
class IngestInfo(RunInfo):
    FLOW = "ingest"

    deferred_hosts: set[str] = field(default_factory=set)

    def add_batch(self, out, stats) -> None:
        super().add_batch(out, stats)
        self.deferred_hosts.update(out.deferred_hosts)

    @property
    def pages_fetched(self) -> int:
        return self.pages_done

    def asdict(self) -> dict:
        d = super().asdict()
        d["pages_fetched"] = self.pages_done
        d["deferred_hosts"] = sorted(self.deferred_hosts)
        d["batches_skipped_resume"] = self.batches_skipped
        return d

    def summary_lines(self) -> list[str]:
        lines = [f"run finished in {self.wall_s} s: {self.pages_done} article pages fetched, "
                 f"{self.articles_written} articles written ({self.pages_per_s} pages/s)"]
        for name, s in sorted(self.sources.items()):
            lines.append(f"  {name}: discovered {s.discovered}, fetched {s.fetched}, not modified {s.not_modified}, "
                         f"articles {s.articles_written}"
                         + (f", failed {dict(sorted(s.failed.items()))}" if s.failed else "")
                         + (f", skipped {dict(sorted(s.skipped.items()))}" if s.skipped else ""))
        lines += self._boilerplate_line()
        if self.deferred_hosts:
            lines.append("  deferred to next run: " + ", ".join(sorted(self.deferred_hosts)))
        return lines

    def table_rows(self) -> list[dict]:
        def joined(c: Counter) -> str:
            return ", ".join(f"{k}={v}" for k, v in sorted(c.items())) or "0"

        return [{"source": name, "discovered": s.discovered, "fetched": s.fetched, "not_modified": s.not_modified,
                 "failed": joined(s.failed), "articles_written": s.articles_written, "skipped": joined(s.skipped)}
                for name, s in sorted(self.sources.items())]

    def report_extra(self) -> dict:
        return {"pages/s": self.pages_per_s, "hosts deferred to next run": sorted(self.deferred_hosts) or "none"}


@dataclass
class ReprocessInfo(RunInfo):
    FLOW = "reprocess"

    extractor_version: str = ""

    def add_batch(self, out, stats) -> None:
        # no pages rows (nothing is fetched): outcomes are the re-extractions'
        super().add_batch(out, stats)
        s = self.source(out.source)
        s.reprocessed += sum(out.outcomes.values())
        s.articles_unchanged += stats.duplicate_versions
        self.outcomes.update(out.outcomes)
        s.failed.update({k: v for k, v in out.outcomes.items() if k != "ok"})

    @property
    def pages_done(self) -> int:
        return sum(s.archived for s in self.sources.values())

    @property
    def pages_reprocessed(self) -> int:
        return self.pages_done

    @property
    def articles_unchanged(self) -> int:
        return sum(s.articles_unchanged for s in self.sources.values())

    def asdict(self) -> dict:
        d = super().asdict()
        d["pages_reprocessed"] = self.pages_done
        d["articles_unchanged"] = self.articles_unchanged
        d["extractor_version"] = self.extractor_version
        d["network_requests"] = 0
        return d

    def summary_lines(self) -> list[str]:
        lines = [f"reprocess finished in {self.wall_s} s: {self.pages_done} archived pages, "
                 f"{self.articles_written} new article versions, {self.articles_unchanged} unchanged "
                 f"({self.pages_per_s} pages/s, extractor {self.extractor_version}, no network)"]
        bad = {k: v for k, v in self.outcomes.items() if k != "ok"}
        if bad:
            lines.append("  not re-extracted: " + ", ".join(f"{k} {v}" for k, v in sorted(bad.items())))
        return lines + self._boilerplate_line()

    def report_extra(self) -> dict:
        return {"extractor_version": self.extractor_version, "pages_reprocessed": self.pages_done}


@dataclass
class ImportInfo(RunInfo):
    FLOW = "import_warc"

    source_name: str = "warc-import"
    files: list[str] = field(default_factory=list)
    bytes_read: int = 0
    records: Counter = field(default_factory=Counter)  # every WARC record, by what became of it

    @property
    def pages_imported(self) -> int:
        return self.pages_done

    @property
    def mb_per_s(self) -> float | None:
        wall = self.wall_s
        return round(self.bytes_read / 1e6 / wall, 2) if wall > 0 else None

    def asdict(self) -> dict:
        d = super().asdict()
        s = self.sources.get(self.source_name) or SourceInfo()
        d.update({"batches_skipped_resume": self.batches_skipped, "files": list(self.files),
                  "bytes_read": self.bytes_read, "pages_imported": self.pages_done, "mb_per_s": self.mb_per_s,
                  "records": dict(sorted(self.records.items())), "skipped": dict(sorted(s.failed.items())),
                  "records_already_imported": s.records_already_imported})
        return d

    def summary_lines(self) -> list[str]:
        s = self.sources.get(self.source_name) or SourceInfo()
        lines = [f"import finished in {self.wall_s} s: {self.pages_done} response records imported, "
                 f"{self.articles_written} articles written ({self.pages_per_s} pages/s, {self.mb_per_s} MB/s)"]
        if s.failed:
            lines.append("  skipped (pages rows): " + ", ".join(f"{k} {v}" for k, v in sorted(s.failed.items())))
        other = {k: v for k, v in sorted(self.records.items()) if k.startswith(("skipped:", "filtered:"))}
        if other:
            lines.append("  other records: " + ", ".join(f"{k} {v}" for k, v in other.items()))
        if self.batches_skipped:
            lines.append(f"  already imported: {self.batches_skipped} batches "
                         f"({s.records_already_imported} records) skipped")
        return lines

    def report_extra(self) -> dict:
        return {"files": list(self.files), "records": dict(sorted(self.records.items())),
                "batches_skipped_resume": self.batches_skipped}


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


def summary_artifacts(info: RunInfo) -> None:
    """Table (per source) + markdown report artifacts for a run page, keyed by flow (best effort)."""
    try:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact
    except ImportError:  # pragma: no cover
        return
    flow_name = info.FLOW
    key = flow_name.replace("_", "-")
    try:
        rows = info.table_rows()
        if rows:
            create_table_artifact(rows, key=f"{key}-summary", description=f"newsmill {flow_name}: per source")
        bp = ", ".join(f"{k}: {v}" for k, v in sorted(info.boilerplate.items())) or "none"
        health = "\n".join(report_lines(info.health))
        md = (f"# newsmill {flow_name} `{info.run_id}`\n\n" + (health + "\n" if health else "") +
              f"* wall time: **{info.wall_s} s**\n"
              f"* articles written: **{info.articles_written}**\n"
              f"* outcomes: {json.dumps(dict(info.outcomes))}\n"
              f"* boilerplate removed by kind: {bp}\n"
              f"* stage time (s): {json.dumps({k: round(v, 3) for k, v in info.timings.items()})}\n")
        for k, v in info.report_extra().items():
            md += f"* {k}: {json.dumps(v, default=str)}\n"
        create_markdown_artifact(md, key=f"{key}-report", description=f"newsmill {flow_name} report")
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
