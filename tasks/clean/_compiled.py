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


_WORD = re.compile(r"[^\W_]")  # what _LEAD does not strip: a block is dispatched on its first such character
_REPEATS = (_C.MAX_REPEAT, _C.MIN_REPEAT, getattr(_C, "POSSESSIVE_REPEAT", _C.MAX_REPEAT))


def _unworded(items) -> bool:
    """Whether the parsed regex ``items`` can only consume characters that :data:`_LEAD` strips (punctuation,
    spaces, ``_``): then it never decides which word character a block starts with."""
    for op, av in items:
        if op is _C.LITERAL:
            if _WORD.match(chr(av)):
                return False
        elif op is _C.IN:
            for o, a in av:
                if o is _C.LITERAL:
                    if _WORD.match(chr(a)):
                        return False
                elif o is _C.CATEGORY:
                    if a not in (_C.CATEGORY_SPACE, _C.CATEGORY_NOT_WORD):
                        return False
                else:  # NEGATE, RANGE, ...
                    return False
        elif op in _REPEATS:
            if not _unworded(av[2]):
                return False
        elif op is _C.SUBPATTERN:
            if not _unworded(av[-1]):
                return False
        elif op not in (_C.AT, _C.ASSERT, _C.ASSERT_NOT):
            return False
    return True


def _first_chars(items) -> set[str] | None:
    """Lower-cased word characters a parsed regex can start with, punctuation and spaces before them
    skipped; None when unknown (``.``, ``\\w``, ...). Contains "" when the whole sequence can match
    without a word character."""
    out: set[str] = set()
    for op, av in items:
        if op in (_C.AT, _C.ASSERT, _C.ASSERT_NOT):
            continue  # zero-width
        if _unworded([(op, av)]):
            continue  # consumes only what _LEAD strips
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
        elif op in _REPEATS:
            sub = _first_chars(av[2])
            if sub is not None and av[0] == 0:
                sub = sub | {""}
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
    None when the pattern may start anywhere (then it is tried on every block). ``{""}``: the pattern
    matches only blocks without a word character."""
    try:
        parsed = _sre_parse.parse(pattern, re.I)
        chars = _first_chars(parsed)
    except Exception:  # noqa: BLE001 - an unusual construct: just try it everywhere
        return None
    if chars == {""} and _unworded(parsed):
        return chars
    if chars is None or "" in chars or any(not (c.isalnum()) for c in chars):
        return None
    return chars


# Characters that re.IGNORECASE matches to an ASCII character although their lower() is not it (checked in
# tests/test_clean.py against every code point): a block holding one is tried against every gated pattern.
_ASCII_CASE_TWINS = re.compile("[\u0130\u0131\u017f\u212a]")
_GATE_MIN_CHARS = 3  # shorter literals are found in almost every block: the pattern is tried everywhere


def _necessary(items) -> frozenset[str] | None:
    """Lower-case ASCII strings of which every match of the parsed regex ``items`` contains at least one
    (ASCII letters compared case-insensitively), the most selective set found; None when none is known."""
    best: frozenset[str] | None = None

    def consider(cands: frozenset[str] | None) -> None:
        nonlocal best
        if cands and (best is None or min(map(len, cands)) > min(map(len, best))):
            best = cands

    def flush(run: list[str]) -> None:
        # the ASCII stretches of a literal run are each in every match (non-ASCII case rules differ)
        pieces = "".join(c if c.isascii() else "\0" for c in run).split("\0")
        longest = max(pieces, key=len) if pieces else ""
        if longest:
            consider(frozenset([longest.lower()]))
        run.clear()

    run: list[str] = []
    for op, av in items:
        if op is _C.LITERAL:
            run.append(chr(av))
            continue
        flush(run)
        if op is _C.SUBPATTERN:
            consider(_necessary(av[-1]))
        elif op is _C.BRANCH:
            alts = [_necessary(alt) for alt in av[1]]
            if all(alts):
                consider(frozenset().union(*alts))
        elif op in _REPEATS and av[0] >= 1:
            consider(_necessary(av[2]))
        elif op is _C.ASSERT:  # a lookahead's or lookbehind's text is in the block too
            consider(_necessary(av[1]))
    flush(run)
    return best


def _gate(pattern: str) -> frozenset[str] | None:
    """The literals one of which a block matched by ``pattern`` holds, when they are selective enough."""
    try:
        lits = _necessary(_sre_parse.parse(pattern, re.I))
    except Exception:  # noqa: BLE001 - an unusual construct: no gate
        return None
    return lits if lits and min(map(len, lits)) >= _GATE_MIN_CHARS else None


def _token_gate(patterns: list[str]) -> re.Pattern | None:
    """One search for the literals of which a token fully matched by one of ``patterns`` holds at least one
    (ASCII, lower case; the shortest that subsume the others): a token holding none cannot match, and the
    combined token regex (~90 patterns, many starting with ``.*``, ~9 µs per token) is not tried. None when
    a pattern has no such literal."""
    lits: set[str] = set()
    for p in patterns:
        try:
            found = _necessary(_sre_parse.parse(p, re.I))
        except Exception:  # noqa: BLE001 - an unusual construct: no gate
            return None
        if not found:
            return None
        lits |= found
    kept = sorted(lit for lit in lits if not any(o != lit and o in lit for o in lits))
    return re.compile("|".join(re.escape(lit) for lit in kept)) if kept else None


_EDGE = r"[\W_]*"
_LEAD = re.compile(r"[\W_]+")


# Length tiers of the combined regexes: a block longer than a tier's lower bound is tried only against the
# rules whose ``max_chars`` admit it (most rules are for short blocks; article paragraphs are long).
_TIERS = (60, 150, 300)
# Verdicts kept per process for blocks up to this length: menus, share bars and labels repeat across pages.
_MEMO_MAX_CHARS = 300
_MEMO_MAX_ENTRIES = 20_000  # ~4 MB per matcher at most (two per compiled rule set)


def _tier(length: int) -> int:
    for i, bound in enumerate(_TIERS):
        if length <= bound:
            return i
    return len(_TIERS)


@dataclass(slots=True)
class _PhraseMatcher:
    """Phrase rules compiled for speed. A block is tried only against the patterns that can start with its
    first word character, whose rule admits its length tier, in one combined regex per (character, tier);
    plus the patterns that may start anywhere: in that regex when nothing narrows them down, or else one by
    one, only on blocks holding one of the literals every match of the pattern holds (its gate). The first
    rule in file order that matches a whole block and admits its length wins. Verdicts on short blocks are
    memoised."""

    rules: tuple[PhraseRule, ...]
    by_char: dict[str, list[tuple[int, str]]]  # first char -> [(rule index, pattern)]
    floating: list[tuple[int, str]]  # may start anywhere, no gate: in every combined regex
    gated: list[tuple[int, str, frozenset[str]]]  # may start anywhere, tried when a gate literal is present
    max_len: int
    compiled: dict[tuple[str, int], tuple[re.Pattern | None, tuple]] = field(default_factory=dict)
    memo: dict[str, PhraseRule | None] = field(default_factory=dict)
    gated_rx: list[tuple[int, re.Pattern, tuple[str, ...], int]] = field(default_factory=list)

    def compile_all(self) -> None:
        for ch in self.by_char:
            for tier in range(len(_TIERS) + 1):
                self._combined(ch, tier)
        self._combined("", 0)
        self._gated()

    def _gated(self) -> list[tuple[int, re.Pattern, tuple[str, ...], int]]:
        if len(self.gated_rx) != len(self.gated):
            self.gated_rx = [(i, re.compile(f"{_EDGE}(?:{p}){_EDGE}", re.I | re.S), tuple(sorted(lits)),
                              self.rules[i].max_chars) for i, p, lits in sorted(self.gated, key=lambda g: g[0])]
        return self.gated_rx

    def _combined(self, ch: str, tier: int = 0):
        hit = self.compiled.get((ch, tier))
        if hit is None:
            floor = _TIERS[tier - 1] if tier else 0  # blocks of this tier are longer than this
            def admits(i):
                return self.rules[i].max_chars > floor
            pats = sorted((i, p) for i, p in self.by_char.get(ch, []) + self.floating if admits(i))
            by_rule: dict[int, list[str]] = {}
            for i, p in pats:
                by_rule.setdefault(i, []).append(p)
            every: dict[int, list[str]] = {}  # for the rare one-by-one pass, the gated patterns too
            for i, p in sorted(pats + [(i, p) for i, p, _ in self.gated if admits(i)]):
                every.setdefault(i, []).append(p)
            singles = tuple((i, f"{_EDGE}(?:{'|'.join(f'(?:{p})' for p in every[i])}){_EDGE}") for i in every)
            if not by_rule:
                hit = (None, singles)
            else:
                rx = re.compile("|".join(
                    f"(?P<r{i}>{_EDGE}(?:{'|'.join(f'(?:{p})' for p in by_rule[i])}){_EDGE})" for i in by_rule),
                    re.I | re.S)
                hit = (rx, singles)
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
        n = len(text)
        m0 = _LEAD.match(text)
        first = text[m0.end():m0.end() + 1] if m0 else text[:1]
        combined, singles = self._combined(first.lower(), _tier(n))
        found = None  # index of the first rule of the combined regex matching the block
        if combined is not None:
            m = combined.fullmatch(text)
            if m is not None:
                for key, val in m.groupdict().items():
                    if val is not None:
                        found = int(key[1:])
                        break
        if self.gated:
            low = None if _ASCII_CASE_TWINS.search(text) else text.lower()
            for i, rx, lits, max_chars in self._gated():
                if found is not None and i >= found:
                    break
                if n > max_chars:
                    continue
                if low is not None:
                    for lit in lits:
                        if lit in low:
                            break
                    else:
                        continue
                if rx.fullmatch(text):
                    return self.rules[i]
        if found is None:
            return None
        if n <= self.rules[found].max_chars:
            return self.rules[found]
        # the first matching rule does not admit a block this long: try the rules one by one
        for i, pattern in singles:  # rare: compiled on demand (re caches them)
            rule = self.rules[i]
            if n <= rule.max_chars and re.fullmatch(pattern, text, re.I | re.S):
                return rule
        return None


def _phrase_matcher(rules: list[PhraseRule]) -> _PhraseMatcher:
    by_char: dict[str, list[tuple[int, str]]] = {}
    floating: list[tuple[int, str]] = []
    gated: list[tuple[int, str, frozenset[str]]] = []
    for i, r in enumerate(rules):
        for p in r.patterns:
            chars = _dispatch_chars(p)
            if chars is not None:
                for c in chars:
                    by_char.setdefault(c, []).append((i, p))
            elif (lits := _gate(p)) is not None:
                gated.append((i, p, lits))
            else:
                floating.append((i, p))
    return _PhraseMatcher(tuple(rules), by_char, floating, gated, max((r.max_chars for r in rules), default=0))


_UNSEEN = object()


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
    class_cache: dict = field(default_factory=dict)  # class attribute -> rule of its first ruled token
    token_gate: re.Pattern | None = None  # literals one of which every token matched by token_rx holds

    def _token(self, tok: str) -> SelectorRule | None:
        cache = self.token_cache
        if tok in cache:
            return cache[tok]
        rule = None
        low = tok.lower()
        if low.startswith(_TAXONOMY_TOKENS) or (
                self.token_gate is not None and not self.token_gate.search(low)
                and not _ASCII_CASE_TWINS.search(tok)):
            m = None  # most tokens ("row", "container", "col-md-6") hold none of the rules' literals
        else:
            m = self.token_rx.fullmatch(tok)
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
            cache = self.class_cache  # whole class attributes repeat even more than their tokens
            rule = cache.get(cls, _UNSEEN)
            if rule is _UNSEEN:
                rule = None
                for tok in cls.split():
                    rule = self._token(tok)
                    if rule is not None:
                        break
                if len(cache) > 50_000:
                    cache.clear()
                cache[cls] = rule
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
        token_gate=_token_gate([t for s in token_rules for t in s.tokens]),
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
        matcher.compile_all()
