"""Content types: which media types each kind of fetch accepts, and HTML sniffing for a missing type."""

from __future__ import annotations

HTML_TYPES = ("text/html", "application/xhtml+xml")
GZIP_TYPES = ("application/gzip", "application/x-gzip", "application/octet-stream", "application/x-gunzip")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_html_content_type(content_type: str | None) -> bool:
    return media_type(content_type) in HTML_TYPES


def looks_like_html(prefix: bytes) -> bool:
    head = prefix[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<!--")) or b"<html" in head[:512]


def type_ok(kind: str, content_type: str | None) -> bool | None:
    """True: accepted; False: refused; None: no Content-Type, decide by sniffing (articles)."""
    mt = media_type(content_type)
    if kind == "robots":
        return True
    if not mt:
        return None if kind == "article" else True
    if kind == "article":
        return mt in HTML_TYPES
    if mt.endswith("/xml") or mt.endswith("+xml") or mt.startswith("text/"):
        return True
    if kind == "sitemap" and mt in GZIP_TYPES:
        return True
    return False
