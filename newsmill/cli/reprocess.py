"""``newsmill reprocess`` (re-extract archived raw pages, no network) and ``newsmill import-warc``
(.warc/.warc.gz files into the warehouse)."""

from __future__ import annotations

from pathlib import Path

from newsmill.cli.common import add_warehouse, announce_prefect, check_writable, print_summary, progress_bar
from newsmill.flows.runtime import start_extraction_early  # no Prefect: the forkserver starts before it
from newsmill.tasks.config import existing_warehouse, load_run_settings, resolve_warehouse
from newsmill.tasks.dates import parse_date_bound
from newsmill.tasks.errors import ConfigError, NewsmillError


def add_commands(sub) -> None:
    s = sub.add_parser("reprocess", help="re-clean and re-extract archived raw pages with the current rules "
                       "(no network)")
    add_warehouse(s)
    s.add_argument("--since", metavar="DATE", help="only pages fetched on/after this date (YYYY-MM-DD)")
    s.add_argument("--until", metavar="DATE", help="only pages fetched up to this date, inclusive")
    s.add_argument("--source", metavar="NAME", help="only pages of this source")
    s.add_argument("--domain", metavar="D", help="only pages of this domain (and its subdomains)")
    s.add_argument("--config", help="TOML config for [extract]/[runner] settings (default: the defaults)")
    s.add_argument("--rules-dir", metavar="DIR", help="boilerplate rules directory (default: config/rules)")
    s.add_argument("--sites-dir", metavar="DIR", help="per-site rules directory (default: config/sites)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_reprocess)

    s = sub.add_parser("import-warc", help="import .warc/.warc.gz files (e.g. CC-NEWS) into the warehouse")
    s.add_argument("files", nargs="+", metavar="FILE")
    add_warehouse(s)
    s.add_argument("--domain", action="append", metavar="D",
                   help="only records of this host and its subdomains (repeatable)")
    s.add_argument("--since", metavar="DATE", help="only records with WARC-Date on/after this date")
    s.add_argument("--until", metavar="DATE", help="only records with WARC-Date up to this date, inclusive")
    s.add_argument("--source", metavar="NAME", default="warc-import",
                   help="source name for the imported pages (default: warc-import)")
    s.add_argument("--config", help="TOML config for [extract]/[runner] settings (default: the defaults)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_import_warc)


def _setup(args, more_checks=None):
    """Settings, warehouse root and task runner of the run; every check that can fail happens here, with
    one line, before a flow starts (``more_checks``: the command's own, run last). Then the extraction
    forkserver starts, and Prefect is imported."""
    settings = load_run_settings(args.config)
    root = resolve_warehouse(args.warehouse)
    check_writable(root)
    parse_date_bound(args.since, name="--since")
    parse_date_bound(args.until, end=True, name="--until")
    if more_checks is not None:
        more_checks()
    start_extraction_early(settings)
    from newsmill.flows.ingest import default_task_runner  # Prefect: after the checks above

    return settings, root, default_task_runner(settings)


def cmd_reprocess(args) -> int:
    existing_warehouse(args.warehouse)  # reprocess needs archived pages: never create a warehouse

    def check_dirs() -> None:
        for opt, d in (("--rules-dir", args.rules_dir), ("--sites-dir", args.sites_dir)):
            if d and not Path(d).is_dir():
                raise ConfigError(f"{opt}: not a directory: {d}")

    settings, root, runner = _setup(args, check_dirs)
    from newsmill.flows.reprocess import reprocess

    flow_ = reprocess.with_options(task_runner=runner)
    announce_prefect(settings)
    with progress_bar(not args.quiet, "reprocess"):
        info = flow_(warehouse=str(root), since=args.since, until=args.until, source=args.source,
                     domain=args.domain, config=args.config,
                     rules_dir=str(Path(args.rules_dir).resolve()) if args.rules_dir else None,
                     sites_dir=str(Path(args.sites_dir).resolve()) if args.sites_dir else None)
    print_summary(info)
    return 0


def cmd_import_warc(args) -> int:
    files: list[str] = []

    def check_files() -> None:
        for f in args.files:
            p = Path(f).expanduser()
            if not p.is_file():
                raise NewsmillError(f"no such file: {f}")
            files.append(str(p.resolve()))

    settings, root, runner = _setup(args, check_files)
    from newsmill.flows.import_warc import import_warc

    flow_ = import_warc.with_options(task_runner=runner)
    announce_prefect(settings)
    with progress_bar(not args.quiet, "import", unit="bytes"):
        info = flow_(files=files, warehouse=str(root), domains=args.domain or None, since=args.since,
                     until=args.until, source=args.source, config=args.config)
    print_summary(info)
    return 0
