"""Source health: figures from what a run stored (real Parquet + DuckDB), status against the source's
previous runs, reasons in words."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from newsmill.tasks.config import HealthSettings
from newsmill.tasks.health import SourceNight, assess, sparkline
from newsmill.tasks.records import Article, PageLogEntry, Removal
from newsmill.warehouse.catalog import connect
from newsmill.warehouse.health import assess_run
from newsmill.warehouse.store import Warehouse

T0 = datetime(2026, 4, 1, 2, 0, tzinfo=timezone.utc)
BODY = ("The council approved the budget after a long debate about road repairs and the library. " * 30).strip()


def night(i: int, **kw) -> SourceNight:
    d = dict(source="s", run_id=f"r{i}", night=(T0 + timedelta(days=i)).date(), started_at=T0 + timedelta(days=i),
             discovered=50, fetched=50, articles=48, ok_share=1.0, no_article_share=0.04, median_text_chars=2900.0,
             authors_share=0.92, published_share=0.98, copyright_share=0.9, boilerplate_per_article=6.0)
    d.update(kw)
    return SourceNight(**d)


def test_assess_new_ok_degraded_broken():
    t = HealthSettings()
    hist = [night(i) for i in range(14)]
    assert assess(night(14), hist[:2], t).status == "new"
    assert assess(night(14, articles=45), hist, t).status == "ok"
    a = assess(night(14, articles=0, ok_share=1.0, no_article_share=1.0, median_text_chars=None,
                     authors_share=None), hist, t)
    assert a.status == "broken" and "articles 0 vs median 48" in a.reasons
    a = assess(night(14, authors_share=0.05, median_text_chars=310.0), hist, t)
    assert a.status == "degraded"
    assert "authors 5 % vs 92 %" in a.reasons and "median text 310 chars vs 2,900" in a.reasons
    a = assess(night(14, no_article_share=0.6), hist, t)
    assert a.status == "degraded" and a.reasons == ("no article 60 % vs 4 %",)
    # thresholds are settings
    assert assess(night(14, authors_share=0.05), hist, HealthSettings(share_drop=0.95)).status == "ok"


def test_sparkline():
    assert sparkline([0, 4, 8]) == "▁▅█"
    assert sparkline([3, 3]) == "▅▅" and sparkline([0, 0]) == "▁▁"  # flat: mid bar, or the floor for zeros
    assert sparkline([1, None, 2]) == "▁ █" and sparkline([]) == ""


def _store_run(root, i: int, *, n: int, template_changed: bool = False) -> None:
    """One night of source 'daily': n article pages; a changed template leaves pages without an article."""
    run_id = f"night{i:02d}"
    started = T0 + timedelta(days=i)
    pages, arts, removals = [], [], []
    for k in range(n):
        url = f"https://daily.example/{i}/{k}"
        outcome = "no_article" if template_changed else "ok"
        pages.append(PageLogEntry(url=url, final_url=None, kind="article", status=200, outcome=outcome, error=None,
                                  bytes=5000, content_type="text/html", fetched_at=started, elapsed_ms=5,
                                  run_id=run_id, source="daily"))
        if template_changed:
            continue
        arts.append(Article(url=url, canonical_url=url, domain="daily.example", site_name="Daily", title=f"t{k}",
                            authors=("Ann Lee",), published_at=started, modified_at=None, language="en",
                            description=None, text=BODY, copyright_holder="Daily", copyright_year=2026,
                            copyright_notice=None, license_url=None, content_hash=f"{i}-{k}", fetched_at=started,
                            source="daily", extractor_version="t"))
        removals.append(Removal(url=url, kind="ad", rule="ad.slot", text="Advertisement", run_id=run_id))
    with Warehouse(root).writer(run_id) as w:
        w.commit_batch(f"{run_id}-b", pages=pages, articles=arts, removals=removals, processed_at=started)
        out = assess_run(w, run_id, started, {"daily": n, "quiet": 0}, HealthSettings())
    return out


def test_source_health_view_from_stored_runs(tmp_path):
    root = tmp_path / "wh"
    for i in range(14):
        res = _store_run(root, i, n=10 + i % 3)
    assert {a.night.source: a.status for a in res} == {"daily": "ok", "quiet": "ok"}
    changed = {a.night.source: a for a in _store_run(root, 14, n=11, template_changed=True)}
    assert changed["daily"].status == "broken"
    assert changed["daily"].reasons[0] == "articles 0 vs median 11"
    assert any(r.startswith("no article 100 %") for r in changed["daily"].reasons)
    con = connect(root)
    try:
        rows = con.execute("""SELECT run_id, status, articles, median_articles, no_article_share, authors_share,
                                     boilerplate_per_article, reasons
                              FROM source_health WHERE source = 'daily' ORDER BY started_at""").fetchall()
    finally:
        con.close()
    assert len(rows) == 15
    assert [r[1] for r in rows[:3]] == ["new"] * 3 and rows[3][1] == "ok"
    first_ok = rows[5]
    assert first_ok[4] == 0.0 and first_ok[5] == 1.0 and first_ok[6] == 1.0
    assert rows[-1][:4] == ("night14", "broken", 0, 11.0)
    assert rows[-1][7][0] == "articles 0 vs median 11"
