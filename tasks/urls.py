"""URL normalisation (courlan) and article identity.

``normalize_url`` is used for dedupe at discovery (one fetch per normalised URL per run) and, applied to
the canonical URL, for article identity in the warehouse (``article_id``).
"""

from __future__ import annotations

import hashlib
from urllib.parse import urljoin, urlsplit, urlunsplit

import courlan

ALLOWED_SCHEMES = ("http", "https")


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Normalised absolute http(s) URL, or None when ``url`` is not an http(s) URL.

    Lower-cases scheme and host, drops default ports, tracking parameters (utm_*, fbclid, gclid, ...)
    and the fragment, and sorts query parameters (courlan)."""
    if not url or not isinstance(url, str):
        return None
    url = url.strip()
    if base:
        url = urljoin(base, url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES or not parts.hostname:
        return None
    try:
        norm = courlan.normalize_url(url)
    except (ValueError, AttributeError):
        return None
    p = urlsplit(norm)
    path = p.path or "/"
    return urlunsplit((p.scheme, p.netloc, path, p.query, ""))


def domain_of(url: str) -> str:
    """Host name without a leading ``www.`` (lower-case)."""
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def in_domains(url: str | None, domains) -> bool:
    """Whether the host of ``url`` is one of ``domains`` or a subdomain of one (no ``domains``: any URL)."""
    if not domains:
        return True
    host = (urlsplit(url or "").hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in domains)


def article_id(canonical_url: str) -> str:
    """Stable identity of an article: a hash of its normalised canonical URL (scheme-insensitive)."""
    norm = normalize_url(canonical_url) or canonical_url
    p = urlsplit(norm)
    key = urlunsplit(("", p.netloc.lower().removeprefix("www."), p.path.rstrip("/") or "/", p.query, ""))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
