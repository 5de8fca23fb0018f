"""Typed records passed between stages. The Parquet schemas (``warehouse/schema.py``) derive from these.

discover -> ``DiscoveredURL`` -> fetch -> ``FetchResult`` (+ ``PageLogEntry`` rows)
-> clean+extract -> ``ExtractResult`` (``Article`` + ``Removal`` rows) -> store.

All records are frozen dataclasses. Datetimes are timezone-aware (UTC where the source gives none).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, get_args

# ---- contract vocabularies (see the README; tools outside the repo depend on these) --------------

PageKind = Literal["feed", "sitemap", "robots", "article"]
PAGE_KINDS: tuple[str, ...] = get_args(PageKind)

Outcome = Literal[
    "ok",
    "not_modified",
    "http_error",
    "timeout",
    "too_large",
    "not_html",
    "robots_disallowed",
    "blocked_url",
    "too_many_redirects",
    "truncated",
    "network_error",
    "parse_error",
    "no_article",
    "extract_timeout",
]
OUTCOMES: tuple[str, ...] = get_args(Outcome)  # the tuple and the type are one list

BOILERPLATE_KINDS = (
    "ad",
    "donation",
    "newsletter",
    "subscription",
    "social",
    "related",
    "comments",
    "navigation",
    "copyright",
    "recurring",
    "other",
)

COPYRIGHT_SOURCES = ("jsonld", "meta", "rel_license", "body_line", "footer")

TEXT_PATHS = ("cleaned", "recall", "uncleaned", "article")


@dataclass(frozen=True, slots=True)
class DiscoveredURL:
    """An article URL found by discovery (already normalised and in scope)."""

    url: str
    source: str  # name of the [[sources]] entry
    via: str  # "feed" | "sitemap" | "robots" | "list"
    origin: str | None = None  # the feed/sitemap URL it came from
    published_hint: datetime | None = None  # feed date / sitemap lastmod / news publication_date
    title_hint: str | None = None


@dataclass(frozen=True, slots=True)
class PageLogEntry:
    """One row of the ``pages`` table: one request outcome."""

    url: str
    final_url: str | None
    kind: str  # PageKind
    status: int | None
    outcome: str  # Outcome
    error: str | None
    bytes: int
    content_type: str | None
    fetched_at: datetime
    elapsed_ms: int
    run_id: str
    source: str | None = None
    attempts: int = 1
    etag: str | None = None
    last_modified: str | None = None
    warc_file: str | None = None  # path relative to the warehouse root
    warc_offset: int | None = None
    warc_length: int | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What the fetch stage hands to extraction for one article URL."""

    log: PageLogEntry
    html: str | None = None  # decoded body when outcome == "ok" and it is HTML
    encoding: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.log.outcome == "ok" and self.html is not None


@dataclass(frozen=True, slots=True)
class Removal:
    """One row of the ``boilerplate`` table: a segment the cleaner removed, and why."""

    url: str
    kind: str  # one of BOILERPLATE_KINDS
    rule: str  # name of the rule (e.g. "ad.label.en", "site:npr.org:donate", "recurring")
    text: str
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class Article:
    """One row of ``articles`` / ``article_versions``."""

    url: str
    canonical_url: str
    domain: str
    site_name: str | None
    title: str | None
    authors: tuple[str, ...]
    published_at: datetime | None
    modified_at: datetime | None
    language: str | None
    description: str | None
    text: str
    copyright_holder: str | None
    copyright_year: int | None
    copyright_notice: str | None
    license_url: str | None
    content_hash: str
    fetched_at: datetime | None = None
    run_id: str | None = None
    tags: tuple[str, ...] = ()
    image_url: str | None = None
    paywalled: bool | None = None
    copyright_source: str | None = None  # one of COPYRIGHT_SOURCES
    syndicated: bool | None = None
    # issue 12: which extraction path produced ``text`` (one of TEXT_PATHS): "cleaned" (the cleaned tree),
    # "recall" (a recall pass on the cleaned tree), "uncleaned" (the rules removed the article: raw tree),
    # "article" (every path empty: the cleaned tree's <article> element alone)
    text_path: str | None = None
    # issue 12: the calendar date as the publisher printed it, in the publisher's own zone (published_at is
    # the UTC instant; a page dated 2022-11-07T00:30+01:00 has published_date 2022-11-07)
    published_date: date | None = None
    # bookkeeping
    article_id: str | None = None  # hash of the normalised canonical URL
    source: str | None = None
    extractor_version: str | None = None

    def with_context(self, **changes) -> "Article":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ExtractResult:
    """Outcome of cleaning + extraction of one page. ``article`` is None when there is no article;
    ``error`` then says why (becomes ``pages.outcome = no_article`` or ``parse_error``)."""

    url: str
    article: Article | None
    removals: tuple[Removal, ...] = ()
    outcome: str = "ok"  # "ok" | "no_article" | "parse_error" | "extract_timeout"
    error: str | None = None
    block_hashes: tuple[str, ...] = field(default=())  # fingerprints of text blocks (recurring learning)
    signature: object | None = None  # tasks.stories.Signature of the text, computed in the worker (stories)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of ``runs``."""

    run_id: str
    flow: str
    started_at: datetime
    finished_at: datetime | None
    parameters: str  # JSON
    counts: str  # JSON
