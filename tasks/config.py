"""Settings: ``config/defaults.toml`` overlaid with a user file (``--config``).

Every table maps onto a frozen dataclass below; unknown keys and values of the wrong type raise
``ConfigError`` naming the key (``fetch.timeout_s: expected a number, got 'x'``). ``[[sources]]`` in
the user file replace the defaults' sources (the defaults have none).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import ipaddress
import math
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from newsmill.tasks.errors import ConfigError, NewsmillError, WarehouseError

# The bundled configuration is package data of ``newsmill.config``; wheels install it unpacked, so it is a
# directory on disk (rules and site files are globbed). Nothing is ever written there.
CONFIG_DIR = Path(str(importlib.resources.files("newsmill.config")))


def resolve_warehouse(warehouse: str | os.PathLike | None) -> Path:
    """``--warehouse``, else ``NEWSMILL_WAREHOUSE``, else ``data/`` under the working directory."""
    if warehouse:
        return Path(warehouse).expanduser().resolve()
    env = os.environ.get("NEWSMILL_WAREHOUSE")
    if env:
        return Path(env).expanduser().resolve()
    return Path.cwd().resolve() / "data"


def existing_warehouse(warehouse: str | os.PathLike | None) -> Path:
    """:func:`resolve_warehouse` for the commands that work on a warehouse already there (compact, delete,
    publish, reprocess, reset-fetch-state): a missing directory, or one that no run ever wrote (no
    ``_meta.json``), is a ``WarehouseError`` instead of a new warehouse created by a typo."""
    root = resolve_warehouse(warehouse)
    if not root.is_dir():
        raise WarehouseError(f"no warehouse at {root} (check --warehouse / $NEWSMILL_WAREHOUSE; "
                             f"`newsmill ingest` creates one)")
    if not (root / "_meta.json").is_file():  # written by the first writer (warehouse/files.py ensure_meta)
        raise WarehouseError(f"{root} is not a newsmill warehouse (no _meta.json)")
    return root

DEFAULTS_FILE = CONFIG_DIR / "defaults.toml"
DEFAULT_SOURCES_FILE = CONFIG_DIR / "sources.toml"
DEMO_DIR = CONFIG_DIR / "demo"
RULES_DIR = CONFIG_DIR / "rules"
SITES_DIR = CONFIG_DIR / "sites"


@dataclass(frozen=True)
class FetchSettings:
    user_agent: str = "newsmill/0.1 (+https://example.org/contact)"
    timeout_s: float = 20.0  # total deadline per request (connect + headers + body)
    connect_timeout_s: float = 10.0
    per_host_delay_s: float = 1.0  # minimum gap between requests to one host
    max_bytes: int = 10_000_000  # cap on decoded body size
    retries: int = 3  # transient failures only (timeouts, connection errors, 429, 500/502/503/504)
    backoff_s: float = 1.0  # base of the exponential backoff (with jitter)
    max_retry_after_s: float = 60.0  # a Retry-After above this defers the host to the next run
    max_redirects: int = 10
    concurrency: int = 16  # global number of requests in flight
    per_host_concurrency: int = 2
    respect_robots: bool = True
    max_crawl_delay_s: float = 30.0  # cap on robots.txt Crawl-delay
    allow_networks: tuple[str, ...] = ()  # CIDRs of otherwise refused (loopback/private/...) targets
    archive_warc: bool = True  # append every successful response to WARC files in the warehouse
    max_sitemap_depth: int = 3
    max_sitemap_bytes: int = 50_000_000  # cap on decompressed sitemap size (.xml.gz)
    max_sitemaps: int = 200  # sitemap documents fetched per source per run (an index's fan-out is capped too)
    ca_bundle: str = ""  # PEM file of CA certificates to trust for HTTPS instead of certifi's ("": certifi)


@dataclass(frozen=True)
class ExtractSettings:
    workers: int = 2  # processes for CPU-bound cleaning + extraction
    batch_size: int = 100  # pages per Prefect batch task
    recurring_min_pages: int = 3  # a block seen on this many distinct articles of one host is boilerplate
    favor_precision: bool = True
    language_min_chars: int = 40
    page_timeout_s: float = 30.0  # time budget of one page's extraction (0: none); over it: extract_timeout


@dataclass(frozen=True)
class ScheduleSettings:
    cron: str = "0 2 * * *"
    timezone: str = "UTC"


@dataclass(frozen=True)
class SqlSettings:
    timeout_s: float = 300.0  # wall-clock limit of one `newsmill sql` statement, its output included
    memory_limit: str = "1GB"  # DuckDB memory_limit of the query connection
    max_temp_size: str = "10GB"  # cap on the statement's spill files (DuckDB max_temp_directory_size)


@dataclass(frozen=True)
class RunnerSettings:
    task_runner: str = "threads"  # "threads" | "dask"
    max_workers: int = 4  # thread-pool task runner cap
    dask_address: str = ""  # scheduler address for task_runner = "dask"; empty: a LocalCluster
    dask_workers: int = 2


@dataclass(frozen=True)
class StoriesSettings:
    enabled: bool = True  # assign every new article version to a story at the end of each run
    window_days: int = 30  # new articles are matched against the stories first seen in the last N days
    threshold: float = 0.5  # same story when the estimated Jaccard similarity of the texts reaches this ...
    containment: float = 0.8  # ... or when one text is this much inside the other (a paragraph cut/added)
    min_jaccard: float = 0.3  # ... and they still share this much (a brief quoted in a roundup is not a copy)


@dataclass(frozen=True)
class HealthSettings:
    history_nights: int = 14  # each run of a source is compared with the median of its previous N runs
    min_history: int = 3  # a source with fewer previous runs is 'new'
    degraded_ratio: float = 0.5  # articles or median text length below this × median: degraded
    broken_ratio: float = 0.1  # articles at or below this × median (0 vs 48): broken
    share_drop: float = 0.3  # ok/authors/dates/copyright share this far below its median: degraded
    no_article_rise: float = 0.3  # no_article share this far above its median: degraded
    boilerplate_ratio: float = 3.0  # boilerplate removed per article above this × median: degraded


@dataclass(frozen=True)
class Source:
    name: str
    feeds: tuple[str, ...] = ()
    sitemaps: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    include: tuple[str, ...] = ()  # URL regex patterns; empty = everything
    exclude: tuple[str, ...] = ()
    max_age_days: float | None = 7.0  # entries with an older feed date/lastmod are skipped
    max_pages: int | None = None  # per run


@dataclass(frozen=True)
class Settings:
    fetch: FetchSettings = field(default_factory=FetchSettings)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    stories: StoriesSettings = field(default_factory=StoriesSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    sql: SqlSettings = field(default_factory=SqlSettings)
    sources: tuple[Source, ...] = ()
    config_path: str | None = None

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError(f"sources: no source named {name!r}")

    def select_sources(self, names: typing.Iterable[str] | None) -> "Settings":
        if not names:
            return self
        wanted = list(names)
        return dataclasses.replace(self, sources=tuple(self.source(n) for n in wanted))


_SECTIONS = {
    "fetch": FetchSettings,
    "extract": ExtractSettings,
    "schedule": ScheduleSettings,
    "runner": RunnerSettings,
    "stories": StoriesSettings,
    "health": HealthSettings,
    "sql": SqlSettings,
}


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value, tp):
    """Check ``value`` against the annotation ``tp``; return the value converted (lists -> tuples)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(key, value, a)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of {_type_name(item_tp)}, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):  # TOML has nan and inf; no setting means either
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp!r}")  # pragma: no cover - programmer error


def _build(cls, data: dict, prefix: str, base=None):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{prefix}.{key}: unknown key (known: {', '.join(sorted(names))})")
        kwargs[key] = _coerce(f"{prefix}.{key}", value, hints[key])
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def _check_url(key: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port or an unclosed IPv6 bracket
    except ValueError as exc:
        raise ConfigError(f"{key}: not a valid URL: {url!r} ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{key}: only http(s) URLs are allowed, got {url!r}")


_SIZE_RE = re.compile(r"\s*\d+(\.\d+)?\s*(b|bytes|kb|mb|gb|tb|kib|mib|gib|tib)\s*", re.IGNORECASE)


def _validate(s: Settings) -> None:
    f = s.fetch
    for key in ("timeout_s", "connect_timeout_s", "max_bytes", "concurrency", "per_host_concurrency",
                "max_sitemap_bytes", "max_sitemaps"):
        if getattr(f, key) <= 0:
            raise ConfigError(f"fetch.{key}: must be > 0, got {getattr(f, key)!r}")
    for key in ("per_host_delay_s", "retries", "backoff_s", "max_retry_after_s", "max_redirects",
                "max_crawl_delay_s", "max_sitemap_depth"):
        if getattr(f, key) < 0:
            raise ConfigError(f"fetch.{key}: must be >= 0, got {getattr(f, key)!r}")
    if not f.user_agent.strip():
        raise ConfigError("fetch.user_agent: must not be empty")
    if f.ca_bundle and not Path(f.ca_bundle).expanduser().is_file():
        raise ConfigError(f"fetch.ca_bundle: no such file: {f.ca_bundle!r}")
    for i, cidr in enumerate(f.allow_networks):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ConfigError(f"fetch.allow_networks[{i}]: not a CIDR network: {cidr!r}") from None
    e = s.extract
    if e.workers < 1 or e.batch_size < 1 or e.recurring_min_pages < 2:
        raise ConfigError("extract: workers and batch_size must be >= 1, recurring_min_pages >= 2")
    if e.page_timeout_s < 0:
        raise ConfigError(f"extract.page_timeout_s: must be >= 0 (0: no budget), got {e.page_timeout_s!r}")
    if s.runner.task_runner not in ("threads", "dask"):
        raise ConfigError(f"runner.task_runner: expected 'threads' or 'dask', got {s.runner.task_runner!r}")
    if s.runner.max_workers < 1:
        raise ConfigError("runner.max_workers: must be >= 1")
    q = s.sql
    if q.timeout_s <= 0:
        raise ConfigError(f"sql.timeout_s: must be > 0, got {q.timeout_s!r}")
    for key in ("memory_limit", "max_temp_size"):
        if not _SIZE_RE.fullmatch(getattr(q, key)):
            raise ConfigError(f"sql.{key}: expected a size like '512MB' or '10GB', got {getattr(q, key)!r}")
    st = s.stories
    if st.window_days < 1:
        raise ConfigError(f"stories.window_days: must be >= 1, got {st.window_days!r}")
    for key in ("threshold", "containment", "min_jaccard"):
        v = getattr(st, key)
        if not 0.0 < v <= 1.0:  # also refuses nan
            raise ConfigError(f"stories.{key}: must be in (0, 1], got {v!r}")
    h = s.health
    if h.history_nights < 1 or h.min_history < 1:
        raise ConfigError("health: history_nights and min_history must be >= 1")
    for key in ("degraded_ratio", "broken_ratio", "share_drop", "no_article_rise"):
        if not 0.0 <= getattr(h, key) <= 1.0:  # also refuses nan
            raise ConfigError(f"health.{key}: must be in [0, 1], got {getattr(h, key)!r}")
    if not h.boilerplate_ratio >= 1.0:
        raise ConfigError(f"health.boilerplate_ratio: must be >= 1, got {h.boilerplate_ratio!r}")
    seen = set()
    for i, src in enumerate(s.sources):
        key = f"sources[{i}]"
        if not src.name.strip():
            raise ConfigError(f"{key}.name: must not be empty")
        if src.name in seen:
            raise ConfigError(f"{key}.name: duplicate source name {src.name!r}")
        seen.add(src.name)
        for list_key in ("feeds", "sitemaps", "urls"):
            for j, url in enumerate(getattr(src, list_key)):
                _check_url(f"{key}.{list_key}[{j}]", url)
        if src.max_pages is not None and src.max_pages < 1:
            raise ConfigError(f"{key}.max_pages: must be >= 1")
        if src.max_age_days is not None and src.max_age_days <= 0:
            raise ConfigError(f"{key}.max_age_days: must be > 0")
        for list_key in ("include", "exclude"):
            for j, pat in enumerate(getattr(src, list_key)):
                try:
                    re.compile(pat)
                except re.error as exc:
                    raise ConfigError(f"{key}.{list_key}[{j}]: bad regex {pat!r}: {exc}") from None


def read_toml(path: Path) -> dict:
    """A TOML file as a dict; every failure (missing, unreadable, not UTF-8, invalid) is a one-line
    ConfigError naming the file. Settings, rules and site files are all read through it."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (TOML files are UTF-8): byte {exc.object[exc.start]:#04x} "
                          f"at offset {exc.start}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None


def settings_from_dict(data: dict, base: Settings | None = None, *, origin: str = "config") -> Settings:
    """Overlay ``data`` (parsed TOML) on ``base`` and validate."""
    base = base or Settings()
    changes: dict = {}
    for key, value in data.items():
        if key in _SECTIONS:
            changes[key] = _build(_SECTIONS[key], value, key, getattr(base, key))
        elif key == "sources":
            if not isinstance(value, list):
                raise ConfigError("sources: expected an array of tables ([[sources]])")
            srcs = []
            for i, item in enumerate(value):
                if not isinstance(item, dict) or "name" not in item:
                    raise ConfigError(f"sources[{i}].name: required")
                srcs.append(_build(Source, item, f"sources[{i}]"))
            changes["sources"] = tuple(srcs)
        else:
            raise ConfigError(
                f"{key}: unknown key in {origin} (known: {', '.join(sorted([*_SECTIONS, 'sources']))})"
            )
    settings = dataclasses.replace(base, **changes)
    _validate(settings)
    return settings


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Defaults overlaid with ``path`` (default: ``config/sources.toml``, the nightly source list)."""
    settings = settings_from_dict(read_toml(DEFAULTS_FILE), origin=str(DEFAULTS_FILE))
    user = Path(path) if path is not None else DEFAULT_SOURCES_FILE
    settings = settings_from_dict(read_toml(user), settings, origin=str(user))
    return dataclasses.replace(settings, config_path=str(user))


def load_run_settings(config: str | None) -> Settings:
    """Settings for a run that needs no sources: ``config`` when given, else the defaults plus the
    nightly source file when it loads, else the bare defaults."""
    if config:
        return load_settings(config)
    try:
        return load_settings()
    except NewsmillError:
        return settings_from_dict(read_toml(DEFAULTS_FILE), origin=str(DEFAULTS_FILE))
