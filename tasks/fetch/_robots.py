"""robots.txt (RFC 9309): parsing and matching for one user agent."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote


@dataclass
class RobotsRules:
    """Parsed robots.txt for one user agent (RFC 9309)."""

    rules: list[tuple[bool, str]] = dataclasses.field(default_factory=list)  # (allow, pattern)
    crawl_delay: float | None = None
    sitemaps: list[str] = dataclasses.field(default_factory=list)
    allow_all: bool = False
    disallow_all: bool = False
    reason: str = ""

    def allowed(self, path: str) -> bool:
        if self.disallow_all:
            return False
        if self.allow_all:
            return True
        if path == "/robots.txt":
            return True
        best_len, best_allow = -1, True
        for allow, pattern in self.rules:
            if not pattern:
                continue
            n = _robots_match(pattern, path)
            if n is None:
                continue
            if n > best_len or (n == best_len and allow):
                best_len, best_allow = n, allow
        return best_allow


def _robots_match(pattern: str, path: str) -> int | None:
    """Length of ``pattern`` when it matches ``path`` (``*`` wildcard, ``$`` end anchor), else None."""
    anchored = pattern.endswith("$")
    body = pattern[:-1] if anchored else pattern
    regex = ".*".join(re.escape(part) for part in body.split("*"))
    if anchored:
        regex += "$"
    return len(pattern) if re.match(regex, path) else None


def _product_token(user_agent: str) -> str:
    return re.split(r"[/\s;(]", user_agent.strip(), maxsplit=1)[0].lower()


def parse_robots(text: str, user_agent: str) -> RobotsRules:
    token = _product_token(user_agent)
    groups: list[tuple[list[str], list[tuple[bool, str]], list[float]]] = []
    sitemaps: list[str] = []
    current = None
    last_was_agent = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "sitemap":
            if value:
                sitemaps.append(value)
            continue
        if key in ("user-agent", "useragent"):
            if current is None or not last_was_agent:
                current = ([], [], [])
                groups.append(current)
            current[0].append(value.lower())
            last_was_agent = True
            continue
        last_was_agent = False
        if current is None:
            continue
        if key in ("allow", "disallow"):
            current[1].append((key == "allow", pct_normalize(value)))
        elif key == "crawl-delay":
            try:
                current[2].append(float(value))
            except ValueError:
                pass
    mine = [g for g in groups if any(a != "*" and a and (a == token or token.startswith(a)) for a in g[0])]
    if not mine:
        mine = [g for g in groups if "*" in g[0]]
    rules: list[tuple[bool, str]] = []
    delays: list[float] = []
    for g in mine:
        rules.extend(g[1])
        delays.extend(g[2])
    return RobotsRules(rules=rules, crawl_delay=max(delays) if delays else None, sitemaps=sitemaps,
                       reason="parsed")


def pct_normalize(path: str) -> str:
    return quote(unquote(path), safe="/*$?=&;:@+,!~'()%")
