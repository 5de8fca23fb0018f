"""``newsmill extract``: articles from .html/.warc/.warc.gz files as JSON lines (no network, no Prefect)."""

from __future__ import annotations

import json
import sys

ARTICLE_JSON_FIELDS = (
    "url", "canonical_url", "domain", "site_name", "title", "authors", "published_at", "modified_at",
    "language", "description", "text", "copyright_holder", "copyright_year", "copyright_notice",
    "license_url", "content_hash", "fetched_at", "run_id", "tags", "image_url", "paywalled",
    "copyright_source", "syndicated", "article_id", "extractor_version", "published_date", "text_path",
)


def add_commands(sub) -> None:
    s = sub.add_parser("extract", help="extract articles from .html/.warc/.warc.gz files (no network)")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("--url", help="URL of an .html file (default: its file:// URL)")
    s.add_argument("--strict", action="store_true", help="exit 1 when no article was extracted")
    s.set_defaults(func=cmd_extract)


def article_to_json(article) -> dict:
    from newsmill.warehouse.query import jsonable  # the same JSON values as `newsmill sql --format json`

    return {k: jsonable(getattr(article, k)) for k in ARTICLE_JSON_FIELDS}


def cmd_extract(args) -> int:
    from newsmill.flows.extract_files import extract_paths  # the extraction stack: only for this command

    n = 0
    for article in extract_paths(args.paths, url=args.url, warn=lambda m: print(m, file=sys.stderr)):
        sys.stdout.write(json.dumps(article_to_json(article), ensure_ascii=False) + "\n")
        n += 1
    return 0 if n or not args.strict else 1
