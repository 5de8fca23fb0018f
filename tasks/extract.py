"""Clean + extract one page (or a batch of pages) into an :class:`~tasks.records.Article`.

Per page, with ONE parse::

    parse_html ─► text blocks + fingerprints (untouched tree)
               ─► metadata (tasks.metadata) and copyright tree evidence (tasks.copyright), untouched tree
               ─► clean_tree: rules + recurring blocks removed from the same tree (Removal rows)
               ─► repairs on the cleaned tree: an article body split into same-class containers merged
                  (every mode); standfirst out of the article <header>, empty markers that would take the
                  following text with them (precision mode): see _LEAD_MIN_CHARS
               ─► trafilatura.bare_extraction on the cleaned tree (it deep-copies the element; no re-parse);
                  only when that text is short: a recall pass on the same tree, then the uncleaned tree
                  (re-parsed) — Article.text_path says which produced the text (see _RETRY_MAX_CHARS)
               ─► text pass: trailing in-body copyright line captured (match_copyright_line) and removed,
                  phrase rules on the remaining lines, a repeated title line dropped
               ─► copyright decided once: tasks.copyright.combine(tree evidence, captured body notices)
               ─► language (py3langid; the page's declared language for short text)
               ─► Article (content_hash = sha256 of the normalised text; article_id of the canonical URL)

Errors are values: ``ExtractResult.outcome`` is ``ok``, ``no_article`` (no usable text) or
``parse_error``, with ``error`` saying why; one bad page never raises out of :func:`extract_batch`.

:func:`extract_batch` is a module-level function taking picklable arguments (a worker-process entry point):
it pre-scans the batch (one parse per page, trees kept), learns recurring blocks per host
(:mod:`tasks.recurring`), then cleans and extracts with the same trees.

Public API: :func:`extractor_version`, :func:`extract_page`, :func:`extract_batch`, :data:`MIN_TEXT_CHARS`.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
from dataclasses import dataclass

import trafilatura
from lxml import etree
from lxml import html as lxml_html
from trafilatura.xpaths import BODY_XPATH as _TRAFILATURA_BODY_XPATH

from newsmill.tasks.clean import (
    Block,
    RuleSet,
    clean_lines,
    clean_tree,
    normalize_text,
    page_text_length,
    text_blocks,
)
from newsmill.tasks.config import ExtractSettings
from newsmill.tasks.language import detect_language
from newsmill.tasks.parse import ParsedPage, ParseError, parse_html
from newsmill.tasks.records import Article, ExtractResult, Removal
from newsmill.tasks.urls import article_id, domain_of

__all__ = ["MIN_TEXT_CHARS", "batch_steps", "extract_batch", "extract_page",
           "extractor_version"]

MIN_TEXT_CHARS = 100  # less extracted text than this is "no_article"
_TRAILING_LINES = 4  # how far from the end of the text a copyright line is looked for
# never article text (trafilatura discards them all as well): stripped silently, before blocks are read
# (a <noscript> holding real text is unwrapped first: see _strip_non_text)
_NON_TEXT = ("script", "style", "svg", "template", "link", "meta", "noscript", "iframe", "embed", "object",
             "applet", "canvas", "map", "audio", "video", "picture", "source", "select", "textarea", "input",
             "button", "datalist", etree.Comment)
_HEAD_LINES = 4  # how far from the top a repeated headline / byline is looked for
_BYLINE_START = re.compile(r"^(by|from|por|par|von|di|door|av|de)\s", re.I)
_BYLINE_FILLER = re.compile(r"\b(by|and|und|y|et|e|with|por|par|von|di|de|the|staff|writer|reporter|"
                            r"correspondent|redacción|rédaction|redaktion|updated|published|\d+)\b", re.I)
# Never empty where the extractor finds text (issue 12). The first pass (settings.favor_precision) on the
# cleaned tree is kept unless it is short: under MIN_TEXT_CHARS, or under _RETRY_MAX_CHARS while holding
# less than _RETRY_PAGE_SHARE of the cleaned tree's paragraph text (precision mode dropped most of a page
# the rules left standing). Then a recall pass on the same cleaned tree (trafilatura's balanced mode,
# which escalates to favor_recall itself) replaces it when _RETRY_ACCEPT_RATIO times longer; if the text
# is still under MIN_TEXT_CHARS, the uncleaned tree (re-parsed: the cleaning rules removed the article)
# is extracted; still short, the cleaned tree's largest <article> element alone (a page whose structure
# hides it from trafilatura). Text-level rules apply on every path; Article.text_path records which one
# produced it.
_NOSCRIPT_TEXT_CHARS = 200  # a <noscript> with more text than this is content (blogs, no-JS fallbacks)
_RETRY_MAX_CHARS = 3000
_RETRY_PAGE_SHARE = 0.3
_RETRY_ACCEPT_RATIO = 1.5
_CODE_VERSION = "3.5"  # bump when this module's extraction logic changes meaningfully
# Article text trafilatura's precision mode drops for reasons unrelated to boilerplate (issue 12); the
# cleaned tree is repaired before that pass (_precision_repairs: moves and text-neutral removals, no copy):
# 1. it deletes every <header> inside the article frame, and with it the standfirst written as a
#    paragraph under the headline (<header><h1>…</h1><p class="lead">…</p></header>). Paragraphs (and
#    lead/intro/summary-classed divs) of at least _LEAD_MIN_CHARS in an article's header — a <header> in
#    an <article> or holding the <h1>, small (_LEAD_HEADER_MAX_CHARS) and not wrapping the article — are
#    moved to the top of the body (before the first paragraph after the header). Headings stay inside (a
#    second headline, a dek: not body text in the publishers' own articleBody).
# 2. it deletes an empty element together with the text that follows it: a WordPress "more" anchor
#    (<span id="more-123"></span>) eats the paragraph after it, a table-of-contents target
#    (<h2><span id="…"></span>Heading</h2>) the heading, an empty <strong></strong> left by an editor the
#    rest of the sentence. Such an element (span/i/b/em/strong, no content, no attribute but an id/name) is
#    removed with its following text kept. Icon elements (a class, no id: "fa fa-clock") keep the old
#    behaviour: the label after an icon is mostly interface text.
# 3. it deletes a short heading that holds a link without text: heading permalinks
#    (<h2>Title<a class="anchor" href="#title"></a></h2>). Such empty links inside headings are removed.
# 4. (every mode) an article body split into several containers: _merge_split_body.
_LEAD_MIN_CHARS = 80
_LEAD_HEADER_MAX_CHARS = 2000
_BODY_XPATH = _TRAFILATURA_BODY_XPATH[0]  # the article-body classes and ids trafilatura looks for first
_LEAD_CLASS = re.compile(r"(?:^|[-_\s])(?:lead|intro|introduction|standfirst|summary|excerpt|dek|deck|subtitle|"
                         r"teaser|abstract|description)(?:$|[-_\s])", re.I)

logging.getLogger("trafilatura").setLevel(logging.ERROR)  # "discarding data" warnings: we report outcomes


def extractor_version(rules: RuleSet) -> str:
    """Version string stored with every article: code, trafilatura and rule-data versions."""
    return f"newsmill-{_CODE_VERSION}+trafilatura-{trafilatura.__version__}+rules-{rules.version or 'custom'}"


# ---------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Prepared:
    page: ParsedPage
    blocks: list[Block]
    metadata: object  # tasks.metadata.Metadata
    site: object | None  # tasks.metadata.SiteRule
    copyright: object  # tasks.copyright.TreeEvidence: every source but the body line, untouched tree
    html: str | bytes | None = None  # the page as given, re-parsed only for the uncleaned fallback


def _strip_non_text(tree, html: str | bytes | None = None) -> None:
    """Drop code and styling (C-level, no Removal rows); a <noscript> holding real text is unwrapped first
    (blog engines and no-JS fallbacks put the whole post there). ``html``: the page source, when given a
    page without "<noscript" in it spares the tree walk."""
    if html is None or _has_noscript(html):
        for el in list(tree.iter("noscript")):
            if len(el.text_content()) > _NOSCRIPT_TEXT_CHARS and el.getparent() is not None:
                el.drop_tag()
    etree.strip_elements(tree, *_NON_TEXT, with_tail=False)


def _has_noscript(html: str | bytes) -> bool:
    if isinstance(html, bytes):
        return b"<noscript" in html or b"<NOSCRIPT" in html or b"<Noscript" in html
    return "<noscript" in html or "<NOSCRIPT" in html or "<Noscript" in html


def _prepare(page: ParsedPage, rules: RuleSet, html: str | bytes | None = None) -> _Prepared:
    """Everything read from the untouched tree: metadata, copyright evidence, then (with code and styling
    stripped) the text blocks and their fingerprints."""
    from newsmill.tasks.copyright import tree_evidence
    from newsmill.tasks.metadata import extract_metadata

    site = rules.site_rule(domain_of(page.url))
    metadata = extract_metadata(page, site)
    copyright_info = tree_evidence(page)  # decided with the body line by tasks.copyright.combine
    # code and styling are never article text; dropping them (C-level, no Removal rows) keeps script
    # bodies out of block texts and spares trafilatura copying them several times. JSON-LD was already
    # read by parse_html.
    _strip_non_text(page.tree, html)
    blocks = text_blocks(page)
    return _Prepared(page, blocks, metadata, site, copyright_info, html)


def _content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _post_clean(text: str, rules: RuleSet, domain: str, url: str, title: str | None,
                authors: tuple[str, ...] = ()):
    """Text-level pass. Returns (kept lines, removals, copyright notices captured: CopyrightInfo, the
    last line first, then notices removed by copyright phrase rules)."""
    from newsmill.tasks.copyright import match_copyright_line

    lines = [ln for ln in (normalize_text(x) for x in text.split("\n")) if ln]
    removals: list[Removal] = []
    captured = []
    # 1. trailing in-body copyright / republication notice
    i = len(lines) - 1
    stop = max(len(lines) - _TRAILING_LINES, 0)
    while i >= stop:
        info = match_copyright_line(lines[i])
        if info is not None:
            captured.append(info)
            removals.append(Removal(url=url, kind="copyright", rule="copyright.body_line", text=lines[i]))
            del lines[i]
        i -= 1
    # 2. phrase rules on the remaining lines
    lines, more = clean_lines(lines, rules, domain, url)
    removals += more
    for r in more:
        if r.kind == "copyright":
            info = match_copyright_line(r.text)
            if info is not None:
                captured.append(info)
    # 3. the headline and the byline repeated at the top of the body (fields of their own)
    head = _HEAD_LINES
    title_key = normalize_text(title).casefold() if title else None
    names = [n.casefold() for n in authors if n and len(n) >= 4]
    i = 0
    while i < min(head, len(lines)):
        line = lines[i]
        low = line.casefold()
        if title_key and low == title_key:
            removals.append(Removal(url=url, kind="other", rule="text.title_repeat", text=line))
            del lines[i]
            title_key = None
            continue
        if names and len(line) <= 160 and any(n in low for n in names):
            rest = low
            for n in names:
                rest = rest.replace(n, " ")
            rest = _BYLINE_FILLER.sub(" ", rest).strip(" ,;:.-–—|·•/")
            if _BYLINE_START.match(line) or len(rest) <= 12:
                removals.append(Removal(url=url, kind="other", rule="text.byline", text=line))
                del lines[i]
                names = []
                continue
        i += 1
    return lines, removals, captured


def _has_twin_containers(tree) -> bool:
    """Whether two distinct elements of the same tag and class each hold at least two <p> children
    (one walk over the paragraphs)."""
    parents: dict[tuple, list] = {}  # (tag, class) -> [[parent, paragraph count], ...]
    for p in tree.iter("p"):
        parent = p.getparent()
        cls = parent.get("class") if parent is not None else None
        if not cls:
            continue
        seen = parents.setdefault((parent.tag, cls), [])
        for entry in seen:
            if entry[0] is parent:
                entry[1] += 1
                break
        else:
            seen.append([parent, 1])
    return any(sum(1 for _el, n in seen if n >= 2) >= 2 for seen in parents.values())


def _merge_split_body(tree) -> None:
    """4. (every mode) an article body split into several containers of the same class by ad rails or
    layout grids (<div class="article__body">…</div><aside>ad</aside><div class="article__body">…</div>):
    trafilatura reads the first container its body XPath finds and loses the rest. Later containers with
    the same tag and class, each holding at least two paragraphs and not nested in the first, have their
    content appended to the first, in document order. It stops at a container whose parent also holds a
    headline outside it (a list of posts, each with its title, is not one article). One XPath per page
    (trafilatura's own first body expression)."""
    if not _has_twin_containers(tree):
        return  # nearly every page: the XPath (~1 ms) runs only when two same-class containers hold text
    found = [el for el in _BODY_XPATH(tree) if el is not None]
    if len(found) < 2:
        return
    first = found[0]
    if sum(1 for c in first if c.tag == "p") < 2:
        return
    for el in found[1:]:
        if (el.tag, el.get("class")) != (first.tag, first.get("class")) or sum(1 for c in el if c.tag == "p") < 2:
            continue
        if any(a is first for a in el.iterancestors()) or any(a is el for a in first.iterancestors()):
            continue
        parent = el.getparent()
        if parent is not None and any(next((a for a in h.iterancestors() if a is el), None) is None
                                      for h in parent.iter("h1", "h2", "h3")):
            break
        for child in list(el):
            first.append(child)


def _precision_repairs(tree) -> None:
    """Repair the cleaned tree before trafilatura's precision pass (the classes at _LEAD_MIN_CHARS)."""
    eaters = []
    for el in tree.iter("h1", "h2", "h3", "h4", "h5", "h6", "span", "i", "b", "em", "strong"):
        if el.tag[0] == "h":  # 3. an empty link in a heading
            eaters += [a for a in el.iter("a") if len(a) == 0 and not (a.text or "").strip()]
        elif len(el) == 0 and el.text is None and el.tail and el.tail.strip() and (
                not el.attrib or "id" in el.attrib or "name" in el.attrib):  # 2. an empty marker before text
            eaters.append(el)
    for el in eaters:
        if el.getparent() is not None:
            el.drop_tree()  # lxml.html: the tail (the text after it) stays in the document
    for header in list(tree.iter("header")):
        if header.getparent() is None or (
                next(header.iter("h1"), None) is None and next(header.iterancestors("article"), None) is None):
            continue
        if next(header.iter("article", "main"), None) is not None \
                or len(header.text_content()) > _LEAD_HEADER_MAX_CHARS:
            continue  # a page header left open around the article, not an article's header
        leads: list = []
        for el in header.iter("p", "div"):
            if el.tag == "div" and not _LEAD_CLASS.search(el.get("class") or ""):
                continue
            if any(a in leads for a in el.iterancestors()):
                continue
            if len(normalize_text(el.text_content())) >= _LEAD_MIN_CHARS:
                leads.append(el)
        if not leads:
            continue
        # into the body: before the first paragraph after the header (trafilatura may take the body
        # container, a sibling of the header, as the article), else right after the header
        body = next((s for s in header.itersiblings() if s.tag == "p" or next(s.iter("p"), None) is not None),
                    None)
        first_p = body if body is None or body.tag == "p" else next(body.iter("p"))
        anchor = header
        for el in leads:
            if el.tail and el.tail.strip():  # text after the lead stays where it was
                prev, parent = el.getprevious(), el.getparent()
                if prev is not None:
                    prev.tail = (prev.tail or "") + el.tail
                else:
                    parent.text = (parent.text or "") + el.tail
            el.tail = None
            if first_p is not None:
                first_p.addprevious(el)
            else:
                anchor.addnext(el)
                anchor = el


def _trafilatura_text(tree, url: str, **options) -> str:
    doc = trafilatura.bare_extraction(tree, url=url, include_comments=False, with_metadata=False, **options)
    return ((doc.text if doc is not None else None) or "").strip()


def _extract_text(prep: _Prepared, url: str, *, rules: RuleSet, settings: ExtractSettings, domain: str):
    """The article text of the cleaned tree, with the fallbacks described at _RETRY_MAX_CHARS.
    Returns (text_path, text, text-level removals, captured copyright notices)."""
    page, md = prep.page, prep.metadata
    title, authors = md.title, tuple(md.authors or ())

    def passed(raw: str):
        lines, more, captured = _post_clean(raw, rules, domain, url, title, authors) if raw else ([], [], [])
        return "\n".join(lines), more, captured

    _merge_split_body(page.tree)
    if settings.favor_precision:
        _precision_repairs(page.tree)
    text, more, captured = passed(_trafilatura_text(page.tree, url, favor_precision=settings.favor_precision))
    path = "cleaned"
    if len(text) < MIN_TEXT_CHARS or (
            len(text) < _RETRY_MAX_CHARS and len(text) < _RETRY_PAGE_SHARE * page_text_length(page)):
        recall = {} if settings.favor_precision else {"favor_recall": True}
        text2, more2, captured2 = passed(_trafilatura_text(page.tree, url, **recall))
        if len(text2) >= MIN_TEXT_CHARS and len(text2) > _RETRY_ACCEPT_RATIO * len(text):
            path, text, more, captured = "recall", text2, more2, captured2
    if len(text) < MIN_TEXT_CHARS and prep.html is not None:
        try:
            raw_page = parse_html(prep.html, url)
        except ParseError:
            raw_page = None
        if raw_page is not None:
            _strip_non_text(raw_page.tree, prep.html)
            text3, more3, captured3 = passed(_trafilatura_text(raw_page.tree, url))
            if len(text3) >= MIN_TEXT_CHARS and len(text3) > len(text):
                path, text, more, captured = "uncleaned", text3, more3, captured3
    if len(text) < MIN_TEXT_CHARS:
        article = max(page.tree.iter("article"), key=lambda el: len(el.text_content()), default=None)
        if article is not None and len(article.text_content()) >= MIN_TEXT_CHARS:
            # the page's structure hides the article from trafilatura (e.g. a sidebar widget left unclosed
            # wraps the rest of the page, and a container named "nav…" is discarded with everything in it):
            # the cleaned tree's <article> element alone, in a document of its own
            doc = lxml_html.Element("html")
            body = lxml_html.Element("body")
            doc.append(body)
            body.append(copy.deepcopy(article))
            text4, more4, captured4 = passed(_trafilatura_text(doc, url, favor_precision=settings.favor_precision))
            if len(text4) >= MIN_TEXT_CHARS:
                path, text, more, captured = "article", text4, more4, captured4
    return path, text, more, captured


def _extract_prepared(prep: _Prepared, url: str, *, rules: RuleSet, settings: ExtractSettings,
                      recurring: frozenset[str]) -> ExtractResult:
    from newsmill.tasks.copyright import combine

    page, md = prep.page, prep.metadata
    domain = domain_of(url)
    block_hashes = tuple(sorted({b.key for b in prep.blocks if b.key is not None}))

    tree_removals = clean_tree(page, rules, recurring, blocks=prep.blocks)
    text_path, text, more, captured = _extract_text(prep, url, rules=rules, settings=settings, domain=domain)
    removals = (tree_removals if text_path != "uncleaned" else []) + more
    if not text:
        return ExtractResult(url=url, article=None, removals=tuple(removals), outcome="no_article",
                             error="no article text found (trafilatura returned nothing on every path)",
                             block_hashes=block_hashes)
    if len(text) < MIN_TEXT_CHARS:
        return ExtractResult(url=url, article=None, removals=tuple(removals), outcome="no_article",
                             error=f"article text too short ({len(text)} chars < {MIN_TEXT_CHARS})",
                             block_hashes=block_hashes)
    cr = combine(prep.copyright, captured, metadata=md, site_name=md.site_name)
    site_lang = getattr(prep.site, "language", None) if prep.site is not None else None
    language = detect_language(text, html_lang=md.html_lang or site_lang, min_chars=settings.language_min_chars)
    canonical = md.canonical_url or url
    article = Article(
        url=url,
        canonical_url=canonical,
        domain=domain,
        site_name=md.site_name,
        title=md.title,
        authors=tuple(md.authors or ()),
        published_at=md.published_at,
        published_date=md.published_date,
        modified_at=md.modified_at,
        language=language,
        description=md.description,
        text=text,
        copyright_holder=cr.holder if cr else None,
        copyright_year=cr.year if cr else None,
        copyright_notice=cr.notice if cr else None,
        license_url=cr.license_url if cr else None,
        content_hash=_content_hash(text),
        tags=tuple(md.tags or ()),
        image_url=md.image_url,
        paywalled=md.paywalled,
        copyright_source=cr.source if cr else None,
        syndicated=cr.syndicated if cr else None,
        text_path=text_path,
        article_id=article_id(canonical),
        extractor_version=extractor_version(rules),
    )
    return ExtractResult(url=url, article=article, removals=tuple(removals), outcome="ok",
                         block_hashes=block_hashes)


def _failed(url: str, exc: BaseException) -> ExtractResult:
    return ExtractResult(url=url, article=None, outcome="no_article",
                         error=f"extraction failed: {type(exc).__name__}: {exc}")


def extract_page(html: str | bytes, url: str, *, rules: RuleSet, settings: ExtractSettings,
                 recurring: frozenset[str] = frozenset()) -> ExtractResult:
    """Clean and extract one page. ``recurring``: block fingerprints learned for this page's host."""
    try:
        page = parse_html(html, url)
    except ParseError as exc:
        return ExtractResult(url=url, article=None, outcome="parse_error", error=str(exc))
    try:
        return _extract_prepared(_prepare(page, rules, html), url, rules=rules, settings=settings,
                                 recurring=recurring)
    except Exception as exc:  # noqa: BLE001 - errors are values; the reason is kept
        return _failed(url, exc)


def extract_batch(pages: list[tuple[str, str | bytes]], *, rules: RuleSet, settings: ExtractSettings,
                  history: dict[str, frozenset[str]] | None = None) -> list[ExtractResult]:
    """Extract a batch of ``(url, html)`` pages, learning recurring blocks per host across the batch
    (plus ``history[domain]`` from earlier runs). Results are in input order. No time budget: see
    :func:`tasks.budget.extract_batch_budgeted` for the one every flow uses."""
    return [step[2] for step in batch_steps(pages, rules=rules, settings=settings, history=history)
            if step[0] == "result"]


def batch_steps(pages: list[tuple[str, str | bytes]], *, rules: RuleSet, settings: ExtractSettings,
                history: dict[str, frozenset[str]] | None = None,
                learned: dict[str, frozenset[str]] | None = None):
    """:func:`extract_batch` step by step, for a supervisor that times each page (:mod:`tasks.budget`).

    Yields ``("prepared", i, None)`` after page ``i``'s first pass (parse, metadata, blocks), then
    ``("learned", None, learned)`` (recurring blocks per host; ``learned`` given: not learned again), then
    ``("result", i, ExtractResult)`` for every page in input order."""
    from newsmill.tasks.recurring import learn_recurring, page_signature

    prepared: list[_Prepared | ExtractResult] = []
    signatures = []
    for i, (url, html) in enumerate(pages):
        try:
            page = parse_html(html, url)
        except ParseError as exc:
            prepared.append(ExtractResult(url=url, article=None, outcome="parse_error", error=str(exc)))
            yield "prepared", i, None
            continue
        try:
            prep = _prepare(page, rules, html)
            if learned is None:
                canonical = prep.metadata.canonical_url or url
                signatures.append(page_signature(page, prep.blocks, domain=domain_of(url),
                                                 identity=article_id(canonical)))
            prepared.append(prep)
        except Exception as exc:  # noqa: BLE001
            prepared.append(_failed(url, exc))
        yield "prepared", i, None
    if learned is None:
        learned = learn_recurring(signatures, settings.recurring_min_pages, history)
    yield "learned", None, learned
    for i, ((url, _html), item) in enumerate(zip(pages, prepared)):
        if not isinstance(item, ExtractResult):
            try:
                item = _extract_prepared(item, url, rules=rules, settings=settings,
                                         recurring=learned.get(domain_of(url), frozenset()))
            except Exception as exc:  # noqa: BLE001
                item = _failed(url, exc)
        prepared[i] = None  # the tree is no longer needed
        yield "result", i, item
