"""Recurring boilerplate learned per host: short text blocks (fingerprinted by
:func:`tasks.clean.block_fingerprint`, 20..400 chars) seen on at least ``min_pages`` *distinct* articles of
the same host are boilerplate no rule knows (a house donation appeal, a promo line, a standing footer).

Distinct means distinct article identities whose other content differs: two fetches of the same article
(same canonical URL, or the same paragraphs under another URL — a syndicated or re-posted copy) count once.
Blocks that are a large share of a page's text are never counted (a very short article is not its own
boilerplate). Learning is per host; the same syndicated story on two hosts never makes its lines
recurring on either.

``history[domain]`` (fingerprints already learned in earlier runs, from the warehouse) is merged in.

Public API: :class:`PageSignature`, :func:`page_signature`, :func:`learn_recurring`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from lxml import etree

from newsmill.tasks.clean import RECURRING_MAX_SHARE, Block, block_fingerprint, normalize_text, page_text_length
from newsmill.tasks.parse import ParsedPage

__all__ = ["PageSignature", "page_signature", "learn_recurring", "SAME_ARTICLE_OVERLAP"]

SAME_ARTICLE_OVERLAP = 0.5  # share of the shorter page's paragraph text two pages must share to be one article
_PARAGRAPHS = etree.XPath("//body//p")
_MIN_PARAGRAPH = 40


@dataclass(slots=True)
class PageSignature:
    domain: str
    identity: str  # article id of the canonical URL
    keys: frozenset[str]  # recurring-eligible block fingerprints (small enough share of the page)
    paragraphs: dict[str, int] = field(default_factory=dict)  # paragraph fingerprint -> length


def page_signature(page: ParsedPage, blocks: list[Block], *, domain: str, identity: str) -> PageSignature:
    """Signature of one page for :func:`learn_recurring` (computed on the untouched tree)."""
    paragraphs: dict[str, int] = {}
    for p in _PARAGRAPHS(page.tree):
        text = normalize_text(p.text_content())
        if len(text) >= _MIN_PARAGRAPH:
            paragraphs[block_fingerprint(text)] = len(text)
    limit = RECURRING_MAX_SHARE * page_text_length(page)
    keys = frozenset(b.key for b in blocks if b.key is not None and len(b.text) <= limit)
    return PageSignature(domain=domain, identity=identity, keys=keys, paragraphs=paragraphs)


def _same_article(a: PageSignature, b: PageSignature) -> bool:
    if a.identity == b.identity:
        return True
    if not a.paragraphs or not b.paragraphs:
        return False
    small, big = (a.paragraphs, b.paragraphs) if len(a.paragraphs) <= len(b.paragraphs) else (b.paragraphs, a.paragraphs)
    shared = sum(n for k, n in small.items() if k in big)
    return shared >= SAME_ARTICLE_OVERLAP * min(sum(small.values()), sum(big.values()))


def learn_recurring(pages: list[PageSignature], min_pages: int,
                    history: dict[str, frozenset[str]] | None = None) -> dict[str, frozenset[str]]:
    """Fingerprints to remove per domain: ``history[domain]`` plus the blocks seen on at least
    ``min_pages`` distinct articles of that domain in ``pages``."""
    by_domain: dict[str, list[PageSignature]] = defaultdict(list)
    for sig in pages:
        by_domain[sig.domain].append(sig)
    out: dict[str, frozenset[str]] = {d: frozenset(v) for d, v in (history or {}).items()}
    for domain, sigs in by_domain.items():
        # cluster the host's pages into articles (union-find over "same article")
        parent = list(range(len(sigs)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i in range(len(sigs)):
            for j in range(i + 1, len(sigs)):
                if find(i) != find(j) and _same_article(sigs[i], sigs[j]):
                    parent[find(j)] = find(i)
        seen: dict[str, set[int]] = defaultdict(set)
        for i, sig in enumerate(sigs):
            cluster = find(i)
            for key in sig.keys:
                seen[key].add(cluster)
        learned = {k for k, clusters in seen.items() if len(clusters) >= min_pages}
        if learned:
            out[domain] = out.get(domain, frozenset()) | frozenset(learned)
    return out
