"""Revalidation batches (issue 14): URLs fetched before are planned in batches of REVALIDATE_FACTOR ×
batch_size after a host's new URLs, and a revalidation batch whose pages changed extracts them batch_size
at a time (the memory bound of a batch stays batch_size pages)."""

from __future__ import annotations

import sys
from pathlib import Path

from faultserver import FaultServer, respond

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.orchestration import article_html, write_config  # noqa: E402
from newsmill.flows import ingest as ingest_mod  # noqa: E402
from newsmill.flows import runtime  # noqa: E402
from newsmill.flows.ingest import (REVALIDATE_FACTOR, batch_bounds, plan_batches,  # noqa: E402
                                   revalidate_batch_size, run_batch)
from newsmill.tasks.config import load_settings  # noqa: E402
from newsmill.tasks.records import DiscoveredURL  # noqa: E402


def _urls(host: str, n: int) -> list[DiscoveredURL]:
    return [DiscoveredURL(url=f"http://{host}/a/{i:04d}.html", source="s", via="feed") for i in range(n)]


def test_known_urls_are_planned_in_larger_batches_after_the_new_ones():
    urls = _urls("h1.example", 1000) + _urls("h2.example", 30)
    known = {u.url: ('"e"', None) for u in urls[:900]}  # h1: 900 known, 100 new; h2: all new
    plan = plan_batches("run-1", urls, 100, known, revalidate_batch_size(100, 0.0))
    h1 = [b for b in plan if b.host == "h1.example"]
    sizes = [len(b.urls) for b in h1]
    assert sizes == [25, 75] + [400, 400, 100]  # new first (ramped), then known ×4
    assert all(not b.conditionals for b in h1[:2])
    assert all(len(b.conditionals) == len(b.urls) for b in h1[2:])
    assert [b.index for b in h1] == list(range(5))
    assert sorted(u.url for b in plan for u in b.urls) == sorted(u.url for u in urls)  # each URL once
    assert [len(b.urls) for b in plan if b.host == "h2.example"] == [25, 5]  # batch_bounds(30, 100)
    assert plan_batches("run-1", list(reversed(urls)), 100, known, 400) == plan  # stable ids
    assert len({b.batch_id for b in plan}) == len(plan)
    # a first run (nothing known) is planned as before
    assert [len(b.urls) for b in plan_batches("r", urls[:1000], 100, {})] == \
        [b - a for a, b in batch_bounds(1000, 100)]
    assert REVALIDATE_FACTOR * 100 == 400
    # with the default politeness (1 s between requests to a host) a batch lasts 100 s anyway: no larger
    assert revalidate_batch_size(100, 1.0) == 100 and revalidate_batch_size(100, 0.0) == 400
    assert [len(b.urls) for b in plan_batches("run-1", urls, 100, known, 100) if b.host == "h1.example"] == \
        [25, 75] + [100] * 9


def _honours(etag: str, body: str):
    """A page that answers 304 to its ETag."""
    def _r(h):
        if h.headers.get("If-None-Match") == etag:
            h.send(304, b"", {"ETag": etag})
        else:
            h.send(200, body.encode(), {"ETag": etag, "Content-Type": "text/html; charset=utf-8"})
    return _r


def test_a_revalidation_batch_extracts_changed_pages_batch_size_at_a_time(tmp_path, monkeypatch):
    batch_size, changed, unchanged = 5, 12, 3
    with FaultServer("127.0.0.2") as srv:
        urls = []
        for i in range(changed):  # a site that ignores validators: 200 with the whole page every time
            urls.append(srv.route(f"/a/{i}.html", respond(article_html(i, srv.base),
                                                             headers={"ETag": f'"v{i}"'})))
        for i in range(changed, changed + unchanged):
            urls.append(srv.route(f"/a/{i}.html", _honours(f'"v{i}"', article_html(i, srv.base))))
        srv.route("/robots.txt", respond("User-agent: *\nAllow: /\n", ctype="text/plain"))
        settings = load_settings(str(write_config(tmp_path / "c.toml", srv.base, batch_size=batch_size,
                                                  workers=1)))
        found = [DiscoveredURL(url=u, source="gazette", via="feed") for u in urls]
        conditional = {u: (f'"v{i}"', None) for i, u in enumerate(urls)}
        plan = plan_batches("run-r", found, batch_size, conditional, revalidate_batch_size(batch_size, 0.0))
        assert [len(b.urls) for b in plan] == [changed + unchanged]  # one batch: 15 <= 4 × 5

        chunks: list[int] = []
        real_extract = ingest_mod.extract

        def counting_extract(run_id, settings, pages_in, rules, history):
            chunks.append(len(pages_in))
            return real_extract(run_id, settings, pages_in, rules, history)

        monkeypatch.setattr(ingest_mod, "extract", counting_extract)
        try:
            out = run_batch(plan[0], settings, "run-r", None, {})
        finally:
            runtime.close("run-r")

    assert chunks and max(chunks) <= batch_size and sum(chunks) == changed, chunks
    outcomes = sorted(p.outcome for p in out.pages if p.kind == "article")
    assert outcomes == sorted(["ok"] * changed + ["not_modified"] * unchanged)
    assert sorted(a.url for a in out.articles) == sorted(urls[:changed])  # every changed page extracted
    assert all(a.text for a in out.articles)


def _rows(urls, run_id, day):
    from datetime import datetime, timezone

    from newsmill.tasks.records import PageLogEntry

    at = datetime(2025, 7, day, 2, tzinfo=timezone.utc)
    return [PageLogEntry(url=u, final_url=u, kind="article", status=200, outcome="ok", error=None, bytes=100,
                         content_type="text/html", fetched_at=at, elapsed_ms=5, run_id=run_id, source="s",
                         etag=f'"{run_id}-{i}"') for i, u in enumerate(urls)]


def test_a_retried_run_plans_the_batches_it_had_and_skips_the_stored_ones(tmp_path):
    """The plan of a retried run must not move URLs its first attempt stored into the known set: the
    batch ids would change and the stored batches be fetched (and written) again."""
    from newsmill.warehouse.store import Warehouse

    wh = Warehouse(tmp_path / "wh")
    found = _urls("h1.example", 300)
    urls = [u.url for u in found]
    with wh.writer("night-1") as w:  # yesterday fetched the last 100 (validators stored)
        w.commit_batch("b-night-1", _rows(urls[200:], "night-1", 13))
    conditional = wh.conditional_state(urls, exclude_run="night-2")
    plan = plan_batches("night-2", found, 100, conditional)
    assert [len(b.urls) for b in plan] == [25, 100, 75, 100]
    with wh.writer("night-2") as w:  # the first attempt of night-2 stored its first two batches, then died
        for b in plan[:2]:
            w.commit_batch(b.batch_id, _rows([d.url for d in b.urls], "night-2", 14))
    done = wh.done_batches("night-2")
    assert done == {plan[0].batch_id, plan[1].batch_id}

    retry_state = wh.conditional_state(urls, exclude_run="night-2")
    assert retry_state == conditional
    # what a retry planned before: the stored URLs moved to the known set, every id changed
    assert not {b.batch_id for b in plan_batches("night-2", found, 100, wh.conditional_state(urls))} & done
    replan = plan_batches("night-2", found, 100, retry_state)
    assert replan == plan
    assert [b for b in replan if b.batch_id not in done] == plan[2:]
    # (the run's own rows do count for every other run: tomorrow sends conditional requests for all 300)
    assert len(wh.conditional_state(urls, exclude_run="night-3")) == 225
