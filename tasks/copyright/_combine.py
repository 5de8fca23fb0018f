"""``TreeEvidence``, ``tree_evidence`` and ``combine``: the one combination rule."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

from newsmill.tasks.copyright._lines import CopyrightInfo, EMPTY
from newsmill.tasks.copyright._party import same_party
from newsmill.tasks.copyright._sources import _best, _from_footer, _from_jsonld, _from_meta, _from_rel_license
from newsmill.tasks.metadata import Metadata
from newsmill.tasks.parse import ParsedPage
from newsmill.tasks.urls import domain_of

# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeEvidence:
    """The copyright evidence read from the untouched tree, in evidence order (jsonld, meta, rel_license,
    footer): each a :class:`CopyrightInfo` with its ``source`` set. Collect it before the cleaner
    mutates the tree (:func:`tree_evidence`); :func:`combine` adds the body line and decides."""

    candidates: tuple[CopyrightInfo, ...] = ()
    url: str | None = None  # the page URL (domain fallback for ``syndicated``)


_TREE_STEPS = (("jsonld", _from_jsonld), ("meta", _from_meta), ("rel_license", _from_rel_license),
               ("footer", _from_footer))
_SOURCE_ORDER = ("jsonld", "body_line", "meta", "rel_license", "footer")  # article-level, then site-level


def tree_evidence(page: ParsedPage) -> TreeEvidence:
    """Every tree source of copyright evidence (all but the body line). Never raises for data problems."""
    found: list[CopyrightInfo] = []
    for source, step in _TREE_STEPS:
        try:
            info = step(page)
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):
            info = None
        if info is not None:
            found.append(replace(info, source=source))
    return TreeEvidence(candidates=tuple(found), url=page.url)


def combine(evidence: TreeEvidence, body: Iterable[CopyrightInfo | None] = (), *,
            metadata: Metadata | None = None, site_name: str | None = None) -> CopyrightInfo:
    """THE combination rule (see the module docstring), in one place.

    ``evidence``: :func:`tree_evidence` of the untouched page; ``body``: notices matched on the trailing
    in-body lines (``match_copyright_line`` results, in the order captured; the first naming a holder
    speaks for the body, the first licence among them counts). Always returns a CopyrightInfo."""
    body_info = _best([b for b in body if b is not None])
    by_source = {c.source: c for c in evidence.candidates}
    if body_info is not None:
        by_source["body_line"] = replace(body_info, source="body_line")
    candidates = [by_source[s] for s in _SOURCE_ORDER if s in by_source]
    if not candidates:
        return EMPTY
    primary = next((c for c in candidates if c.holder), None) or next(
        (c for c in candidates if c.notice or c.license_url), candidates[0])
    license_url = next((c.license_url for c in candidates if c.license_url), None)
    year = primary.year
    if year is None and primary.holder:  # same holder stated elsewhere with a year
        for c in candidates:
            if c.year and c.holder and same_party(c.holder, primary.holder):
                year = c.year
                break
    syndicated = None
    if primary.holder and primary.source == "footer":
        syndicated = False  # the site's own footer names the site's operator, by definition not syndication
    elif primary.holder:
        site = site_name or (metadata.site_name if metadata else None)
        url = (metadata.canonical_url if metadata else None) or evidence.url
        try:
            same = same_party(primary.holder, site, domain_of(url) if url else None)
        except (ValueError, TypeError):
            same = None
        syndicated = None if same is None else not same
    return replace(primary, year=year, license_url=license_url, syndicated=syndicated)
