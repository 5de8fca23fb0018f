"""Source health of an ingest run, where people look: a ``source_health`` table artifact, the lines that
lead the run report (with 14-night sparklines), a log line per source, and a Prefect event per degraded or
broken source (``newsmill.source.degraded`` / ``newsmill.source.broken``) that an automation can route to
email, Slack or a webhook. The flow run itself still completes."""

from __future__ import annotations

from datetime import datetime

from newsmill.flows.reporting import logger
from newsmill.tasks.config import Settings
from newsmill.tasks.health import Assessment, percent

__all__ = ["check_sources", "EVENT_PREFIX"]

EVENT_PREFIX = "newsmill.source"


def check_sources(writer, run_id: str, started_at: datetime, discovered: dict[str, int],
                  settings: Settings) -> list[Assessment]:
    """Assess, store, log, emit events and create the health table artifact; never fails the run."""
    from newsmill.warehouse.health import assess_run

    log = logger()
    try:
        assessments = assess_run(writer, run_id, started_at, discovered, settings.health)
    except Exception as exc:  # noqa: BLE001 - health is a report, never a reason to fail a run
        log.warning("source health not assessed: %s: %s", type(exc).__name__, exc)
        return []
    for a in assessments:
        n = a.night
        line = (f"source {n.source}: {a.status} — discovered {n.discovered}, fetched {n.fetched}, "
                f"articles {n.articles}" + (f"; {'; '.join(a.reasons)}" if a.reasons else ""))
        (log.warning if a.status in ("degraded", "broken") else log.info)(line)
        if a.status in ("degraded", "broken"):
            _emit(a, run_id)
    _artifact(assessments)
    return assessments


def _emit(a: Assessment, run_id: str) -> None:
    try:
        from prefect.events import emit_event

        n = a.night
        emit_event(
            event=f"{EVENT_PREFIX}.{a.status}",
            resource={"prefect.resource.id": f"{EVENT_PREFIX}.{n.source}", "prefect.resource.name": n.source,
                      "newsmill.status": a.status},
            payload={"source": n.source, "status": a.status, "reasons": list(a.reasons), "run_id": run_id,
                     "night": n.night.isoformat(), "articles": n.articles, "fetched": n.fetched,
                     "discovered": n.discovered},
        )
    except Exception as exc:  # noqa: BLE001
        logger().warning("could not emit the %s event for %s: %s", a.status, a.night.source, exc)


def _artifact(assessments: list[Assessment]) -> None:
    try:
        from prefect.artifacts import create_table_artifact

        rows = [{"source": a.night.source, "status": a.status, "articles": a.night.articles,
                 "median articles": a.medians.get("articles"), "fetched ok": percent(a.night.ok_share),
                 "no article": percent(a.night.no_article_share), "authors": percent(a.night.authors_share),
                 "dates": percent(a.night.published_share), "copyright": percent(a.night.copyright_share),
                 "median text": a.night.median_text_chars, "reasons": "; ".join(a.reasons)}
                for a in assessments]
        if rows:
            create_table_artifact(rows, key="source-health", description="newsmill: source health tonight")
    except Exception as exc:  # noqa: BLE001
        logger().warning("could not create the source health artifact: %s", exc)
