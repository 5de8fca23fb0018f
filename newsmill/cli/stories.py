"""``newsmill stories``: tie near-duplicate articles across outlets into stories (no Prefect)."""

from __future__ import annotations

import json
import sys

from newsmill.cli.common import add_warehouse, check_writable
from newsmill.tasks.config import load_settings, resolve_warehouse


def add_commands(sub) -> None:
    s = sub.add_parser(
        "stories",
        help="assign stored articles to stories (near-duplicate texts across outlets); ingest, reprocess "
        "and import-warc do it at the end of every run",
    )
    s.add_argument("--rebuild", action="store_true",
                   help="recompute every story from the stored texts (after changing [stories] settings)")
    s.add_argument("--config", help="TOML config whose [stories] table overrides the defaults "
                   "(default: the bundled sources.toml)")
    s.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                   help="wait up to this long for a running writer to release the lock (default: fail at once)")
    add_warehouse(s)
    s.set_defaults(func=cmd_stories)


def cmd_stories(args) -> int:
    from newsmill.warehouse.stories import run_stories

    settings = load_settings(args.config)
    root = resolve_warehouse(args.warehouse)
    if not (root / "_meta.json").exists():
        print(f"newsmill: error: no warehouse at {root} (nothing to assign)", file=sys.stderr)
        return 2
    check_writable(root)

    def progress(n: int) -> None:
        if sys.stderr.isatty():
            print(f"\rstories: {n:,} article versions assigned", end="", file=sys.stderr, flush=True)

    result = run_stories(root, settings.stories, rebuild=args.rebuild, workers=settings.extract.workers,
                         wait_s=args.wait, progress=progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(json.dumps(result, indent=2, default=str))
    return 0
