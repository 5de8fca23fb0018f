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
:func:`block_fingerprint`, :func:`normalize_text`, :func:`clean_lines`, :func:`compile_rules`,
:data:`RECURRING_MAX_CHARS`.

Layout (private modules; import only the names in ``__all__`` from ``newsmill.tasks.clean``):

* ``_rules`` -- the rules as plain data, validated while loading (``load_rules``, ``rules_from_dicts``);
* ``_compiled`` -- their compiled form, cached per process, rule-set version and site;
* ``_tree`` -- text blocks, fingerprints, share guards; ``clean_tree`` and ``clean_lines``.
"""

from newsmill.tasks.clean._compiled import compile_rules
from newsmill.tasks.clean._rules import PhraseRule, RuleSet, SelectorRule, SiteRules, load_rules, rules_from_dicts
from newsmill.tasks.clean._tree import (RECURRING_MAX_CHARS, RECURRING_MAX_SHARE, RECURRING_MIN_CHARS, Block,
                                        block_fingerprint, clean_lines, clean_tree, normalize_text, page_text_length,
                                        text_blocks)

__all__ = [
    "Block",
    "PhraseRule",
    "RECURRING_MAX_CHARS",
    "RECURRING_MIN_CHARS",
    "RECURRING_MAX_SHARE",
    "RuleSet",
    "SelectorRule",
    "SiteRules",
    "block_fingerprint",
    "clean_lines",
    "clean_tree",
    "compile_rules",
    "load_rules",
    "normalize_text",
    "page_text_length",
    "rules_from_dicts",
    "text_blocks",
]
