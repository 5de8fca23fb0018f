"""Extraction time on hostile pages (issue 15 item 4): newsmill's own passes before/after the linear
rewrite, and the whole page under the per-page budget (``extract.page_timeout_s``).

Pages are generated (``tests/hostile.py``): N ``<p>x</p>`` in one article, N ``<div><p>x</p></div>``,
an article inside 250 nested sections, one element with 200,000 attributes. For each page it prints:

- ``passes before``: parse + ``text_blocks`` + ``page_text_length`` + ``clean_tree`` with the XPath
  definitions newsmill used before (a union of ``//body//<tag>`` paths, ``//p//text()``), patched in;
- ``passes after``: the same with today's code;
- ``page (budget)``: ``tasks.budget.extract_batch_budgeted`` on the page alone with ``--budget`` as
  ``extract.page_timeout_s`` (default 30 s of CPU; trafilatura included): the outcome (``ok``,
  ``no_article`` or ``extract_timeout``).

Each measurement runs in its own process, killed after ``--cap`` seconds of wall time (printed as
``> cap``); CPU time and peak RSS are that process's (its extraction child included). On a busy machine
compare CPU times. Usage::

    .venv/bin/python bench/hostile.py [--sizes 10000,100000,1000000] [--cap 300] [--only passes|page] [--budget 30]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import hostile  # noqa: E402  (tests/hostile.py: the generated hostile-input corpus)

URL = "https://news.example/huge.html"


def _old_definitions() -> None:
    """Patch the pre-issue-15 XPath definitions into tasks.clean (same results, quadratic in libxml2)."""
    from lxml import etree

    from newsmill.tasks.clean import _tree as clean  # the private module whose globals the block passes read

    blocks = etree.XPath("(" + " | ".join(f"//body//{t}" for t in clean._BLOCK_TAGS) + ")"
                         f"[string-length(normalize-space(.)) <= {clean._BLOCK_TEXT_MAX}]")
    p_text = etree.XPath("//p//text()")
    clean._short_blocks = lambda root, limit: [(el, el.text_content()) for el in blocks(root)]
    clean._p_text_len = lambda root: sum(len(t) for t in p_text(root))
    clean._p_text_len_in = lambda el: sum(len(t) for t in el.xpath(".//p//text()"))


def _passes(html: str, old: bool, rules) -> str:
    from lxml import etree

    from newsmill.tasks.clean import clean_tree, page_text_length, text_blocks
    from newsmill.tasks.extract import _NON_TEXT
    from newsmill.tasks.parse import parse_html

    if old:
        _old_definitions()
    page = parse_html(html, URL)
    etree.strip_elements(page.tree, *_NON_TEXT, with_tail=False)
    blocks = text_blocks(page)
    page_text_length(page)
    clean_tree(page, rules, frozenset(), blocks=blocks)
    return f"{len(blocks)} blocks"


def _page(html: str, rules, budget: float) -> str:
    from newsmill.tasks.budget import extract_batch_budgeted
    from newsmill.tasks.config import ExtractSettings

    res = extract_batch_budgeted([(URL, html)], rules=rules, settings=ExtractSettings(page_timeout_s=budget))[0]
    return res.outcome


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (the extraction child of the budget)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _child(queue, what: str, make, n: int, budget: float) -> None:
    import newsmill.tasks.budget  # noqa: F401  (imports and the rules are not what is measured)
    import newsmill.tasks.preload  # noqa: F401
    from newsmill.tasks.clean import load_rules
    from newsmill.tasks.clean._compiled import _compiled

    rules = load_rules()
    _compiled(rules, "news.example")  # compiled once per process
    if what != "page (budget)" and make is not hostile.many_attributes:  # warm the phrase-rule regexes
        _passes(make(100), what == "passes before", rules)
    html = make(n)
    cpu0 = _cpu()
    started = time.monotonic()
    note = _passes(html, True, rules) if what == "passes before" else (
        _passes(html, False, rules) if what == "passes after" else _page(html, rules, budget))
    elapsed = time.monotonic() - started
    cpu = _cpu() - cpu0
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    queue.put((elapsed, cpu, rss / 1024, note))


def _proc_cpu(pid: int) -> float | None:
    """CPU seconds used so far by a running process and its reaped children (Linux ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def _measure(what: str, make, n: int, cap: float, budget: float) -> str:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, what, make, n, budget))
    proc.start()
    proc.join(cap)
    if proc.is_alive():
        cpu = _proc_cpu(proc.pid)
        proc.kill()
        proc.join()
        return f"> {cap:g} s" + (f" {cpu:8.2f} s  (killed at the cap)" if cpu is not None else "  (killed at the cap)")
    if queue.empty():
        return f"failed (exit {proc.exitcode})"
    elapsed, cpu, rss, note = queue.get()
    return f"{elapsed:8.2f} s {cpu:8.2f} s  {rss:6.0f} MB  {note}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="block counts (comma-separated)")
    ap.add_argument("--cap", type=float, default=300.0, help="seconds before a measurement is killed")
    ap.add_argument("--only", choices=("passes", "page"), help="only newsmill's passes, or only whole pages")
    ap.add_argument("--budget", type=float, default=30.0, help="extract.page_timeout_s for whole pages")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    cases = []
    for n in sizes:
        cases.append((f"{n:,} <p>x</p>", hostile.many_blocks, n))
        cases.append((f"{n:,} <div><p>x</p></div>", hostile.many_wrapped_blocks, n))
    cases.append(("250 nested sections, 2,000 <p>", lambda n: hostile.nested_long_article(250, n), 2000))
    cases.append(("one element, 200,000 attributes", hostile.many_attributes, 200_000))
    whats = {"passes": ("passes before", "passes after"), "page": ("page (budget)",)}.get(
        args.only, ("passes before", "passes after", "page (budget)"))
    print(f"{'page':34} {'measure':15} {'wall':>10} {'CPU':>10}  {'peak RSS':>9}  note")
    for label, make, n in cases:
        for what in whats:
            if what == "passes before" and make is hostile.many_attributes:
                continue  # the parse dominates: before = after
            print(f"{label:34} {what:15} {_measure(what, make, n, args.cap, args.budget)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
