"""Helpers shared by the command modules: the warehouse option, the writability check, the progress bar
and the ingest summary. Nothing here imports Prefect."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from newsmill.tasks.errors import NewsmillError, WarehouseError

WAREHOUSE_HELP = "warehouse directory (default: $NEWSMILL_WAREHOUSE, else data/ in the working directory)"


def add_warehouse(parser) -> None:
    parser.add_argument("--warehouse", help=WAREHOUSE_HELP)


def check_writable(root: Path) -> None:
    """Fail with one line before any flow starts when ``root`` cannot be written or another writer holds
    its lock; else hold the lock from now on (the flow's writer in this process takes it over), so no
    other command can take it before the flow does."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise WarehouseError(f"warehouse {root} is not writable: {exc.strerror or exc}") from None
    from newsmill.warehouse.files import claim_writer_lock  # pyarrow: only for the commands that write

    claim_writer_lock(root)


def progress_bar(enabled: bool, description: str = "fetch + extract", unit: str = "pages"):
    """The terminal progress bar of a run (``flows.reporting.ProgressBar``)."""
    from newsmill.flows.reporting import ProgressBar  # imports Prefect: only for the commands that run flows

    return ProgressBar(enabled, description, unit=unit)


def announce_prefect(settings=None) -> str | None:
    """Point this command's flow run at a Prefect API and say which on one line (stderr); returns its URL
    (None: Prefect's temporary server). Call once Prefect is imported (after the flow modules).

    An explicit ``PREFECT_API_URL`` (environment or Prefect profile) wins; else the local server
    (``flows.local_server``), started in the background on first use and reused by later commands; with
    ``NEWSMILL_LOCAL_SERVER=0``, Prefect's temporary server (~10 s, runs not kept) — refused for a Dask
    run (``settings.runner.task_runner``), whose workers would each start their own and report nowhere."""
    from prefect.settings import get_current_settings

    from newsmill.flows import local_server

    url = get_current_settings().api.url  # $PREFECT_API_URL or the Prefect profile's
    if url:
        _check_dask_reach(settings, url)
        print(f"Prefect API: {url}", file=sys.stderr)
        return url
    if not local_server.enabled():
        if settings is not None and settings.runner.task_runner == "dask":
            raise NewsmillError(f"runner.task_runner = dask needs a Prefect server its workers report to: "
                                f"unset {local_server.SWITCH_ENV} or export PREFECT_API_URL=http://HOST:PORT/api")
        print(f"starting a temporary Prefect server for this run ({local_server.SWITCH_ENV}=0: the run is "
              "not kept)", file=sys.stderr)
        from newsmill.flows.runtime import start_temporary_server

        start_temporary_server()  # here, from the main thread: it then dies with this process
        return None
    _check_dask_reach(settings, None)  # before starting anything
    info, started = local_server.ensure_running(on_start=lambda ui, home: print(
        f"starting a local Prefect server in the background on {ui} (kept in {home}; later commands reuse "
        "it, see the UI there; stop it with: newsmill server stop)", file=sys.stderr, flush=True))
    os.environ["PREFECT_API_URL"] = info.api_url  # this process and its children (served runs, workers)
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()
    if not started:
        print(f"Prefect API: {info.api_url} (local server, UI {info.ui_url})", file=sys.stderr)
    return info.api_url


def _loopback(host: str | None) -> bool:
    import ipaddress

    host = (host or "").strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _check_dask_reach(settings, api_url: str | None) -> None:
    """A Dask run's task runs are reported by the workers, to the flow's API URL (Prefect hands its
    settings to every task). Workers behind a scheduler on another address cannot reach a loopback API
    (``None``: the local server, whose clients use 127.0.0.1): refuse, saying how, rather than run blind."""
    if settings is None or settings.runner.task_runner != "dask" or not settings.runner.dask_address:
        return
    from urllib.parse import urlsplit

    sched = urlsplit(settings.runner.dask_address if "://" in settings.runner.dask_address
                     else f"tcp://{settings.runner.dask_address}").hostname
    if not _loopback(sched) and (api_url is None or _loopback(urlsplit(api_url).hostname)):
        api = f"the Prefect API {api_url}" if api_url else "the local Prefect server"
        raise NewsmillError(f"runner.dask_address {settings.runner.dask_address} is not on this machine but "
                            f"{api} is loopback-only, so its workers cannot report to it: export "
                            "PREFECT_API_URL=http://ADDRESS:PORT/api of a server they reach (newsmill server "
                            "start --host 0.0.0.0, then that machine's address)")


def note_left_running(api_url: str | None) -> None:
    """The last line of a command that used the local Prefect server: it is still running."""
    from newsmill.flows import local_server

    info = local_server.status() if api_url else None
    if info is not None and info.api_url == api_url:
        print(f"\nleft running: the local Prefect server, {info.ui_url} (pid {info.pid}; this run is in its UI); "
              "stop it with: newsmill server stop")


def print_summary(info) -> None:
    """The end-of-run lines of a flow run (``ingest``, ``demo``, ``reprocess``, ``import-warc``): the
    flow's typed run info (``flows.reporting.RunInfo``) says them."""
    for line in info.summary_lines():
        print(line)
