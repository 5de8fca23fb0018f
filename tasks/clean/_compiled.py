"""The compiled form of a rule set, per process, cached by rule-set version and site."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from newsmill.tasks.clean._rules import PhraseRule, RuleSet, SelectorRule

try:  # the regex parser, to index phrase patterns by their first character
    from re import _constants as _C, _parser as _sre_parse  # Python >= 3.11
except ImportError:  # pragma: no cover
    import sre_constants as _C  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

# class tokens naming what a post is ABOUT, never what an element IS: WordPress post_class()/body_class()
# taxonomy terms ("category-no-newsletter-rss", "tag-advertising" on the <article> itself)
_TAXONOMY_TOKENS = ("category-", "tag-", "post_tag-", "tax-", "term-")


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


# Length tiers of the combined regexes: a block longer than a tier's lower bound is tried only against the
# rules whose ``max_chars`` admit it (most rules are for short blocks; article paragraphs are long).
_TIERS = (60, 150, 300)
# Verdicts kept per process for blocks up to this length: menus, share bars and labels repeat across pages.
_MEMO_MAX_CHARS = 300
_MEMO_MAX_ENTRIES = 50_000


def _tier(length: int) -> int:
    for i, bound in enumerate(_TIERS):
        if length <= bound:
            return i
    return len(_TIERS)


@dataclass(slots=True)
class _PhraseMatcher:
    """Phrase rules compiled for speed: a block is tried only against the patterns that can start with
    its first word character (plus the few that can start anywhere) and whose rule admits its length
    tier, in one combined regex per (character, tier). Verdicts on short blocks are memoised."""

    rules: tuple[PhraseRule, ...]
    by_char: dict[str, list[tuple[int, str]]]  # first char -> [(rule index, pattern)]
    floating: list[tuple[int, str]]
    max_len: int
    compiled: dict[tuple[str, int], tuple[re.Pattern | None, tuple]] = field(default_factory=dict)
    memo: dict[str, PhraseRule | None] = field(default_factory=dict)

    def _combined(self, ch: str, tier: int = 0):
        hit = self.compiled.get((ch, tier))
        if hit is None:
            floor = _TIERS[tier - 1] if tier else 0  # blocks of this tier are longer than this
            pats = sorted((i, p) for i, p in self.by_char.get(ch, []) + self.floating
                          if self.rules[i].max_chars > floor)
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
            self.compiled[(ch, tier)] = hit
        return hit

    def match(self, text: str) -> PhraseRule | None:
        if not self.rules or len(text) > self.max_len:
            return None
        if len(text) <= _MEMO_MAX_CHARS:
            memo = self.memo
            try:
                return memo[text]
            except KeyError:
                pass
            if len(memo) >= _MEMO_MAX_ENTRIES:
                memo.clear()
            rule = memo[text] = self._match(text)
            return rule
        return self._match(text)

    def _match(self, text: str) -> PhraseRule | None:
        m0 = _LEAD.match(text)
        first = text[m0.end():m0.end() + 1] if m0 else text[:1]
        combined, singles = self._combined(first.lower(), _tier(len(text)))
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


def compile_rules(rules: RuleSet, domain: str | None = None) -> None:
    """Compile ``rules`` (with ``domain``'s site rules) completely now, every phrase regex included, instead
    of lazily on the first block that needs each one: a process that forks extraction children
    (``tasks.preload``) does it once, so no child rebuilds them."""
    comp = _compiled(rules, domain)
    for matcher in (comp.block_phrases, comp.text_phrases):
        for ch in matcher.by_char:
            for tier in range(len(_TIERS) + 1):
                matcher._combined(ch, tier)
