"""``newsmill serve`` (serve the Prefect deployments against ``$PREFECT_API_URL``) and ``newsmill ui`` (a
local Prefect server + UI, then the same)."""

from __future__ import annotations

import ipaddress
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

    s = sub.add_parser("ui", help="start a local Prefect server + UI on 127.0.0.1 and serve the deployments")
    _serve_args(s)
    s.add_argument("--port", type=int, default=4200, help="port of the API and UI (default: 4200)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1; see the README before exposing it)")
    s.set_defaults(func=cmd_ui)


def _require_api() -> None:
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise NewsmillError("PREFECT_API_URL is not set: start a server (newsmill ui, or prefect server "
                            "start) and export PREFECT_API_URL=http://127.0.0.1:4200/api")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cmd_serve(args) -> int:
    from newsmill.flows.serve import serve_deployments

    _require_api()
    serve_deployments(args.config, args.warehouse, args.cron, args.timezone, limit=args.limit)
    return 0


def cmd_ui(args) -> int:
    from newsmill.flows.serve import build_deployments, serve_deployments
    from newsmill.flows.server import start_server, stop_server

    build_deployments(args.config, args.warehouse, args.cron, args.timezone)  # fail fast on a bad config
    if not _is_loopback(args.host) and not os.environ.get("PREFECT_SERVER_API_AUTH_STRING"):
        print("newsmill: warning: binding the Prefect UI/API to a non-loopback address without "
              "PREFECT_SERVER_API_AUTH_STRING: anyone who can reach it can start runs. "
              "See the README (Serving: exposing the UI).", file=sys.stderr)
    proc, api_url = start_server(args.host, args.port)
    ui_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"Prefect UI: http://{ui_host}:{args.port}  (API {api_url}); Ctrl-C stops the server", flush=True)
    os.environ["PREFECT_API_URL"] = api_url
    try:
        from prefect.settings import PREFECT_API_URL, temporary_settings  # after PREFECT_API_URL is set

        with temporary_settings({PREFECT_API_URL: api_url}):
            serve_deployments(args.config, args.warehouse, args.cron, args.timezone, limit=args.limit)
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(proc)
    return 0
