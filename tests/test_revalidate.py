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
from newsmill.flows.ingest import REVALIDATE_FACTOR, batch_bounds, plan_batches, run_batch  # noqa: E402
from newsmill.tasks.config import load_settings  # noqa: E402
from newsmill.tasks.records import DiscoveredURL  # noqa: E402


def _urls(host: str, n: int) -> list[DiscoveredURL]:
    return [DiscoveredURL(url=f"http://{host}/a/{i:04d}.html", source="s", via="feed") for i in range(n)]


def test_known_urls_are_planned_in_larger_batches_after_the_new_ones():
    urls = _urls("h1.example", 1000) + _urls("h2.example", 30)
    known = {u.url: ('"e"', None) for u in urls[:900]}  # h1: 900 known, 100 new; h2: all new
    plan = plan_batches("run-1", urls, 100, known)
    h1 = [b for b in plan if b.host == "h1.example"]
    sizes = [len(b.urls) for b in h1]
    assert sizes == [25, 75] + [400, 400, 100]  # new first (ramped), then known ×4
    assert all(not b.conditionals for b in h1[:2])
    assert all(len(b.conditionals) == len(b.urls) for b in h1[2:])
    assert [b.index for b in h1] == list(range(5))
    assert sorted(u.url for b in plan for u in b.urls) == sorted(u.url for u in urls)  # each URL once
    assert [len(b.urls) for b in plan if b.host == "h2.example"] == [25, 5]  # batch_bounds(30, 100)
    assert plan_batches("run-1", list(reversed(urls)), 100, known) == plan  # stable ids
    assert len({b.batch_id for b in plan}) == len(plan)
    # a first run (nothing known) is planned as before
    assert [len(b.urls) for b in plan_batches("r", urls[:1000], 100, {})] == \
        [b - a for a, b in batch_bounds(1000, 100)]
    assert REVALIDATE_FACTOR * 100 == 400


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
        plan = plan_batches("run-r", found, batch_size, conditional)
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
