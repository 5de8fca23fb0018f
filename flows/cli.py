"""The ``newsmill`` command line.

Every command has ``--help``. Errors a user can fix (bad config, locked or unwritable warehouse, unsafe
SQL) print one line on stderr and exit non-zero; they never show a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date, datetime
from pathlib import Path

from newsmill.tasks.errors import NewsmillError


def _die(msg: str, code: int = 2) -> int:
    print(f"newsmill: error: {msg}", file=sys.stderr)
    return code


def _jsonable(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


ARTICLE_JSON_FIELDS = (
    "url", "canonical_url", "domain", "site_name", "title", "authors", "published_at", "modified_at",
    "language", "description", "text", "copyright_holder", "copyright_year", "copyright_notice",
    "license_url", "content_hash", "fetched_at", "run_id", "tags", "image_url", "paywalled",
    "copyright_source", "syndicated", "article_id", "extractor_version",
)


def article_to_json(article) -> dict:
    return {k: _jsonable(getattr(article, k)) for k in ARTICLE_JSON_FIELDS}


# ---------------------------------------------------------------------------------------------- commands


def cmd_ingest(args) -> int:
    from newsmill.tasks.config import load_settings
    from newsmill.tasks.errors import ConfigError

    settings = load_settings(args.config)  # fail fast, one line, before Prefect starts
    settings.select_sources(args.source)  # unknown --source names: ConfigError now
    if not settings.sources:
        raise ConfigError(f"sources: no [[sources]] in {settings.config_path}")
    from newsmill.flows.ingest import default_task_runner, ingest, resolve_warehouse

    root = resolve_warehouse(args.warehouse)
    _check_writable(root)
    if args.task_runner:
        import dataclasses

        settings = dataclasses.replace(settings, runner=dataclasses.replace(
            settings.runner, task_runner=args.task_runner))
    flow = ingest.with_options(task_runner=default_task_runner(settings))
    announce_prefect()
    with _progress_bar(not args.quiet):
        counts = flow(config=args.config, warehouse=str(root), sources=args.source or None,
                      limit=args.limit, refetch=args.refetch)
    _print_summary(counts)
    return 0


def _check_writable(root: Path) -> None:
    from newsmill.tasks.errors import WarehouseError

    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise WarehouseError(f"warehouse {root} is not writable: {exc.strerror or exc}") from None
    from newsmill.warehouse.store import Warehouse

    Warehouse(root).ensure_unlocked()


def _progress_bar(enabled: bool):
    """The terminal progress bar of an ingest (``flows.reporting.ProgressBar``)."""
    from newsmill.flows.reporting import ProgressBar

    return ProgressBar(enabled, "fetch + extract")


def announce_prefect() -> None:
    """Say where the flow run is recorded (a temporary server costs ~10 s to start)."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        print(f"Prefect API: {url}", file=sys.stderr)
    else:
        print("starting a temporary local Prefect server (set PREFECT_API_URL to use a running one, "
              "see `newsmill ui`)", file=sys.stderr)


def _print_summary(counts: dict) -> None:
    print(f"run finished in {counts['wall_s']} s: {counts['pages_fetched']} article pages fetched, "
          f"{counts['articles_written']} articles written ({counts['pages_per_s']} pages/s)")
    for name, c in counts["sources"].items():
        failed = {k.split(":", 1)[1]: v for k, v in c.items() if k.startswith("failed:")}
        skipped = {k.split(":", 1)[1]: v for k, v in c.items() if k.startswith("skipped:")}
        print(f"  {name}: discovered {c.get('discovered', 0)}, fetched {c.get('fetched', 0)}, "
              f"not modified {c.get('not_modified', 0)}, articles {c.get('articles_written', 0)}"
              + (f", failed {failed}" if failed else "") + (f", skipped {skipped}" if skipped else ""))
    if counts.get("boilerplate"):
        print("  boilerplate removed: " + ", ".join(f"{k} {v}" for k, v in sorted(counts["boilerplate"].items())))
    if counts.get("deferred_hosts"):
        print("  deferred to next run: " + ", ".join(counts["deferred_hosts"]))


def cmd_extract(args) -> int:
    from newsmill.flows.extract_files import extract_paths

    n = 0
    for article in extract_paths(args.paths, url=args.url, warn=lambda m: print(m, file=sys.stderr)):
        sys.stdout.write(json.dumps(article_to_json(article), ensure_ascii=False) + "\n")
        n += 1
    return 0 if n or not args.strict else 1


def cmd_sql(args) -> int:
    from newsmill.flows.ingest import resolve_warehouse
    from newsmill.warehouse.query import run_query

    root = resolve_warehouse(args.warehouse)
    out = run_query(root, args.query, fmt=args.format)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0


def cmd_demo(args) -> int:
    from newsmill.flows.demo import run_demo

    return run_demo(args.warehouse, quiet=args.quiet)


# ---------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="newsmill", description="Batch news ingestion: discover, fetch, "
                                "clean, extract and store news articles as Parquet; query with DuckDB.")
    p.add_argument("-v", "--verbose", action="store_true", help="show Prefect's INFO logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wh_help = "warehouse directory (default: $NEWSMILL_WAREHOUSE, else data/ in the project root)"

    s = sub.add_parser("ingest", help="run the ingest flow once")
    s.add_argument("--config", help="TOML config (default: config/sources.toml)")
    s.add_argument("--warehouse", help=wh_help)
    s.add_argument("--source", action="append", metavar="NAME", help="only this source (repeatable)")
    s.add_argument("--limit", type=int, help="at most this many article URLs in this run")
    s.add_argument("--refetch", action="store_true", help="fetch unconditionally (ignore ETag/Last-Modified)")
    s.add_argument("--task-runner", choices=["threads", "dask"], help="override runner.task_runner")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("extract", help="extract articles from .html/.warc/.warc.gz files (no network)")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("--url", help="URL of an .html file (default: its file:// URL)")
    s.add_argument("--strict", action="store_true", help="exit 1 when no article was extracted")
    s.set_defaults(func=cmd_extract)

    s = sub.add_parser("sql", help="run one read-only SQL query over the warehouse")
    s.add_argument("query")
    s.add_argument("--warehouse", help=wh_help)
    s.add_argument("--format", choices=["table", "csv", "json"], default="table")
    s.set_defaults(func=cmd_sql)

    s = sub.add_parser("demo", help="serve the bundled demo site on 127.0.0.1 and ingest it")
    s.add_argument("--warehouse", help=wh_help)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_demo)

    from newsmill.flows import cli_more

    cli_more.add_commands(sub, wh_help)
    return p


def _prefect_defaults(verbose: bool) -> None:
    """Quiet, private defaults for Prefect in a terminal run (explicit settings in the environment win):
    no analytics, and Prefect's own INFO logs only with ``--verbose`` (the progress bar and summary
    report the run; the full logs are in the Prefect UI when a server is used)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _prefect_defaults("-v" in argv or "--verbose" in argv)  # before anything imports prefect
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NewsmillError as exc:
        return _die(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exc.exit_code)
    except KeyboardInterrupt:
        return _die("interrupted", 130)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
