"""Prefect deployments of newsmill's flows, served by ``newsmill serve`` / ``newsmill ui``.

Deployments (all tagged ``newsmill``, typed parameters rendered as a form by the UI, at most one
running run each — a second run waits in ``AwaitingConcurrencySlot``):

* ``ingest/nightly`` — cron from ``[schedule]`` (default ``0 2 * * *``) in ``[schedule].timezone``;
* ``reprocess/reprocess`` — unscheduled;
* ``import_warc/import-warc`` — unscheduled (paths of WARC files on the serving machine);
* ``compact/compact`` — unscheduled.

Parameter defaults are the ``--config``/``--warehouse`` given to serve. The served ``ingest`` runs with the
task runner of the serve-time config (``[runner]``), via the entrypoint ``flows.serve.served_ingest``.

Zombie runs: a flow-run process killed with SIGKILL (OOM killer, power loss, ``kill -9`` of the serve
process) stays *Running* in Prefect. Its deployment concurrency slot is a lease that the flow engine
renews every few minutes, so the server revokes it on its own within ~5 minutes; the run itself,
though, would stay Running forever. ``newsmill serve`` therefore (1) on startup marks Running/Pending
runs of its deployments whose last ``prefect.flow-run.heartbeat`` event is older than the zombie window
as Crashed, and (2) installs a Prefect automation ``newsmill-zombie-runs`` that does the same while the
server runs (a proactive trigger on missing heartbeats, the recipe from Prefect's docs).
"""

from __future__ import annotations

import inspect
import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect import get_client, serve
from prefect.client.schemas.filters import (DeploymentFilter, DeploymentFilterTags, FlowRunFilter,
                                            FlowRunFilterState, FlowRunFilterStateType)
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy, StateType
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import EntrypointType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.schedules import Cron
from prefect.settings import get_current_settings
from prefect.states import Crashed

from newsmill.flows.engine import default_task_runner
from newsmill.flows.import_warc import import_warc
from newsmill.flows.ingest import ingest
from newsmill.flows.maintenance import compact
from newsmill.flows.reprocess import reprocess
from newsmill.tasks.config import load_settings, resolve_warehouse
from newsmill.tasks.errors import ConfigError

log = logging.getLogger("newsmill.serve")

TAGS = ["newsmill"]
NIGHTLY = "nightly"
SERVE_CONFIG_ENV = "NEWSMILL_SERVE_CONFIG"
ZOMBIE_AUTOMATION = "newsmill-zombie-runs"
ZOMBIE_AFTER_ENV = "NEWSMILL_ZOMBIE_AFTER_S"


# ---------------------------------------------------------------------------------------------- flows


def _served_settings():
    return load_settings(os.environ.get(SERVE_CONFIG_ENV) or None)


def served_flow(settings=None):
    """The ``ingest`` flow with the task runner of ``settings.runner`` (threads cap or Dask)."""
    settings = settings if settings is not None else _served_settings()
    return ingest.with_options(task_runner=default_task_runner(settings))


def __getattr__(name: str):
    # ``flows.serve.served_ingest`` is the served deployment's entrypoint: the runner re-imports it in
    # the flow-run subprocess, where it is built from the serve-time config ($NEWSMILL_SERVE_CONFIG).
    if name == "served_ingest":
        return served_flow()
    raise AttributeError(name)


def _defaults_for(flow, values: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``values`` that are parameters of ``flow`` (and not None)."""
    params = inspect.signature(flow.fn).parameters
    return {k: v for k, v in values.items() if k in params and v is not None}


# ---------------------------------------------------------------------------------------------- deployments


def schedule_for(cron: str, tz: str):
    """A Prefect cron schedule in ``tz`` (a bare cron string would be UTC); ConfigError if invalid."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"schedule.timezone: unknown time zone {tz!r}") from None
    try:
        CronSchedule(cron=cron, timezone=tz)
    except Exception:
        raise ConfigError(f"schedule.cron: invalid cron expression {cron!r}") from None
    return Cron(cron, timezone=tz)


def build_deployments(config: str | None = None, warehouse: str | None = None, cron: str | None = None,
                      tz: str | None = None) -> list:
    """The RunnerDeployments to serve (not yet registered)."""
    settings = load_settings(config)  # validates the config now, one-line error
    config_abs = str(Path(config).expanduser().resolve()) if config else None
    root = str(resolve_warehouse(warehouse))
    cron = cron or settings.schedule.cron
    tz = tz or settings.schedule.timezone
    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    common = dict(concurrency_limit=one_at_a_time, enforce_parameter_schema=True,
                  entrypoint_type=EntrypointType.MODULE_PATH)

    ingest_flow = served_flow(settings)
    nightly = ingest_flow.to_deployment(
        NIGHTLY,
        schedule=schedule_for(cron, tz),
        parameters=_defaults_for(ingest_flow, {"config": config_abs, "warehouse": root}),
        description=(f"Nightly ingest of the configured sources ({cron}, {tz}). "
                     f"Config: {config_abs or 'config/sources.toml'}; warehouse: {root}. "
                     "Retrying a failed or crashed run resumes it: batches already stored are skipped."),
        tags=[*TAGS, "ingest", "nightly"],
        **common,
    )
    nightly.entrypoint = "newsmill.flows.serve.served_ingest"
    deployments = [nightly]
    both = {"config": config_abs, "warehouse": root}
    unscheduled = (  # flow, deployment name, parameter defaults, description, extra tags
        (reprocess, "reprocess", both, "Re-extract stored raw pages (WARC) with the current rules, without "
         f"fetching. Warehouse: {root}.", "reprocess"),
        (import_warc, "import-warc", both, "Import .warc/.warc.gz files (e.g. CC-NEWS) given as paths on the "
         f"serving machine through clean → extract → store. Warehouse: {root}.", "import"),
        (compact, "compact", {"warehouse": root},
         f"Merge small Parquet files of the warehouse {root} (one table or all).", "maintenance"),
    )
    for flow_, name, params, description, tag in unscheduled:
        deployments.append(flow_.to_deployment(name, parameters=_defaults_for(flow_, params),
                                               description=description, tags=[*TAGS, tag], **common))
    return deployments


# ---------------------------------------------------------------------------------------------- zombies


def zombie_after_s() -> float:
    """Seconds without a heartbeat after which a Running run counts as a zombie.

    ``$NEWSMILL_ZOMBIE_AFTER_S`` or three heartbeat intervals (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``,
    default 180 s in Prefect 3.9)."""
    env = os.environ.get(ZOMBIE_AFTER_ENV)
    if env:
        return float(env)
    freq = get_current_settings().flows.heartbeat_frequency or 180
    return 3.0 * freq


def reap_zombies(stale_after_s: float | None = None) -> list[str]:
    """Mark Running/Pending runs of our deployments with no heartbeat for ``stale_after_s`` as Crashed.

    Returns the ids of the runs marked. A run that emitted a heartbeat (or started) within the window is
    left alone, so a run still alive under another serve process is never touched."""
    window = stale_after_s if stale_after_s is not None else zombie_after_s()
    now = datetime.now(timezone.utc)
    since = now - timedelta(seconds=window)
    reaped: list[str] = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                any_=[StateType.RUNNING, StateType.PENDING, StateType.CANCELLING]))),
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=TAGS)),
            limit=200,
        )
        for run in runs:
            started = run.start_time or (run.state.timestamp if run.state else None)
            if started is not None and started > since:
                continue
            events = client.read_events(filter=EventFilter(
                occurred=EventOccurredFilter(since=since, until=now + timedelta(seconds=5)),
                event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
                resource=EventResourceFilter(id=[f"prefect.flow-run.{run.id}"]),
            ), limit=1)
            if events.events:
                continue
            msg = (f"newsmill serve: no heartbeat for {int(window)} s; the run's process is gone "
                   "(killed?). Marked Crashed; retry it to resume.")
            client.set_flow_run_state(run.id, Crashed(message=msg), force=True)
            reaped.append(str(run.id))
            log.warning("flow run %s (%s) was a zombie: marked Crashed", run.name, run.id)
    return reaped


def ensure_zombie_automation(within_s: float | None = None) -> str | None:
    """Create (or replace) the automation that crashes newsmill runs whose heartbeats stopped."""
    within = max(60.0, within_s if within_s is not None else zombie_after_s())
    automation = AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description="Mark newsmill flow runs Crashed when their heartbeats stop (process killed).",
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.id": f"prefect.tag.{TAGS[0]}"},
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"No heartbeat for {int(within)} s: the run's process is gone.")],
    )
    try:
        with get_client(sync_client=True) as client:
            for old in client.read_automations_by_name(ZOMBIE_AUTOMATION):
                client.delete_automation(old.id)
            return str(client.create_automation(automation))
    except Exception as exc:  # automations are a safety net; serving must not depend on them
        log.warning("could not install the zombie-run automation: %s", exc)
        return None


# ---------------------------------------------------------------------------------------------- serve


def serve_deployments(config: str | None = None, warehouse: str | None = None, cron: str | None = None,
                      tz: str | None = None, limit: int | None = None) -> None:
    """Register the deployments and serve them until interrupted (blocking)."""
    deployments = build_deployments(config, warehouse, cron, tz)
    if config:
        os.environ[SERVE_CONFIG_ENV] = str(Path(config).expanduser().resolve())
    else:
        os.environ.pop(SERVE_CONFIG_ENV, None)
    try:
        reaped = reap_zombies()
        if reaped:
            print(f"marked {len(reaped)} zombie run(s) Crashed: {', '.join(reaped)}", flush=True)
    except Exception as exc:
        log.warning("zombie check failed: %s", exc)
    ensure_zombie_automation()
    serve(*deployments, limit=limit)
