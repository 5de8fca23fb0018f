"""What a caller hands the fetcher: a request and the validators of a conditional GET."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Conditional:
    """Validators from the previous fetch of a URL (sent as If-None-Match / If-Modified-Since)."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchRequest:
    url: str
    kind: str = "article"
    source: str | None = None
    conditional: Conditional | None = None
