"""Cleaning rules as plain, picklable data: ``SelectorRule``, ``PhraseRule``, ``SiteRules``, ``RuleSet``, validated
while loading (``load_rules``, ``rules_from_dicts``)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from newsmill.tasks.config import RULES_DIR, SITES_DIR, read_toml
from newsmill.tasks.errors import ConfigError
from newsmill.tasks.records import BOILERPLATE_KINDS
from newsmill.tasks.selectors import css_to_xpath

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


def _name_and_kind(d, keys: set[str], default_kind: str | None, where: str) -> tuple[str, str]:
    """A rule table's shape checked (a table, known keys only, a name) and its name and kind."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = set(d) - keys
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key (known: {', '.join(sorted(keys))})")
    name = d.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name: required")
    return name, _check_kind(d.get("kind", default_kind), where)


def _selector(d: dict, default_kind: str | None, where: str, prefix: str = "") -> SelectorRule:
    name, kind = _name_and_kind(d, _SELECTOR_KEYS, default_kind, where)
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
    name, kind = _name_and_kind(d, _PHRASE_KEYS, default_kind, where)
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
