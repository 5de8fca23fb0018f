"""Further ``newsmill`` commands (warehouse maintenance, reprocessing, WARC import, Prefect serving)."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from newsmill.tasks.errors import NewsmillError


def add_commands(sub, wh_help: str) -> None:
    """Register the further sub-commands on ``sub`` (an argparse sub-parsers object)."""

    def serve_args(s):
        s.add_argument("--config", help="TOML config the deployments default to (default: config/sources.toml)")
        s.add_argument("--warehouse", help=wh_help)
        s.add_argument("--cron", help="cron of the nightly ingest (default: [schedule].cron, 0 2 * * *)")
        s.add_argument("--timezone", help="time zone of the cron (default: [schedule].timezone, UTC)")
        s.add_argument("--limit", type=int, default=None,
                       help="at most this many flow runs at once in this process (default: no cap; "
                            "each deployment runs one at a time anyway)")

    s = sub.add_parser("serve", help="register and serve the Prefect deployments (nightly ingest, "
                       "reprocess, compact) against $PREFECT_API_URL")
    serve_args(s)
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("ui", help="start a local Prefect server + UI on 127.0.0.1 and serve the deployments")
    serve_args(s)
    s.add_argument("--port", type=int, default=4200, help="port of the API and UI (default: 4200)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1; see the README before exposing it)")
    s.set_defaults(func=cmd_ui)

    s = sub.add_parser("compact", help="merge small Parquet files of the warehouse")
    s.add_argument("--table", help="only this table (default: all)")
    s.add_argument("--warehouse", help=wh_help)
    s.set_defaults(func=cmd_compact)

    s = sub.add_parser("delete", help="delete every stored row of one URL from the warehouse")
    s.add_argument("--url", required=True, help="the article/page URL to delete")
    s.add_argument("--warehouse", help=wh_help)
    s.set_defaults(func=cmd_delete)

    _add_reprocess_commands(sub, wh_help)

    s = sub.add_parser("publish", help="mirror a consistent snapshot of the warehouse to a filesystem/object "
                       "store URI (s3://, gs://, abfs://, file://, fsspec schemes) for remote readers")
    s.add_argument("dest", metavar="DEST_URI", help="destination, e.g. s3://bucket/newsmill or file:///mnt/share/nm")
    s.add_argument("--warehouse", help=wh_help)
    s.add_argument("--table", action="append", metavar="T", help="only this table (repeatable; default: all)")
    s.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                   help="wait up to this long for a running writer to release the lock (default: fail at once)")
    s.add_argument("--views-base", metavar="URL",
                   help="base URL the published views.sql reads (default: DEST_URI without its query string)")
    s.set_defaults(func=cmd_publish)

    s = sub.add_parser("reset-fetch-state", help="forget stored ETag/Last-Modified: the next ingest fetches "
                       "every URL unconditionally (recorded in runs)")
    s.add_argument("--warehouse", help=wh_help)
    s.add_argument("--reason", default="", help="why (kept in the runs table)")
    s.set_defaults(func=cmd_reset_fetch_state)


# ---------------------------------------------------------------------------------------------- commands


def cmd_serve(args) -> int:
    from newsmill.flows.serve import serve_deployments

    _require_api()
    serve_deployments(args.config, args.warehouse, args.cron, args.timezone, limit=args.limit)
    return 0


def _require_api() -> None:
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise NewsmillError("PREFECT_API_URL is not set: start a server (newsmill ui, or prefect server "
                            "start) and export PREFECT_API_URL=http://127.0.0.1:4200/api")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def server_env(host: str, port: int, *, home: str | os.PathLike | None = None,
               base: dict | None = None) -> dict:
    """Environment for a ``prefect server start`` on host:port and for its clients (API URL, the port
    the UI is told to use, analytics off; ``PREFECT_HOME`` when given)."""
    client_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url_host = f"[{client_host}]" if ":" in client_host else client_host
    env = dict(os.environ if base is None else base)
    env.update({
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),  # also what the UI is told to talk to
        "PREFECT_API_URL": f"http://{url_host}:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "true",
        "DO_NOT_TRACK": "1",
    })
    if home is not None:
        env["PREFECT_HOME"] = str(home)
    return env


def start_server(host: str, port: int, *, timeout: float = 90.0, log_path: Path | None = None,
                 env: dict | None = None):
    """Start ``prefect server start`` on host:port with ``env`` (default: ``server_env(host, port)``);
    returns (process, api_url) once healthy. The one place newsmill, its tests and benchmarks start a
    Prefect server."""
    import httpx

    if not _port_free(host, port):
        raise NewsmillError(f"port {port} on {host} is in use (another Prefect server? try --port)")
    env = env or server_env(host, port)
    api_url = env["PREFECT_API_URL"]
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    prefect_exe = Path(sys.executable).with_name("prefect")
    cmd = ([str(prefect_exe)] if prefect_exe.exists() else [sys.executable, "-m", "prefect"])
    proc = subprocess.Popen([*cmd, "server", "start", "--host", host, "--port", str(port)], env=env,
                            stdout=out, stderr=subprocess.STDOUT if log_path else None,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return proc, api_url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise NewsmillError(f"prefect server exited with status {proc.returncode} before answering")
        if time.monotonic() > deadline:
            stop_server(proc)
            raise NewsmillError(f"prefect server did not answer on {api_url} within {timeout:.0f} s")
        time.sleep(0.5)


def stop_server(proc) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def cmd_ui(args) -> int:
    from newsmill.flows.serve import build_deployments

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
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from newsmill.flows.serve import serve_deployments

        with temporary_settings({PREFECT_API_URL: api_url}):
            serve_deployments(args.config, args.warehouse, args.cron, args.timezone, limit=args.limit)
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(proc)
    return 0


def cmd_compact(args) -> int:
    from newsmill.flows.ingest import resolve_warehouse
    from newsmill.warehouse.compact import compact

    root = resolve_warehouse(args.warehouse)
    result = compact(root, table=args.table)
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_delete(args) -> int:
    from newsmill.flows.ingest import resolve_warehouse
    from newsmill.warehouse.compact import delete_url

    root = resolve_warehouse(args.warehouse)
    result = delete_url(root, args.url)
    print(json.dumps(result, indent=2, default=str))
    return 0


def _lazy(module: str, name: str):
    """A command function imported on use, so `newsmill --help` and light commands don't load Prefect."""
    def run(args):
        import importlib

        return getattr(importlib.import_module(module), name)(args)

    return run


def _add_reprocess_commands(sub, wh_help: str) -> None:
    """``reprocess`` and ``import-warc`` (implemented in ``flows.reprocess`` / ``flows.import_warc``)."""
    s = sub.add_parser("reprocess", help="re-clean and re-extract archived raw pages with the current rules "
                       "(no network)")
    s.add_argument("--warehouse", help=wh_help)
    s.add_argument("--since", metavar="DATE", help="only pages fetched on/after this date (YYYY-MM-DD)")
    s.add_argument("--until", metavar="DATE", help="only pages fetched up to this date, inclusive")
    s.add_argument("--source", metavar="NAME", help="only pages of this source")
    s.add_argument("--domain", metavar="D", help="only pages of this domain (and its subdomains)")
    s.add_argument("--config", help="TOML config for [extract]/[runner] settings (default: the defaults)")
    s.add_argument("--rules-dir", metavar="DIR", help="boilerplate rules directory (default: config/rules)")
    s.add_argument("--sites-dir", metavar="DIR", help="per-site rules directory (default: config/sites)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_lazy("newsmill.flows.reprocess", "cmd_reprocess"))

    s = sub.add_parser("import-warc", help="import .warc/.warc.gz files (e.g. CC-NEWS) into the warehouse")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--warehouse", help=wh_help)
    s.add_argument("--domain", action="append", metavar="D",
                   help="only records of this host and its subdomains (repeatable)")
    s.add_argument("--since", metavar="DATE", help="only records with WARC-Date on/after this date")
    s.add_argument("--until", metavar="DATE", help="only records with WARC-Date up to this date, inclusive")
    s.add_argument("--source", metavar="NAME", default="warc-import",
                   help="source name for the imported pages (default: warc-import)")
    s.add_argument("--config", help="TOML config for [extract]/[runner] settings (default: the defaults)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_lazy("newsmill.flows.reprocess", "cmd_import_warc"))


def cmd_publish(args) -> int:
    from newsmill.flows.ingest import resolve_warehouse
    from newsmill.warehouse.publish import publish

    root = resolve_warehouse(args.warehouse)
    try:
        result = publish(root, args.dest, tables=args.table, wait_s=args.wait, views_base=args.views_base)
    except OSError as exc:  # the destination: credentials, network, permissions (pyarrow raises OSError)
        raise NewsmillError(f"publish to {args.dest} failed: {exc}") from exc
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_reset_fetch_state(args) -> int:
    from newsmill.flows.ingest import resolve_warehouse
    from newsmill.warehouse.store import Warehouse

    root = resolve_warehouse(args.warehouse)
    run_id = Warehouse(root).reset_fetch_state(reason=args.reason)
    print(f"fetch state reset (runs.run_id = {run_id}): the next ingest requests every URL unconditionally")
    return 0
