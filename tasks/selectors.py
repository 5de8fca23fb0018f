"""CSS selectors of rule and site files, translated to XPath by ``cssselect`` (what ``lxml.cssselect`` uses).

Rule and site files may give a selector as CSS (``article > time[datetime]``, ``.byline a``) or as XPath
(starting with ``/``, ``./`` or ``(``). Compiled XPaths are cached; a selector cssselect cannot translate
(``a:hover``) or an invalid XPath is a ``ValueError`` the config loaders turn into a ``ConfigError``
naming the key.
"""

from __future__ import annotations

from cssselect import HTMLTranslator, SelectorError
from lxml import etree

__all__ = ["css_to_xpath", "compile_selector"]

_TRANSLATOR = HTMLTranslator()
_CACHE: dict[str, etree.XPath] = {}


def css_to_xpath(selector: str) -> str:
    """The XPath (relative to the context element, itself included) of a CSS selector; ValueError if it
    cannot be translated."""
    try:
        return _TRANSLATOR.css_to_xpath(selector, prefix="descendant-or-self::")
    except SelectorError as exc:  # SelectorSyntaxError and ExpressionError
        raise ValueError(str(exc)) from None


def compile_selector(selector: str) -> etree.XPath:
    """A compiled XPath for a CSS or XPath selector (cached)."""
    compiled = _CACHE.get(selector)
    if compiled is None:
        xp = selector if selector.startswith(("/", "./", "(")) else css_to_xpath(selector)
        try:
            compiled = etree.XPath(xp)
        except etree.XPathSyntaxError as exc:
            raise ValueError(str(exc)) from None
        if len(_CACHE) < 512:
            _CACHE[selector] = compiled
    return compiled
