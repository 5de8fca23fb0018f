"""The ``newsmill`` command line (``newsmill ...`` or ``python -m newsmill ...``).

One module per group of commands; each has ``add_commands(sub)`` registering its sub-commands and the
``cmd_*`` handlers they run. Handlers import the flows they start inside the function: ``newsmill --help``
and the light commands (``extract``, ``sql``, ``compact``, ``delete``, ``publish``,
``reset-fetch-state``) never load Prefect. Flows never import this package.

Every command has ``--help``. Errors a user can fix (bad config, locked or unwritable warehouse, unsafe
SQL) print one line on stderr and exit non-zero; they never show a traceback.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys

from newsmill.cli import extract, maintenance, reprocess, run, serve, server, sql, stories
from newsmill.cli import warm
from newsmill.tasks.errors import NewsmillError

__all__ = ["build_parser", "main"]


def _die(msg: str, code: int = 2) -> int:
    print(f"newsmill: error: {msg}", file=sys.stderr)
    return code


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="newsmill", description="Batch news ingestion: discover, fetch, "
                                "clean, extract and store news articles as Parquet; query with DuckDB.")
    p.add_argument("-v", "--verbose", action="store_true", help="show Prefect's INFO logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # the order of `newsmill --help`
    run.add_ingest(sub)
    extract.add_commands(sub)
    sql.add_commands(sub)
    run.add_demo(sub)
    serve.add_commands(sub)
    server.add_commands(sub)
    maintenance.add_compact_delete(sub)
    reprocess.add_commands(sub)
    maintenance.add_publish_reset(sub)
    stories.add_commands(sub)
    return p


def _prefect_defaults(verbose: bool) -> None:
    """Quiet, private defaults for Prefect in a terminal run (explicit settings in the environment win):
    no analytics; the terminal shows warnings and errors only, unless ``--verbose`` (the progress bar and
    summary report the run), while the run's INFO logs still reach the Prefect API and so the UI.
    ``PREFECT_LOGGING_LEVEL`` would filter the API handler too, so only the *console handler's* level is
    raised (every child process — served runs, extraction workers — inherits the same split)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")


_exit_code: int | None = None  # the finished command's exit code (set by main() run as the program)


def _exit_now() -> None:
    """The last exit handler of the ``newsmill`` process (registered first, so it runs after all others:
    Prefect's log and event drains, logging's flush, the writer lock's release, multiprocessing's cleanup).
    Once the command has returned, what is left of an exit is the interpreter tearing down its modules:
    ~0.3-0.5 s after Prefect was imported (its pydantic models and settings), which every flow command paid
    (~7 % of an all-304 rerun). Everything of the run is written and closed by then, so the process ends
    here with the command's exit code after flushing stdout/stderr. A command that raised, or output that
    cannot be flushed (a closed pipe), takes the normal way out."""
    code = _exit_code
    if code is None:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    program = argv is None  # the console script and ``python -m newsmill``, not a caller passing argv
    if program:
        atexit.register(_exit_now)  # first, so it runs last
    argv = sys.argv[1:] if argv is None else list(argv)
    _prefect_defaults("-v" in argv or "--verbose" in argv)  # before anything imports prefect
    warm.remember_env()
    parser = build_parser()
    args = parser.parse_args(argv)
    rc = warm.hand_off(argv, args.command)  # a warm runner of this environment runs it, if there is one
    if rc is None:
        rc = _run(args)
        _leave_warm_runner(args.command, rc)
    if program and isinstance(rc, int) and 0 <= rc <= 255:
        global _exit_code
        _exit_code = rc
    return rc


def _leave_warm_runner(command: str, rc) -> None:
    """After a flow command typed in a terminal that ran here with the local Prefect server (no
    ``PREFECT_API_URL`` of the user's), start the warm runner of this environment in the background, so the
    next command starts warm
    (``newsmill.cli.warm``; ``newsmill server stop`` stops it with the server, ``NEWSMILL_WARM=0`` turns it off)."""
    if command not in warm.COMMANDS or rc != 0 or warm._in_runner or not warm.enabled():
        return
    try:
        if not sys.stderr.isatty():  # a cron job, CI, a script: nobody types the next command (server start does)
            return
    except (AttributeError, ValueError):
        return
    from newsmill.flows import local_server

    start_env = warm._start_env or {}
    if start_env.get("PREFECT_API_URL") or not local_server.enabled() or local_server.status() is None:
        return
    try:
        pid = warm.spawn()
    except OSError:
        return  # only an optimisation
    if pid is not None:
        print(f"started a warm runner in the background (pid {pid}): later flow commands from this environment "
              "start without importing Prefect and the extraction stack again; newsmill server stop stops it",
              file=sys.stderr)


def _run(args) -> int:
    try:
        return args.func(args)
    except NewsmillError as exc:
        return _die(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exc.exit_code)
    except KeyboardInterrupt:
        return _die("interrupted", 130)
    except BrokenPipeError:
        return 0
