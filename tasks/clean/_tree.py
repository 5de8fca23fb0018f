"""Text blocks, fingerprints and share guards, and the cleaning passes over the tree (``clean_tree``) and over
extracted lines (``clean_lines``)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from lxml import etree

from newsmill.tasks.clean._compiled import _compiled
from newsmill.tasks.clean._rules import PhraseRule, RuleSet, SelectorRule
from newsmill.tasks.parse import ParsedPage
from newsmill.tasks.records import Removal

RECURRING_MAX_CHARS = 400  # blocks longer than this are never fingerprinted (article paragraphs)
RECURRING_MIN_CHARS = 20  # nor shorter than this ("Share", "Photo", single words)
RECURRING_MAX_SHARE = 0.25  # a block holding more of the page's text is never recurring boilerplate
REMOVAL_TEXT_MAX = 2000
_LIST_ITEM_MAX = 160


# ---------------------------------------------------------------------------------------------------
# text blocks and fingerprints

_BLOCK_TAGS = ("p", "div", "li", "section", "aside", "h1", "h2", "h3", "h4", "h5", "h6", "figcaption",
               "blockquote", "td", "header", "footer", "figure", "dd", "dt", "ul", "ol", "center", "article")
_BLOCK_MAX_CHARS = 600  # longest block any phrase rule may remove
_BLOCK_TEXT_MAX = max(RECURRING_MAX_CHARS, _BLOCK_MAX_CHARS)  # longer blocks are not Blocks
_BODY_LEN = etree.XPath("string-length(normalize-space(//body))")
# Text under a <p>. Not "//p//text()": libxml2 merges the text nodes of every <p> into the result with a
# duplicate check against all nodes so far, which is quadratic in the number of paragraphs (100,000 <p>
# took 18 s). The outermost <p> and their text, read by lxml's iterators, are the same nodes in linear time
# (and as fast as the XPath on ordinary pages; "//text()[ancestor::p]" is linear too but 2x slower there).
_XML_WS = re.compile(r"[ \t\r\n]+")  # the whitespace of XPath's normalize-space()


def _outer_p_len(paragraphs) -> int:
    """Characters of text in those of ``paragraphs`` that have no <p> above them."""
    return sum(len(t) for p in paragraphs if next(p.iterancestors("p"), None) is None for t in p.itertext())


def _p_text_len(root) -> int:
    """Characters of text under a <p>, the same as ``sum(len(t) for t in root.xpath("//p//text()"))``."""
    return _outer_p_len(root.iter("p"))


def _p_text_len_in(el) -> int:
    """``el.xpath(".//p//text()")`` summed, in linear time: text under a <p> that is inside ``el``."""
    if el.tag != "p" and next(el.iterancestors("p"), None) is None:  # no <p> above el: count the outermost
        return _outer_p_len(el.iterdescendants("p"))
    total = 0  # el is or sits in a <p> (rare): count the outermost <p> below el
    for p in el.iterdescendants("p"):
        for a in p.iterancestors():
            if a is el:
                total += sum(len(t) for t in p.itertext())
                break
            if a.tag == "p":
                break
    return total


def page_text_length(page: ParsedPage) -> int:
    """The page's text size for share guards: its paragraph text, or all body text when it has few <p>."""
    p_len = _p_text_len(page.tree)
    return p_len if p_len >= 200 else int(_BODY_LEN(page.tree) or 0)


def normalize_text(text: str) -> str:
    """NFC, no-break and zero-width spaces folded, whitespace collapsed, stripped."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text).replace("\u200b", "").replace("\ufeff", "")
    return " ".join(text.split())  # str.split() splits on all Unicode whitespace, no-break space included


def block_fingerprint(text: str) -> str:
    """Stable fingerprint of a short text block (case- and whitespace-insensitive)."""
    key = normalize_text(text).casefold()
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


@dataclass(slots=True)
class Block:
    el: object  # lxml element
    text: str  # normalised text
    key: str | None  # fingerprint when the block is recurring-eligible (20..400 chars), else None


def _block_elements(root):
    """``//body//p | //body//div | …`` (every tag of :data:`_BLOCK_TAGS`) in document order. One tree walk:
    libxml2 evaluates a union by merging node sets with a duplicate check, quadratic when two of the
    sets are large (50,000 <p> in 50,000 <div>)."""
    for body in root.iter("body"):
        if next(body.iterancestors("body"), None) is None:  # a nested body's blocks come with the outer one
            yield from body.iterdescendants(*_BLOCK_TAGS)


def _non_space(text: str) -> int:
    """Characters of ``text`` that are not normalize-space() whitespace: a lower bound of its normalised
    length (four C-level counts instead of a regex substitution over an article-sized text)."""
    return len(text) - text.count(" ") - text.count("\n") - text.count("\t") - text.count("\r")


def _short_blocks(root, limit: int) -> list[tuple[object, str]]:
    """``(element, text_content())`` of the block elements whose ``string-length(normalize-space(.))`` is
    at most ``limit``, in document order. Innermost first: a block around a longer one is long as well, so
    it is marked without reading its text (a chain of nested blocks around an article reads the article
    once, not once per level)."""
    els = list(_block_elements(root))
    long: set = set()
    texts: list[str | None] = [None] * len(els)
    for i in range(len(els) - 1, -1, -1):  # descendants come after their ancestors in document order
        el = els[i]
        if el in long:
            continue
        text = el.text_content()
        if len(text) > limit and (_non_space(text) > limit or len(_XML_WS.sub(" ", text).strip(" ")) > limit):
            for a in el.iterancestors(*_BLOCK_TAGS):  # each element is marked once: linear overall
                if a in long:
                    break
                long.add(a)
            continue
        texts[i] = text
    return [(el, t) for el, t in zip(els, texts) if t is not None]


def text_blocks(page: ParsedPage) -> list[Block]:
    """Short block elements of the page in document order (nested blocks included, outermost first),
    with their normalised text and fingerprint. Compute this on the untouched tree."""
    out: list[Block] = []
    for el, raw in _short_blocks(page.tree, _BLOCK_TEXT_MAX):
        text = normalize_text(raw)
        if not text:
            continue
        key = block_fingerprint(text) if RECURRING_MIN_CHARS <= len(text) <= RECURRING_MAX_CHARS else None
        out.append(Block(el, text, key))
    return out


# ---------------------------------------------------------------------------------------------------
# cleaning


def _attached(el, root) -> bool:
    top = el
    while True:
        parent = top.getparent()
        if parent is None:
            return top is root
        top = parent


def _drop(el) -> None:
    """Detach ``el`` keeping its tail text in the document."""
    try:
        el.drop_tree()  # lxml.html: keeps the tail
    except AttributeError:  # a plain etree element
        parent = el.getparent()
        if parent is None:
            return
        if el.tail:
            prev = el.getprevious()
            if prev is not None:
                prev.tail = (prev.tail or "") + el.tail
            else:
                parent.text = (parent.text or "") + el.tail
        parent.remove(el)


@dataclass(slots=True)
class _PageStats:
    body_len: int
    p_len: int


def _holds_article(el, stats: _PageStats) -> bool:
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag in ("html", "body", "main"):
        return True
    if el.get("itemprop") == "articleBody" or el.find('.//*[@itemprop="articleBody"]') is not None:
        return True
    text_len = len(normalize_text(el.text_content()))
    if text_len > 600 and text_len > 0.6 * stats.body_len:
        return True
    if stats.p_len > 300:
        p_len = len(el.text_content()) if tag == "p" else _p_text_len_in(el)
        if p_len > 0.4 * stats.p_len and p_len > 300:
            return True
    return False


def _removal(page: ParsedPage, kind: str, rule: str, text: str) -> Removal:
    return Removal(url=page.url, kind=kind, rule=rule, text=text[:REMOVAL_TEXT_MAX])


def clean_tree(page: ParsedPage, rules: RuleSet, recurring: frozenset[str] = frozenset(), *,
               blocks: list[Block] | None = None) -> list[Removal]:
    """Remove boilerplate from ``page.tree`` in place; return what was removed and why.

    ``recurring``: fingerprints (:func:`block_fingerprint`) of blocks learned as boilerplate of this host.
    ``blocks``: :func:`text_blocks` of the untouched tree when the caller already computed them."""
    from newsmill.tasks.urls import domain_of

    root = page.tree
    comp = _compiled(rules, domain_of(page.url) if page.url else None)
    if blocks is None:
        blocks = text_blocks(page)
    stats = _PageStats(body_len=int(_BODY_LEN(root) or 0), p_len=_p_text_len(root))
    removals: list[Removal] = []

    # 1. element rules: class/id tokens, tags, XPath/CSS
    candidates: list[tuple[object, SelectorRule]] = []
    if comp.element_xpath is not None:
        for el in comp.element_xpath(root):  # document order: outer matches come first
            rule = comp.token_rule(el)  # a class/id rule is more specific than a bare tag rule
            if rule is None and comp.tag_rules:
                rule = comp.tag_rules.get(el.tag)
            if rule is not None:
                candidates.append((el, rule))
    for xp, rule in comp.xpath_rules:
        for el in xp(root):
            if hasattr(el, "tag"):
                candidates.append((el, rule))
    for el, rule in candidates:
        if not _attached(el, root) or _holds_article(el, stats):
            continue
        text = normalize_text(el.text_content())
        _drop(el)
        removals.append(_removal(page, rule.kind, rule.name, text))

    # 2. block rules: recurring fingerprints, then phrases (short, self-contained blocks only)
    page_len = stats.p_len if stats.p_len >= 200 else stats.body_len
    max_recurring = RECURRING_MAX_SHARE * max(page_len, 1)
    verdicts: dict[str, PhraseRule | None] = {}  # nested blocks often share one text
    for b in blocks:
        if b.key is not None and b.key in recurring and len(b.text) <= max_recurring:
            kind, name = "recurring", "recurring"
        else:
            if b.text in verdicts:
                rule = verdicts[b.text]
            else:
                rule = verdicts[b.text] = comp.block_phrases.match(b.text)
            if rule is None:
                continue
            kind, name = rule.kind, rule.name
        if not _attached(b.el, root):
            continue
        _drop(b.el)
        removals.append(_removal(page, kind, name, b.text))
    return removals


def clean_lines(lines: list[str], rules: RuleSet, domain: str | None, url: str = "") -> tuple[list[str], list[Removal]]:
    """Text-level pass over extracted lines: drop lines wholly matched by a phrase rule (any scope)."""
    comp = _compiled(rules, domain)
    kept: list[str] = []
    removals: list[Removal] = []
    list_of: PhraseRule | None = None  # a "Related:" teaser line owns the short "- item" lines after it
    for line in lines:
        text = normalize_text(line)
        if not text:
            continue
        if list_of is not None and text.startswith("- ") and len(text) <= _LIST_ITEM_MAX:
            removals.append(Removal(url=url, kind=list_of.kind, rule=list_of.name, text=text))
            continue
        rule = comp.text_phrases.match(text)
        list_of = rule if rule is not None and rule.kind == "related" else None
        if rule is None:
            kept.append(line)
        else:
            removals.append(Removal(url=url, kind=rule.kind, rule=rule.name, text=text[:REMOVAL_TEXT_MAX]))
    return kept, removals
