"""``newsmill extract``: articles from local ``.html`` files and ``.warc``/``.warc.gz`` archives.

No network and no warehouse: each HTML file is extracted with its URL from ``--url`` (default: its
``file://`` URL); a WARC file yields every HTML ``response`` record, with its URL from ``WARC-Target-URI``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator

from newsmill.tasks.errors import NewsmillError


def _is_warc(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".warc") or name.endswith(".warc.gz")


def extract_paths(paths: Iterable[str], *, url: str | None = None,
                  warn: Callable[[str], None] = lambda m: None) -> Iterator:
    """Yield an ``Article`` for every article found in ``paths``; reasons for pages without one go to ``warn``."""
    from newsmill.tasks.archive import Skipped, iter_warc_records
    from newsmill.tasks.fetch import decode_body
    from newsmill.tasks.clean import load_rules
    from newsmill.tasks.config import ExtractSettings, load_settings
    from newsmill.tasks.budget import extract_pages_budgeted

    rules = load_rules()
    try:
        settings = load_settings().extract
    except NewsmillError:
        settings = ExtractSettings()

    def extract_page(html, page_url, **kw):  # each page within extract.page_timeout_s (extract_timeout)
        return extract_pages_budgeted([(page_url, html)], **kw)[0]
    paths = [Path(p) for p in paths]
    if url and len([p for p in paths if not _is_warc(p)]) > 1:
        raise NewsmillError("--url names one page: give a single .html file with it")
    for path in paths:
        if not path.exists():
            raise NewsmillError(f"no such file: {path}")
        if _is_warc(path):
            for rec in iter_warc_records(path):
                if isinstance(rec, Skipped):
                    warn(f"{path}: skipped {rec.url or 'a record'}: {rec.reason}"
                         + (f" ({rec.detail})" if rec.detail else ""))
                    continue
                html, _enc = decode_body(rec.body, rec.content_type)
                res = extract_page(html, rec.url, rules=rules, settings=settings)
                if res.article is None:
                    warn(f"{rec.url}: {res.outcome}: {res.error}")
                    continue
                yield res.article.with_context(fetched_at=rec.fetched_at)
        else:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise NewsmillError(f"cannot read {path}: {exc.strerror}") from None
            html, _enc = decode_body(data, None)
            page_url = url or path.resolve().as_uri()
            res = extract_page(html, page_url, rules=rules, settings=settings)
            if res.article is None:
                warn(f"{path}: {res.outcome}: {res.error}")
                continue
            yield res.article
