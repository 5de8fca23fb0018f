"""What the extraction workers need in memory before they fork (``flows.runtime.pool`` hands this module
to the forkserver as its preload): the extraction stack, the language model, and warm caches.

Importing it loads py3langid's model (~0.5 s); done once in the forkserver, every worker — including
those that replace recycled ones — starts with it instead of loading it again on its first page.

Batches are extracted in a child process forked from the worker (``tasks.budget``: the page time
budget; a worker keeps its child for up to ``REUSE_MAX_BATCHES`` batches), and a child's caches die with it. What the libraries build lazily on first use — dateparser's
per-locale regexes (htmldate's fallback), the cleaning rules' combined phrase regexes (``re``'s cache),
lxml's compiled XPaths — would be rebuilt by every batch (~26 % of extraction CPU, profiled). ``warm_up``
extracts one small synthetic page here, once, so every worker and every batch child inherits them.
"""

import newsmill.tasks.extract  # noqa: F401  (trafilatura, lxml, the cleaning code)
from newsmill.tasks.language import load_model

load_model()

_PAGE = """<!doctype html><html lang="en"><head><title>Council approves the river bridge budget | The Example Post</title>
<meta name="author" content="Dana Whitfield"><meta property="og:site_name" content="The Example Post">
<meta name="copyright" content="The Example Post"></head><body>
<header><nav><a href="/">Home</a> <a href="/news">News</a></nav></header>
<article><h1>Council approves the river bridge budget</h1><p class="byline">By Dana Whitfield</p>
<p class="dateline">Published Tuesday, March 3, 2026 at 4:15 p.m.</p>
<p>The city council voted on Tuesday to fund repairs to the river bridge after an inspection found cracks.</p>
<p>Residents who cross the bridge every day said the detour would add twenty minutes to their commute.</p>
<div class="ad">Advertisement</div><p>Support local journalism: donate to the Example Post today.</p>
<p>Sign up for our morning newsletter to get the day's headlines in your inbox.</p>
<p>The work is expected to start in May and to last until the end of the year, officials said.</p></article>
<footer><p>Copyright 2026 The Example Post. All rights reserved.</p></footer></body></html>"""


def warm_up() -> None:
    """Extract one synthetic page with the bundled rules (best effort: a failure only costs the warm-up)."""
    try:
        from htmldate import find_date

        from newsmill.tasks.clean import compile_rules, load_rules
        from newsmill.tasks.config import ExtractSettings
        from newsmill.tasks.extract import extract_page
        from newsmill.tasks.stories import signature

        rules = load_rules()
        compile_rules(rules)  # every phrase regex, not only those the page below needs
        res = extract_page(_PAGE, "https://www.example.org/news/2026/03/03/bridge-budget", rules=rules,
                           settings=ExtractSettings())
        signature(res.article.text if res.article else _PAGE)
        find_date(_PAGE.replace("2026", "2025"), extensive_search=True, original_date=True)
    except Exception:  # noqa: BLE001 - warm caches are an optimisation, never a reason to fail
        pass
    try:  # htmldate's free-text search: month names of every dateparser locale, and its external parser
        # (dateparser, every locale): the first string that is no date in any language makes it compile the
        # regexes of all of its locales and its time-zone regexes, ~2.3 s of CPU, once here instead of once
        # in every extraction child
        from htmldate.extractors import get_external_parser, month_words

        month_words()
        get_external_parser().get_date_data("zq 12 xv 2019")
    except Exception:  # noqa: BLE001 - library internals may move; the warm-up is best effort
        pass
    try:  # trafilatura's justext fallback (a page its own extraction finds short or unclean, and newsmill's
        # retry on short texts): the union of every justext stoplist (~154,000 words, ~0.23 s) and justext's
        # lower-cased frozenset of it (~0.12 s, cached by the tuple), built by a process's first such page
        from justext.core import define_stoplist
        from trafilatura.external import jt_stoplist_init

        define_stoplist(jt_stoplist_init())
    except Exception:  # noqa: BLE001 - library internals may move; the warm-up is best effort
        pass


warm_up()
