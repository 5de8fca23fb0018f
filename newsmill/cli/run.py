"""``newsmill ingest`` (one run of the ingest flow) and ``newsmill demo`` (the bundled demo site served on
127.0.0.1 and ingested)."""

from __future__ import annotations

import dataclasses
import tempfile

from newsmill.cli.common import (add_warehouse, announce_prefect, check_writable, note_left_running, print_summary,
                                 progress_bar)
from newsmill.flows.runtime import start_extraction_early  # no Prefect: the forkserver starts before it
from newsmill.tasks.config import load_settings, resolve_warehouse
from newsmill.tasks.errors import ConfigError


def add_ingest(sub) -> None:
    s = sub.add_parser("ingest", help="run the ingest flow once")
    s.add_argument("--config", help="TOML config (default: config/sources.toml)")
    add_warehouse(s)
    s.add_argument("--source", action="append", metavar="NAME", help="only this source (repeatable)")
    s.add_argument("--limit", type=int, help="at most this many article URLs in this run")
    s.add_argument("--refetch", action="store_true", help="fetch unconditionally (ignore ETag/Last-Modified)")
    s.add_argument("--task-runner", choices=["threads", "dask"], help="override runner.task_runner")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_ingest)


def add_demo(sub) -> None:
    s = sub.add_parser("demo", help="serve the bundled demo site on 127.0.0.1 and ingest it")
    add_warehouse(s)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_demo)


def cmd_ingest(args) -> int:
    settings = load_settings(args.config)  # fail fast, one line, before Prefect starts
    settings.select_sources(args.source)  # unknown --source names: ConfigError now
    if not settings.sources:
        raise ConfigError(f"sources: no [[sources]] in {settings.config_path}")
    root = resolve_warehouse(args.warehouse)
    check_writable(root)
    if args.task_runner:
        settings = dataclasses.replace(settings, runner=dataclasses.replace(
            settings.runner, task_runner=args.task_runner))
    start_extraction_early(settings, root, args.refetch)
    from newsmill.flows.ingest import default_task_runner, ingest  # Prefect: after the checks above

    flow = ingest.with_options(task_runner=default_task_runner(settings))
    announce_prefect(settings)
    with progress_bar(not args.quiet):
        info = flow(config=args.config, warehouse=str(root), sources=args.source or None,
                    limit=args.limit, refetch=args.refetch)
    print_summary(info)
    return 0


SAMPLE_SQL = ("select title, copyright_holder, copyright_year, language, len(text) as chars "
              "from articles order by title")


def cmd_demo(args) -> int:
    from newsmill.flows.demo import demo_config_file, serve_site
    from newsmill.flows.ingest import default_task_runner, ingest  # Prefect: after the checks below
    from newsmill.warehouse.query import run_query

    root = resolve_warehouse(args.warehouse)
    check_writable(root)
    with serve_site() as base_url, tempfile.TemporaryDirectory(prefix="newsmill-demo-") as tmp:
        cfg = demo_config_file(base_url, tmp)
        settings = load_settings(cfg)
        print(f"demo site serving on {base_url}; warehouse: {root}")
        flow = ingest.with_options(task_runner=default_task_runner(settings))
        api_url = announce_prefect(settings)
        with progress_bar(not args.quiet):
            info = flow(config=str(cfg), warehouse=str(root))
    print_summary(info)
    print(f"\n$ newsmill sql \"{SAMPLE_SQL}\"")
    print(run_query(root, SAMPLE_SQL, fmt="table"))
    note_left_running(api_url)
    return 0
