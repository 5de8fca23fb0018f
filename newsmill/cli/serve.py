"""``newsmill serve`` (serve the Prefect deployments against ``$PREFECT_API_URL``) and ``newsmill ui`` (the
local Prefect server newsmill manages, ``flows.local_server``, started if needed; then the same)."""

from __future__ import annotations

import os
import sys

from newsmill.cli.common import add_warehouse
from newsmill.tasks.errors import NewsmillError


def _serve_args(s) -> None:
    s.add_argument("--config", help="TOML config the deployments default to (default: config/sources.toml)")
    add_warehouse(s)
    s.add_argument("--cron", help="cron of the nightly ingest (default: [schedule].cron, 0 2 * * *)")
    s.add_argument("--timezone", help="time zone of the cron (default: [schedule].timezone, UTC)")
    s.add_argument("--limit", type=int, default=None,
                   help="at most this many flow runs at once in this process (default: no cap; "
                        "each deployment runs one at a time anyway)")


def add_commands(sub) -> None:
    s = sub.add_parser("serve", help="register and serve the Prefect deployments (nightly ingest, "
                       "reprocess, compact) against $PREFECT_API_URL")
    _serve_args(s)
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("ui", help="open the local Prefect server + UI (started if needed; the one flow "
                       "commands report to) and serve the deployments")
    _serve_args(s)
    s.add_argument("--port", type=int, default=None,
                   help="port of the API and UI when the server starts here (default: $NEWSMILL_SERVER_PORT, "
                        "else 4280)")
    s.add_argument("--host", default=None,
                   help="address to bind when the server starts here (default: 127.0.0.1; see the README "
                        "before exposing it)")
    s.set_defaults(func=cmd_ui)


def _require_api() -> None:
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise NewsmillError("PREFECT_API_URL is not set: run newsmill ui (the local server), or start one "
                            "(newsmill server start) and export the API URL it prints")


def cmd_serve(args) -> int:
    from newsmill.flows.serve import serve_deployments

    _require_api()
    serve_deployments(args.config, args.warehouse, args.cron, args.timezone, limit=args.limit)
    return 0


def cmd_ui(args) -> int:
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    from newsmill.cli.server import warn_exposed
    from newsmill.flows import local_server
    from newsmill.flows.serve import build_deployments, serve_deployments

    build_deployments(args.config, args.warehouse, args.cron, args.timezone)  # fail fast on a bad config
    api_url = get_current_settings().api.url  # an explicit PREFECT_API_URL wins, as for the flow commands
    if api_url:
        if args.port is not None or args.host is not None:
            raise NewsmillError(f"--port/--host: PREFECT_API_URL is set ({api_url}); unset it to use the "
                                "local server, or run newsmill serve against that one")
        ui_url = api_url.removesuffix("/api")
        kept = "the server is yours"
    else:
        if args.host is not None:
            warn_exposed(args.host)
        info, _ = local_server.ensure_running(port=args.port, host=args.host, on_start=lambda ui, home: print(
            f"starting the local Prefect server in the background on {ui} (kept in {home}) ...",
            file=sys.stderr, flush=True))
        api_url, ui_url = info.api_url, info.ui_url
        kept = "the server keeps running (newsmill server stop)"
    print(f"Prefect UI: {ui_url}  (API {api_url}); Ctrl-C stops serving, {kept}", flush=True)
    os.environ["PREFECT_API_URL"] = api_url
    try:
        with temporary_settings({PREFECT_API_URL: api_url}):
            serve_deployments(args.config, args.warehouse, args.cron, args.timezone, limit=args.limit)
    except KeyboardInterrupt:
        pass
    return 0
