"""Boilerplate removal on the parsed tree. Rules are data (``config/rules/*.toml``, per-site overrides in
``config/sites/<domain>.toml``); this module only loads, compiles and applies them.

Rule files (one per kind; see the header of ``config/rules/ad.toml`` for the full schema)::

    kind = "ad"                      # default kind of the rules in the file (records.BOILERPLATE_KINDS)
    [[selectors]]                    # element rules
    name = "ad.slot"
    tokens = ["ads?", "ad[-_].*"]    # regexes; each must match ONE whole class token or the id
    # or: tags = ["nav"]  |  css = ".newsletter-signup"  |  xpath = "//div[@data-ad]"
    [[phrases]]                      # block rules
    name = "ad.label.en"
    lang = "en"                      # for readers of the file only: every rule applies to every page
    max_chars = 80                   # only blocks this short are candidates
    patterns = ["advertisement", "\\d+x\\d+ ad"]   # must match the WHOLE block text (case-insensitive)
    scope = "block"                  # "block": tree blocks and text lines; "text": text lines only

Guards (article text must survive):

- a phrase rule only removes a short, self-contained block (``p``, ``div``, ``li``, headings, ...) whose
  whole normalised text is matched by the pattern; a sentence inside a normal paragraph never matches;
- a selector rule never removes ``html``/``body``, an element holding the ``articleBody``, or an element
  holding most of the page's paragraph text (a wrapper such as ``<div class="has-ads">``);
- recurring blocks (``recurring`` hashes learned per host, see ``tasks.recurring``) are removed only when
  short and a small share of the page's text.

Removed elements are detached with ``drop_tree`` (their tail text stays in the document). Every removal is
returned as a :class:`~tasks.records.Removal` naming the rule.

Public API: :func:`load_rules`, :func:`rules_from_dicts`, :class:`RuleSet`, :class:`SelectorRule`,
:class:`PhraseRule`, :class:`SiteRules`, :func:`clean_tree`, :func:`text_blocks`, :class:`Block`,
:func:`block_fingerprint`, :func:`normalize_text`, :func:`clean_lines`, :data:`RECURRING_MAX_CHARS`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

try:  # the regex parser, to index phrase patterns by their first character
    from re import _constants as _C, _parser as _sre_parse  # Python >= 3.11
except ImportError:  # pragma: no cover
    import sre_constants as _C  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

from newsmill.tasks.selectors import css_to_xpath
from newsmill.tasks.config import RULES_DIR, SITES_DIR, read_toml
from newsmill.tasks.errors import ConfigError
from newsmill.tasks.parse import ParsedPage
from newsmill.tasks.records import BOILERPLATE_KINDS, Removal

__all__ = [
    "Block",
    "PhraseRule",
    "RECURRING_MAX_CHARS",
    "RECURRING_MIN_CHARS",
    "RuleSet",
    "SelectorRule",
    "SiteRules",
    "block_fingerprint",
    "clean_lines",
    "clean_tree",
    "load_rules",
    "normalize_text",
    "page_text_length",
    "rules_from_dicts",
    "text_blocks",
]

RECURRING_MAX_CHARS = 400  # blocks longer than this are never fingerprinted (article paragraphs)
RECURRING_MIN_CHARS = 20  # nor shorter than this ("Share", "Photo", single words)
RECURRING_MAX_SHARE = 0.25  # a block holding more of the page's text is never recurring boilerplate
REMOVAL_TEXT_MAX = 2000
# class tokens naming what a post is ABOUT, never what an element IS: WordPress post_class()/body_class()
# taxonomy terms ("category-no-newsletter-rss", "tag-advertising" on the <article> itself)
_TAXONOMY_TOKENS = ("category-", "tag-", "post_tag-", "tax-", "term-")
_LIST_ITEM_MAX = 160

# ---------------------------------------------------------------------------------------------------
# rules (plain, picklable data)


@dataclass(frozen=True, slots=True)
class SelectorRule:
    name: str
    kind: str
    tokens: tuple[str, ...] = ()  # regexes, each fullmatches one class token or the id (case-insensitive)
    tags: tuple[str, ...] = ()
    xpath: str | None = None  # css rules are translated to XPath when loaded


@dataclass(frozen=True, slots=True)
class PhraseRule:
    name: str
    kind: str
    patterns: tuple[str, ...]
    max_chars: int = 200
    scope: str = "block"  # "block" | "text"


@dataclass(frozen=True, slots=True)
class SiteRules:
    """``config/sites/<domain>.toml``: extra cleaning rules for one domain (and its subdomains) plus the
    metadata hints (``[metadata]`` table, a :class:`tasks.metadata.SiteRule`)."""

    domain: str
    selectors: tuple[SelectorRule, ...] = ()
    phrases: tuple[PhraseRule, ...] = ()
    metadata: object | None = None  # tasks.metadata.SiteRule


@dataclass(frozen=True, slots=True)
class RuleSet:
    """All generic rules plus per-site overrides. Picklable (only strings and tuples); the compiled form
    is built lazily once per process and cached by :attr:`version`."""

    selectors: tuple[SelectorRule, ...] = ()
    phrases: tuple[PhraseRule, ...] = ()
    sites: tuple[SiteRules, ...] = ()
    version: str = ""  # content hash of the rule data

    def site(self, domain: str | None) -> SiteRules | None:
        """The site rules for ``domain`` or its closest parent domain."""
        if not domain:
            return None
        by_domain = {s.domain: s for s in self.sites}
        parts = domain.lower().removeprefix("www.").split(".")
        for i in range(len(parts) - 1):
            hit = by_domain.get(".".join(parts[i:]))
            if hit is not None:
                return hit
        return None

    def site_rule(self, domain: str | None):
        """Metadata hints (:class:`tasks.metadata.SiteRule`) for ``domain``, or None."""
        s = self.site(domain)
        return s.metadata if s is not None else None


def _as_tuple(value, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a string or a list of strings, got {value!r}")
    return tuple(value)


def _check_kind(kind, where: str) -> str:
    if kind not in BOILERPLATE_KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of {', '.join(BOILERPLATE_KINDS)}")
    return kind


def _check_regex(pattern: str, where: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{where}: bad regex {pattern!r}: {exc}") from None


_SELECTOR_KEYS = {"name", "kind", "tokens", "tags", "css", "xpath", "lang"}
_PHRASE_KEYS = {"name", "kind", "patterns", "max_chars", "lang", "scope"}


def _selector(d: dict, default_kind: str | None, where: str, prefix: str = "") -> SelectorRule:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = set(d) - _SELECTOR_KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key (known: {', '.join(sorted(_SELECTOR_KEYS))})")
    name = d.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name: required")
    kind = _check_kind(d.get("kind", default_kind), where)
    tokens = _as_tuple(d.get("tokens"), f"{where}.tokens")
    for t in tokens:
        _check_regex(t, f"{where}.tokens")
    tags = tuple(t.lower() for t in _as_tuple(d.get("tags"), f"{where}.tags"))
    xpath = d.get("xpath")
    css = d.get("css")
    if css is not None:
        try:
            xpath = css_to_xpath(css)
        except ValueError as exc:
            raise ConfigError(f"{where}.css: bad selector {css!r}: {exc}") from None
    if xpath is not None:
        if not isinstance(xpath, str):
            raise ConfigError(f"{where}.xpath: expected a string")
        try:
            etree.XPath(xpath)
        except etree.XPathError as exc:
            raise ConfigError(f"{where}.xpath: bad XPath {xpath!r}: {exc}") from None
    if not (tokens or tags or xpath):
        raise ConfigError(f"{where}: needs tokens, tags, css or xpath")
    return SelectorRule(name=prefix + name, kind=kind, tokens=tokens, tags=tags, xpath=xpath)


def _phrase(d: dict, default_kind: str | None, where: str, prefix: str = "") -> PhraseRule:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = set(d) - _PHRASE_KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key (known: {', '.join(sorted(_PHRASE_KEYS))})")
    name = d.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name: required")
    kind = _check_kind(d.get("kind", default_kind), where)
    patterns = _as_tuple(d.get("patterns"), f"{where}.patterns")
    if not patterns:
        raise ConfigError(f"{where}.patterns: required")
    for p in patterns:
        _check_regex(p, f"{where}.patterns")
    max_chars = d.get("max_chars", 200)
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise ConfigError(f"{where}.max_chars: expected a positive integer, got {max_chars!r}")
    scope = d.get("scope", "block")
    if scope not in ("block", "text"):
        raise ConfigError(f"{where}.scope: expected 'block' or 'text', got {scope!r}")
    return PhraseRule(name=prefix + name, kind=kind, patterns=patterns, max_chars=max_chars, scope=scope)


def _rules_of(data: dict, where: str, prefix: str = "") -> tuple[list[SelectorRule], list[PhraseRule]]:
    default_kind = data.get("kind")
    if default_kind is not None:
        _check_kind(default_kind, where)
    sels = [_selector(d, default_kind, f"{where}.selectors[{i}]", prefix)
            for i, d in enumerate(data.get("selectors") or [])]
    phr = [_phrase(d, default_kind, f"{where}.phrases[{i}]", prefix)
           for i, d in enumerate(data.get("phrases") or [])]
    return sels, phr


def rules_from_dicts(generic: dict[str, dict], sites: dict[str, dict] | None = None) -> RuleSet:
    """Build a :class:`RuleSet` from parsed TOML: ``generic`` maps a file name to its table, ``sites``
    maps a domain to its site table. Raises ConfigError naming the offending key."""
    selectors: list[SelectorRule] = []
    phrases: list[PhraseRule] = []
    h = hashlib.sha256()
    for fname in sorted(generic):
        data = generic[fname]
        unknown = set(data) - {"kind", "selectors", "phrases"}
        if unknown:
            raise ConfigError(f"{fname}.{sorted(unknown)[0]}: unknown key (known: kind, phrases, selectors)")
        s, p = _rules_of(data, fname)
        selectors += s
        phrases += p
        h.update(fname.encode() + b"\0" + repr(sorted(data.items(), key=lambda kv: kv[0])).encode())
    site_rules: list[SiteRules] = []
    for domain in sorted(sites or {}):
        data = (sites or {})[domain]
        where = f"sites/{domain}"
        unknown = set(data) - {"domain", "kind", "selectors", "phrases", "metadata"}
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key (known: domain, kind, metadata, phrases, selectors)")
        s, p = _rules_of(data, where, prefix=f"site:{domain}:")
        meta = None
        if isinstance(data.get("metadata"), dict):
            from newsmill.tasks.metadata import site_rule_from_dict

            meta = site_rule_from_dict(data["metadata"], domain=domain)
        site_rules.append(SiteRules(domain=domain, selectors=tuple(s), phrases=tuple(p), metadata=meta))
        h.update(b"site:" + domain.encode() + b"\0" + repr(sorted(data.items(), key=lambda kv: kv[0])).encode())
    seen: set[str] = set()
    for r in [*selectors, *phrases, *(x for s in site_rules for x in (*s.selectors, *s.phrases))]:
        if r.name in seen:
            raise ConfigError(f"rule name {r.name!r} is used twice (removals must say which rule removed them)")
        seen.add(r.name)
    return RuleSet(selectors=tuple(selectors), phrases=tuple(phrases), sites=tuple(site_rules),
                   version=h.hexdigest()[:16])


def load_rules(rules_dir: Path | str = RULES_DIR, sites_dir: Path | str | None = SITES_DIR) -> RuleSet:
    """Load ``rules_dir/*.toml`` and ``sites_dir/<domain>.toml`` into a picklable, validated RuleSet."""
    rules_dir = Path(rules_dir)
    if not rules_dir.is_dir():
        raise ConfigError(f"rules directory not found: {rules_dir}")
    generic = {p.name: read_toml(p) for p in sorted(rules_dir.glob("*.toml"))}
    sites: dict[str, dict] = {}
    if sites_dir is not None and Path(sites_dir).is_dir():
        for p in sorted(Path(sites_dir).glob("*.toml")):
            data = read_toml(p)
            domain = data.get("domain", p.stem)
            if not isinstance(domain, str) or not domain.strip():
                raise ConfigError(f"{p}: domain: expected a string")
            sites[domain.strip().lower().removeprefix("www.")] = data
    return rules_from_dicts(generic, sites)


# ---------------------------------------------------------------------------------------------------
# compiled form (per process, cached by rule-set version and site)


def _first_chars(items) -> set[str] | None:
    """Lower-cased characters a parsed regex can start with; None when unknown (``.``, ``\\w``, ...).
    Contains "" when the whole sequence can match the empty string."""
    out: set[str] = set()
    for op, av in items:
        if op is _C.LITERAL:
            out.add(chr(av).lower())
            return out
        if op is _C.IN:
            for o, a in av:
                if o is _C.LITERAL:
                    out.add(chr(a).lower())
                elif o is _C.RANGE and a[1] - a[0] <= 64:
                    out.update(chr(c).lower() for c in range(a[0], a[1] + 1))
                elif o is _C.CATEGORY and a is _C.CATEGORY_DIGIT:
                    out.update("0123456789")
                else:
                    return None
            return out
        if op is _C.SUBPATTERN:
            sub = _first_chars(av[-1])
        elif op is _C.BRANCH:
            sub = set()
            for alt in av[1]:
                a = _first_chars(alt)
                if a is None:
                    return None
                sub |= a
        elif op in (_C.MAX_REPEAT, _C.MIN_REPEAT, getattr(_C, "POSSESSIVE_REPEAT", _C.MAX_REPEAT)):
            sub = _first_chars(av[2])
            if sub is not None and av[0] == 0:
                sub = sub | {""}
        elif op in (_C.AT, _C.ASSERT, _C.ASSERT_NOT):
            continue  # zero-width
        else:
            return None
        if sub is None:
            return None
        out |= sub - {""}
        if "" not in sub:
            return out
    out.add("")
    return out


def _dispatch_chars(pattern: str) -> set[str] | None:
    """Word characters a block matched by ``pattern`` must start with (after leading punctuation), or
    None when the pattern may start anywhere (then it is tried on every block)."""
    try:
        chars = _first_chars(_sre_parse.parse(pattern, re.I))
    except Exception:  # noqa: BLE001 - an unusual construct: just try it everywhere
        return None
    if chars is None or "" in chars or any(not (c.isalnum()) for c in chars):
        return None
    return chars


_EDGE = r"[\W_]*"
_LEAD = re.compile(r"[\W_]+")


@dataclass(slots=True)
class _PhraseMatcher:
    """Phrase rules compiled for speed: a block is tried only against the patterns that can start with
    its first word character (plus the few that can start anywhere), in one combined regex per character."""

    rules: tuple[PhraseRule, ...]
    by_char: dict[str, list[tuple[int, str]]]  # first char -> [(rule index, pattern)]
    floating: list[tuple[int, str]]
    max_len: int
    compiled: dict[str, tuple[re.Pattern | None, tuple]] = field(default_factory=dict)

    def _combined(self, ch: str):
        hit = self.compiled.get(ch)
        if hit is None:
            pats = sorted(self.by_char.get(ch, []) + self.floating)
            by_rule: dict[int, list[str]] = {}
            for i, p in pats:
                by_rule.setdefault(i, []).append(p)
            if not by_rule:
                hit = (None, ())
            else:
                order = tuple(by_rule)
                rx = re.compile("|".join(
                    f"(?P<r{i}>{_EDGE}(?:{'|'.join(f'(?:{p})' for p in by_rule[i])}){_EDGE})" for i in order),
                    re.I | re.S)
                hit = (rx, tuple((i, f"{_EDGE}(?:{'|'.join(f'(?:{p})' for p in by_rule[i])}){_EDGE}") for i in order))
            self.compiled[ch] = hit
        return hit

    def match(self, text: str) -> PhraseRule | None:
        if not self.rules or len(text) > self.max_len:
            return None
        m0 = _LEAD.match(text)
        first = text[m0.end():m0.end() + 1] if m0 else text[:1]
        combined, singles = self._combined(first.lower())
        if combined is None:
            return None
        m = combined.fullmatch(text)
        if m is None:
            return None
        for key, val in m.groupdict().items():
            if val is not None:
                rule = self.rules[int(key[1:])]
                if len(text) <= rule.max_chars:
                    return rule
                break
        # the first alternative matched but the block is too long for it: try the rules one by one
        for i, pattern in singles:  # rare: compiled on demand (re caches them)
            rule = self.rules[i]
            if len(text) <= rule.max_chars and re.fullmatch(pattern, text, re.I | re.S):
                return rule
        return None


def _phrase_matcher(rules: list[PhraseRule]) -> _PhraseMatcher:
    by_char: dict[str, list[tuple[int, str]]] = {}
    floating: list[tuple[int, str]] = []
    for i, r in enumerate(rules):
        for p in r.patterns:
            chars = _dispatch_chars(p)
            if chars is None:
                floating.append((i, p))
            else:
                for c in chars:
                    by_char.setdefault(c, []).append((i, p))
    return _PhraseMatcher(tuple(rules), by_char, floating, max((r.max_chars for r in rules), default=0))


@dataclass(slots=True)
class _Compiled:
    token_rules: tuple[SelectorRule, ...]
    token_rx: re.Pattern | None
    tag_rules: dict[str, SelectorRule]
    xpath_rules: tuple[tuple[etree.XPath, SelectorRule], ...]
    block_phrases: _PhraseMatcher
    text_phrases: _PhraseMatcher
    element_xpath: etree.XPath | None = None  # elements with a class/id, plus the tag-rule tags
    token_cache: dict = field(default_factory=dict)  # class token / id -> rule (tokens repeat a lot)

    def _token(self, tok: str) -> SelectorRule | None:
        cache = self.token_cache
        if tok in cache:
            return cache[tok]
        rule = None
        m = None if tok.lower().startswith(_TAXONOMY_TOKENS) else self.token_rx.fullmatch(tok)
        if m is not None:
            for key, val in m.groupdict().items():
                if val is not None:
                    rule = self.token_rules[int(key[1:])]
                    break
        if len(cache) > 50_000:
            cache.clear()
        cache[tok] = rule
        return rule

    def token_rule(self, el) -> SelectorRule | None:
        if self.token_rx is None:
            return None
        cls = el.get("class")
        if cls:
            for tok in cls.split():
                rule = self._token(tok)
                if rule is not None:
                    return rule
        ident = el.get("id")
        if ident:
            return self._token(ident.strip())
        return None


def _compile(rules: RuleSet, domain: str | None) -> _Compiled:
    site = rules.site(domain)
    selectors = list(rules.selectors) + (list(site.selectors) if site else [])
    phrases = list(rules.phrases) + (list(site.phrases) if site else [])
    token_rules = [s for s in selectors if s.tokens]
    token_rx = None
    if token_rules:
        token_rx = re.compile("|".join(
            f"(?P<t{i}>{'|'.join(f'(?:{t})' for t in s.tokens)})" for i, s in enumerate(token_rules)), re.I)
    tag_rules: dict[str, SelectorRule] = {}
    for s in selectors:
        for t in s.tags:
            tag_rules.setdefault(t, s)
    xpath_rules = tuple((etree.XPath(s.xpath), s) for s in selectors if s.xpath)
    paths = (["//body//*[@class or @id]"] if token_rx is not None else []) + [f"//body//{t}" for t in tag_rules]
    return _Compiled(
        element_xpath=etree.XPath(" | ".join(paths)) if paths else None,
        token_rules=tuple(token_rules), token_rx=token_rx, tag_rules=tag_rules, xpath_rules=xpath_rules,
        block_phrases=_phrase_matcher([p for p in phrases if p.scope == "block"]),
        text_phrases=_phrase_matcher(phrases),
    )


_COMPILED: dict[tuple[str, str | None], _Compiled] = {}  # per-process cache of compiled rule sets


def _compiled(rules: RuleSet, domain: str | None) -> _Compiled:
    site = rules.site(domain)
    key = (rules.version or str(id(rules)), site.domain if site else None)
    comp = _COMPILED.get(key)
    if comp is None:
        if len(_COMPILED) > 512:
            _COMPILED.clear()
        comp = _COMPILED[key] = _compile(rules, key[1])
    return comp


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
        if len(text) > limit and len(_XML_WS.sub(" ", text).strip(" ")) > limit:
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
