"""Issue 15 item 4: newsmill's own passes over a page are linear in its size, and every page has a time
budget (``extract.page_timeout_s``) that bounds trafilatura's and lxml's C code too: a page over it is an
``extract_timeout`` row, the other pages of the batch are written, the worker goes on.

Hostile pages come from ``tests/hostile.py`` (generated). Scaling is checked by counting work (text read,
nodes selected), never by wall time; timings are in ``bench/hostile.py``."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import lxml.html
import pytest
from lxml import etree

sys.path.insert(0, str(Path(__file__).parent))
import hostile  # noqa: E402
from faultserver import FaultServer, respond  # noqa: E402

from newsmill.tasks.clean import _tree as clean  # noqa: E402  (the block pass's helpers, against their definitions)
from newsmill.tasks.budget import TIMEOUT_OUTCOME, extract_batch_budgeted, extract_pages_budgeted  # noqa: E402
from newsmill.tasks.clean import load_rules, page_text_length, text_blocks  # noqa: E402
from newsmill.tasks.config import ExtractSettings, settings_from_dict  # noqa: E402
from newsmill.tasks.errors import ConfigError  # noqa: E402
from newsmill.tasks.extract import _NON_TEXT, extract_batch, extract_page  # noqa: E402
from newsmill.tasks.parse import parse_html  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
RULES = load_rules()

# what text_blocks and the share guards are defined as (the XPath newsmill used before; quadratic in libxml2)
_BLOCKS_DEF = etree.XPath("(" + " | ".join(f"//body//{t}" for t in clean._BLOCK_TAGS) + ")"
                          "[string-length(normalize-space(.)) <= 600]")
_P_TEXT_DEF = etree.XPath("//p//text()")


def _shapes():
    yield "flat", hostile.many_blocks(300)
    yield "wrapped", hostile.many_wrapped_blocks(300)
    yield "deep_short", hostile.deep_nesting(300)  # deeper than libxml2's 255 levels
    yield "deep_long", hostile.nested_long_article(40, 30)
    yield "deep_many", hostile.deep_nesting(60, n=200)
    yield "whitespace", hostile._page("<div>" + "<span> \n\t </span>" * 500 + "word</div>"
                                      + "<div>" + " \n " * 400 + "a" + " \t" * 300 + "b</div>")
    yield "nbsp", hostile._page("<p>" + "\u00a0word " * 120 + "</p><li>" + "x\u00a0" * 320 + "</li>")
    yield "nested_p", "<html><body><p>a<b>b</b></p><div><p>c</p><span><p>d</p></span></div></body></html>"
    for f in sorted(FIXTURES.rglob("*.html"))[:40]:
        yield f.name, f.read_bytes()


@pytest.mark.parametrize("name,html", list(_shapes()), ids=[n for n, _ in _shapes()])
def test_blocks_and_paragraph_text_are_the_xpath_definitions(name, html):
    page = parse_html(html, "https://news.example/a")
    for stripped in (False, True):  # as read by tasks.extract (code and styling stripped) and untouched
        if stripped:
            etree.strip_elements(page.tree, *_NON_TEXT, with_tail=False)
        want = [el for el in _BLOCKS_DEF(page.tree) if clean.normalize_text(el.text_content())]
        got = text_blocks(page)
        assert [b.el for b in got] == want
        assert [b.text for b in got] == [clean.normalize_text(el.text_content()) for el in want]
        assert clean._p_text_len(page.tree) == sum(len(t) for t in _P_TEXT_DEF(page.tree))
        for el in page.tree.iter():
            if isinstance(el.tag, str):
                assert clean._p_text_len_in(el) == sum(len(t) for t in el.xpath(".//p//text()")), el.tag


@pytest.fixture
def text_read(monkeypatch):
    """Counts the characters every ``text_content()`` call returns (the work of the block passes)."""
    read = [0]
    original = lxml.html.HtmlMixin.text_content

    def counting(self):
        text = original(self)
        read[0] += len(text)
        return text

    monkeypatch.setattr(lxml.html.HtmlMixin, "text_content", counting)
    return read


@pytest.mark.parametrize("depth", [10, 200])
def test_text_blocks_read_each_text_a_bounded_number_of_times(text_read, depth):
    # an article inside `depth` nested sections: reading every level's text would cost depth x article
    page = parse_html(hostile.nested_long_article(depth, 200), "https://news.example/a")
    total = len(page.tree.text_content())
    text_read[0] = 0
    blocks = text_blocks(page)
    assert len(blocks) >= 200  # the paragraphs and the captions
    assert text_read[0] <= 3 * total


def _work(html: str, text_read) -> int:
    page = parse_html(html, "https://news.example/a")
    text_read[0] = 0
    blocks = text_blocks(page)
    page_text_length(page)
    clean.clean_tree(page, RULES, frozenset(), blocks=blocks)
    return text_read[0] + len(blocks)


@pytest.mark.parametrize("make", [hostile.many_blocks, hostile.many_wrapped_blocks,
                                  lambda n: hostile.deep_nesting(200, n=n),
                                  lambda n: hostile.nested_long_article(200, n)])
def test_cleaning_work_grows_linearly(text_read, make):
    small, large = _work(make(200), text_read), _work(make(2000), text_read)
    assert large <= 12 * small  # 10x the page: ~10x the work (quadratic would be ~100x)


# ---------------------------------------------------------------------------------------------- budget


def _article(i: int) -> tuple[str, str]:
    url = f"https://news.example/local/story-{i}.html"
    return url, hostile.story(url, f"zqbudget{i}x", seed=i)


def _same(a, b) -> None:
    assert (a.url, a.outcome, a.error) == (b.url, b.outcome, b.error)
    assert (a.article is None) == (b.article is None)
    if a.article is not None:
        assert a.article.text == b.article.text
    assert a.removals == b.removals and a.block_hashes == b.block_hashes


def test_a_page_over_the_budget_is_an_outcome_and_the_batch_goes_on():
    settings = ExtractSettings(page_timeout_s=2.0)
    hostile_pages = [("https://news.example/attrs.html", hostile.many_attributes(200_000)),  # parser: minutes
                     ("https://news.example/blocks.html", hostile.many_blocks(200_000))]
    good = [_article(i) for i in range(4)]
    pages = [good[0], hostile_pages[0], good[1], good[2], hostile_pages[1], good[3]]
    started = time.monotonic()
    res = extract_batch_budgeted(pages, rules=RULES, settings=settings)
    elapsed = time.monotonic() - started
    assert [r.url for r in res] == [u for u, _ in pages]
    by_url = {r.url: r for r in res}
    for url, _ in hostile_pages:
        assert by_url[url].outcome == TIMEOUT_OUTCOME and by_url[url].article is None
        assert "exceeded extract.page_timeout_s = 2 s of CPU time (first pass)" == by_url[url].error
    want = extract_batch(good, rules=RULES, settings=settings)  # same batch without the hostile pages
    for w in want:
        _same(by_url[w.url], w)
        assert by_url[w.url].outcome == "ok"
    assert elapsed < 300  # without the budget: minutes of CPU per hostile page, so far more on a busy machine
    # this process (a worker) is untouched and extracts the next batch
    again = extract_batch_budgeted(good[:2], rules=RULES, settings=settings)
    assert [r.outcome for r in again] == ["ok", "ok"]


@pytest.fixture
def forked_children(monkeypatch):
    """The tests below patch the extraction code in this process and need the budget's plain-``fork``
    children (which inherit the patch). In a full test session earlier tests leave threads behind (Prefect's
    clients), and a threaded caller gets forkserver children instead, which would not see the patch."""
    from newsmill.tasks import budget

    monkeypatch.setattr(budget.threading, "active_count", lambda: 1)


def test_an_overrun_in_extraction_keeps_what_the_batch_learned(monkeypatch, forked_children):
    """A page that overruns in trafilatura (after the batch learned its recurring blocks): the pages after
    it are extracted with the same recurring blocks as without the overrun."""
    from newsmill.tasks import extract as extract_mod

    slow_url = "https://news.example/local/story-2.html"
    original = extract_mod._extract_prepared

    def slow_for_one(prep, url, **kw):  # runs in the child (forked after the patch)
        while url == slow_url:  # computes forever
            pass
        return original(prep, url, **kw)

    # each page repeats the same newsletter box: learned as recurring (3 pages) and removed
    box = "<div class='promo'>Get the Harbour Courier morning briefing in your inbox every day.</div>"
    pages = [(u, h.replace("<footer>", box + "<footer>")) for u, h in (_article(i) for i in range(5))]
    want = extract_batch(pages, rules=RULES, settings=ExtractSettings())
    assert any(r.rule == "recurring" for w in want for r in w.removals)
    monkeypatch.setattr(extract_mod, "_extract_prepared", slow_for_one)
    res = extract_batch_budgeted(pages, rules=RULES, settings=ExtractSettings(page_timeout_s=1.5))
    assert res[2].outcome == TIMEOUT_OUTCOME
    assert res[2].error == "exceeded extract.page_timeout_s = 1.5 s of CPU time (extraction)"
    for i in (0, 1, 3, 4):
        _same(res[i], want[i])


def test_a_stuck_page_is_stopped_by_wall_time(monkeypatch, forked_children):
    """A page that waits without computing (no CPU time used) is stopped after the budget in wall time."""
    from newsmill.tasks import extract as extract_mod

    original = extract_mod._extract_prepared

    def stuck(prep, url, **kw):
        if url.endswith("story-0.html"):
            time.sleep(3600)
        return original(prep, url, **kw)

    monkeypatch.setattr(extract_mod, "_extract_prepared", stuck)
    pages = [_article(i) for i in range(2)]
    started = time.monotonic()
    res = extract_batch_budgeted(pages, rules=RULES, settings=ExtractSettings(page_timeout_s=1))
    assert time.monotonic() - started < 60
    assert res[0].outcome == TIMEOUT_OUTCOME
    assert res[0].error == "made no progress for extract.page_timeout_s = 1 s (no CPU time used) (extraction)"
    assert res[1].outcome == "ok"


def test_the_budget_counts_the_pages_cpu_not_the_machines_load(monkeypatch, forked_children):
    """A page that needs 1 s of CPU passes a 2 s budget while the machine is so busy that it takes over 2 s
    of wall time (the child is slowed to ~1/3 of a core by SIGSTOP/SIGCONT)."""
    import threading

    from newsmill.tasks import budget
    from newsmill.tasks import extract as extract_mod

    original = extract_mod._extract_prepared

    def one_cpu_second(prep, url, **kw):
        end = time.process_time() + 1.0
        while time.process_time() < end:
            pass
        return original(prep, url, **kw)

    monkeypatch.setattr(extract_mod, "_extract_prepared", one_cpu_second)
    children = []
    real_child = budget._Child

    def spy(*a, **kw):
        c = real_child(*a, **kw)
        children.append(c.pid)
        return c

    monkeypatch.setattr(budget, "_Child", spy)
    done = threading.Event()

    def throttle():  # run 0.1 s, stop 0.2 s: the child gets a third of the wall time
        while not done.is_set():
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            time.sleep(0.2)
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            time.sleep(0.1)

    t = threading.Thread(target=throttle, daemon=True)
    t.start()
    started = time.monotonic()
    try:
        res = extract_batch_budgeted([_article(0)], rules=RULES, settings=ExtractSettings(page_timeout_s=2))
    finally:
        done.set()
        t.join()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    assert time.monotonic() - started > 2  # a wall-clock budget of 2 s would have stopped it
    assert res[0].outcome == "ok", res[0].error


def test_a_child_that_dies_costs_only_its_page(monkeypatch, forked_children):
    from newsmill.tasks import extract as extract_mod

    original = extract_mod._extract_prepared

    def crash_on_one(prep, url, **kw):
        if url.endswith("story-1.html"):
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
        return original(prep, url, **kw)

    monkeypatch.setattr(extract_mod, "_extract_prepared", crash_on_one)
    pages = [_article(i) for i in range(3)]
    res = extract_batch_budgeted(pages, rules=RULES, settings=ExtractSettings(page_timeout_s=20))
    assert [r.outcome for r in res] == ["ok", "no_article", "ok"]
    assert "extraction process died (signal 9)" in res[1].error


def test_pages_on_their_own_match_extract_page():
    pages = [_article(i) for i in range(2)] + [("https://news.example/deep.html", hostile.deep_nesting(300))]
    settings = ExtractSettings(page_timeout_s=20)
    for got, (url, html) in zip(extract_pages_budgeted(pages, rules=RULES, settings=settings), pages):
        _same(got, extract_page(html, url, rules=RULES, settings=settings))


def test_page_timeout_is_validated():
    assert settings_from_dict({}).extract.page_timeout_s == 30
    assert settings_from_dict({"extract": {"page_timeout_s": 0}}).extract.page_timeout_s == 0
    for bad in (-1, -0.5, "ten"):
        with pytest.raises(ConfigError, match="page_timeout_s"):
            settings_from_dict({"extract": {"page_timeout_s": bad}})


# ---------------------------------------------------------------------------------------------- a real ingest


def _q(root: Path, sql: str):
    from newsmill.warehouse.catalog import connect

    with contextlib.closing(connect(root)) as con:
        return con.execute(sql).fetchall()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 1])  # in the worker pool, and inline in the flow process
def test_ingest_writes_the_batch_around_a_page_over_budget(prefect_api, tmp_path, workers):
    from newsmill.flows.ingest import ingest

    wh = tmp_path / "wh"
    with FaultServer("127.0.0.2") as srv:
        good = {}
        for i in range(4):
            path = f"/local/story-{i}.html"
            url = srv.url(path)
            marker = f"zqingest{i}x"
            srv.route(path, respond(hostile.story(url, marker, seed=i)))
            good[url] = marker
        bad = {srv.url("/local/attrs.html"): hostile.many_attributes(200_000),
               srv.url("/local/blocks.html"): hostile.many_blocks(200_000)}
        for url, html in bad.items():
            srv.route(url.removeprefix(srv.base), respond(html))
        urls = ", ".join(f'"{u}"' for u in [*list(good)[:2], *bad, *list(good)[2:]])
        cfg = tmp_path / "site.toml"
        cfg.write_text(f"""
[fetch]
allow_networks = ["127.0.0.2/32"]
per_host_delay_s = 0.0
retries = 0
timeout_s = 20

[extract]
workers = {workers}
page_timeout_s = 3

[[sources]]
name = "budget"
urls = [{urls}]
""", encoding="utf-8")
        ingest(config=str(cfg), warehouse=str(wh))
    pages = {u: (o, e) for u, o, e in _q(wh, "select url, outcome, error from pages where kind = 'article'")}
    for url in bad:
        assert pages[url][0] == "extract_timeout"
        assert "extract.page_timeout_s = 3 s" in pages[url][1]
    assert {u: pages[u][0] for u in good} == {u: "ok" for u in good}
    texts = dict(_q(wh, "select url, text from articles"))
    assert sorted(texts) == sorted(good)
    for url, marker in good.items():
        assert marker in texts[url]


@pytest.mark.slow
def test_extract_cli_reports_a_page_over_budget_and_goes_on(tmp_path, newsmill_cmd):
    """``newsmill extract`` (no Prefect, no pool) with the default budget: the hostile file is a one-line
    warning, the good files are extracted."""
    import json
    import subprocess

    files = []
    for i in range(2):
        f = tmp_path / f"story-{i}.html"
        f.write_text(hostile.story(f.as_uri(), f"zqcli{i}x", seed=i), encoding="utf-8")
        files.append(f)
    bad = tmp_path / "attrs.html"
    bad.write_text(hostile.many_attributes(200_000), encoding="utf-8")  # parse alone: minutes
    p = subprocess.run([newsmill_cmd, "extract", str(files[0]), str(bad), str(files[1])],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    arts = {a["url"]: a for a in map(json.loads, p.stdout.splitlines())}
    assert sorted(arts) == sorted(f.resolve().as_uri() for f in files)
    assert "zqcli0x" in arts[files[0].resolve().as_uri()]["text"]
    assert [line for line in p.stderr.splitlines() if "extract_timeout" in line] == [
        f"{bad}: extract_timeout: exceeded extract.page_timeout_s = 30 s of CPU time (first pass)"]


def test_a_worker_reuses_one_child_across_batches_and_replaces_it_after_an_overrun(monkeypatch, forked_children):
    """An extraction worker (``reuse_children``) keeps one child for many batches — the caches the extraction
    stack builds lazily survive from batch to batch — and still gets a fresh one when a page overruns, and
    after ``REUSE_MAX_BATCHES`` batches. Every batch gives the same results as without a budget."""
    from newsmill.tasks import budget

    monkeypatch.setattr(budget, "REUSE_MAX_BATCHES", 3)
    settings = ExtractSettings(page_timeout_s=2.0)
    batches = [[_article(i), _article(i + 10)] for i in range(4)]
    budget.reuse_children()
    try:
        pids = []
        for batch in batches[:3]:
            got = extract_batch_budgeted(batch, rules=RULES, settings=settings)
            for g, w in zip(got, extract_batch(batch, rules=RULES, settings=settings)):
                _same(g, w)
            pids.append(budget._reused.pid if budget._reused is not None else None)
        assert pids[0] == pids[1] and pids[0] is not None  # the same child served both batches
        assert pids[2] is None  # its third batch was its last: closed (reaped) ...
        with pytest.raises(ProcessLookupError):
            os.kill(pids[0], 0)
        hostile_page = ("https://news.example/attrs.html", hostile.many_attributes(200_000))
        got = extract_batch_budgeted([hostile_page, *batches[3]], rules=RULES, settings=settings)
        assert [r.outcome for r in got] == [TIMEOUT_OUTCOME, "ok", "ok"]  # ... a new child, killed on the overrun,
        after = budget._reused.pid  # and the rest of the batch done by the next one, kept for the next batch
        assert after not in pids
        got = extract_batch_budgeted(batches[0], rules=RULES, settings=settings)
        assert [r.outcome for r in got] == ["ok", "ok"] and budget._reused.pid == after
    finally:
        budget.reuse_children(False)
    assert budget._reused is None


def test_the_forkserver_preload_builds_the_justext_stoplist_children_would_rebuild():
    """trafilatura's justext fallback builds the union of every justext stoplist and justext lower-cases it
    into a cached frozenset (~0.35 s of CPU together) on a process's first page that needs it: the
    preload (``tasks.preload``, imported by the forkserver before it forks workers) builds both once."""
    import subprocess

    probe = ("import newsmill.tasks.preload, trafilatura.external as te, justext.core as jc\n"
             "before = jc.define_stoplist.cache_info()\n"
             "jc.define_stoplist(te.JT_STOPLIST or te.jt_stoplist_init())\n"
             "after = jc.define_stoplist.cache_info()\n"
             "print(len(te.JT_STOPLIST or ()), after.hits - before.hits, after.misses - before.misses)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    words, hits, misses = map(int, out)
    assert words > 10_000 and (hits, misses) == (1, 0)
