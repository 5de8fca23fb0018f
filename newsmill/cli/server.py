"""``newsmill server start|stop|status``: the local Prefect server the flow commands report to
(``flows.local_server``; no Prefect import)."""

from __future__ import annotations

import sys


def add_commands(sub) -> None:
    s = sub.add_parser("server", help="the local Prefect server that ingest/reprocess/import-warc/demo runs "
                       "report to (started on first use): start, stop, status")
    ssub = s.add_subparsers(dest="server_command", metavar="ACTION")
    ssub.required = True
    a = ssub.add_parser("start", help="start it in the background (nothing to do when it runs)")
    a.add_argument("--port", type=int, default=None,
                   help="port of the API and UI (default: $NEWSMILL_SERVER_PORT, else 4280)")
    a.add_argument("--host", default=None,
                   help="address to bind (default: 127.0.0.1; see the README before exposing it)")
    a.add_argument("--warm-only", action="store_true",
                   help="start only the warm runner of this shell's environment (for a shell whose PREFECT_API_URL "
                        "points at a Prefect server of your own)")
    a.set_defaults(func=cmd_server_start)
    a = ssub.add_parser("stop", help="stop it and the warm runners (and their child processes)")
    a.set_defaults(func=cmd_server_stop)
    a = ssub.add_parser("status", help="URL, pid, uptime, database and log of the running server")
    a.set_defaults(func=cmd_server_status)


def _uptime(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + (f"{h}h " if d or h else "") + f"{m}m {s}s"


def _describe(info) -> str:
    return (f"Prefect server: {info.ui_url} (API {info.api_url}), pid {info.pid}, up {_uptime(info.uptime_s)}\n"
            f"  database and log: {info.home} (server.log)")


def cmd_server_start(args) -> int:
    from newsmill.cli import warm
    from newsmill.flows import local_server
    from newsmill.tasks.errors import NewsmillError

    if args.warm_only:
        if not warm.enabled():
            raise NewsmillError(f"--warm-only: warm runners are off ({warm.SWITCH_ENV}=0)")
    else:
        if args.host and args.host != local_server.DEFAULT_HOST:
            warn_exposed(args.host)
        info, started = local_server.ensure_running(
            port=args.port, host=args.host,
            on_start=lambda url, home: print(f"starting the local Prefect server on {url} (database and log "
                                             f"in {home}) ...", file=sys.stderr, flush=True))
        print(("started " if started else "already running: ") + _describe(info))
    if warm.enabled():
        print("starting the warm runner of this environment ...", file=sys.stderr, flush=True)
        runner, started = warm.start()
        if runner is None:
            print(f"newsmill: warning: the warm runner did not start (its log: {warm.runner_dir()}); flow "
                  "commands run in their own process", file=sys.stderr)
            if args.warm_only:
                return 1
        else:
            print(("started " if started else "already running: ") + _describe_runner(runner))
    print("stop it with: newsmill server stop")
    return 0


def cmd_server_stop(args) -> int:
    from newsmill.cli import warm
    from newsmill.flows import local_server

    for runner in warm.stop_all():
        print(f"stopped the warm runner (pid {runner.get('pid')}, {runner.get('runs', 0)} runs served)")
    info = local_server.stop()
    if info is None:
        print("no local Prefect server running")
    else:
        print(f"stopped the local Prefect server (pid {info.pid}, {info.ui_url})")
    return 0


def cmd_server_status(args) -> int:
    from newsmill.cli import warm
    from newsmill.flows import local_server

    info = local_server.status()
    runners = warm.running()
    for runner in runners:
        print(_describe_runner(runner))
    if info is None:
        print(f"no local Prefect server running (home {local_server.server_dir()}); "
              "flow commands start one on first use")
        return 1
    print(_describe(info))
    return 0


def _describe_runner(r) -> str:
    import time

    return (f"warm runner: pid {r.get('pid')}, up {_uptime(time.time() - r.get('started_at', time.time()))}, "
            f"{r.get('runs', 0)} runs served, key {r.get('key')} (flow commands from the environment it was "
            f"started in start warm)\n  log: {r.get('log')}")


def warn_exposed(host: str) -> None:
    import ipaddress
    import os

    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not os.environ.get("PREFECT_SERVER_API_AUTH_STRING"):
        print("newsmill: warning: binding the Prefect UI/API to a non-loopback address without "
              "PREFECT_SERVER_API_AUTH_STRING: anyone who can reach it can start runs. "
              "See the README (Serving: exposing the UI).", file=sys.stderr)
