"""Stories: near-duplicate texts across outlets share a story_id (real Parquet warehouse, real DuckDB views).

The texts are written for this test: a wire story about a (fictional) bridge closure, a lightly edited copy
of it on another site, and a different reporter's article on the same event (same facts, names and a shared
quote, its own wording), which must not join the story.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta, timezone

import pytest

from newsmill.tasks.config import StoriesSettings
from newsmill.tasks.records import Article, PageLogEntry
from newsmill.tasks.stories import MIN_TOKENS, Signed, StoryIndex, signature, similarity
from newsmill.tasks.urls import article_id
from newsmill.warehouse.catalog import connect
from newsmill.warehouse.compact import delete_url
from newsmill.warehouse.stories import rebuild_stories, update_stories
from newsmill.warehouse.store import Warehouse

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)

WIRE = [
    "HARTWELL — State engineers closed the Ferris Street bridge over the Calder River on Monday after an "
    "inspection found cracks in two of the steel girders that carry the span, the transportation department said.",
    "About 14,000 vehicles cross the bridge each day, and officials said detours through the town center would "
    "add as much as twenty minutes to some commutes while crews assess how long repairs will take.",
    "\"We are not going to take any chances with a structure that so many families depend on,\" said Marisol "
    "Denning, the department's chief bridge engineer, at a news conference near the closed approach.",
    "The bridge opened in 1968 and was last rehabilitated in 2009. Its most recent inspection, two years ago, "
    "rated the deck in fair condition but flagged corrosion near the bearings on the western pier.",
    "Local business owners said the closure could hardly come at a worse time, with the spring festival "
    "expected to draw thousands of visitors to the riverfront in the coming weeks.",
    "The department said it would post detour maps online and add signs on the state highway by Tuesday "
    "morning, and that school buses would be rerouted along the county road north of town.",
]

OTHER_REPORTER = [
    "Commuters in Hartwell woke up to a longer drive on Monday: the Ferris Street bridge is shut until further "
    "notice, after inspectors reported cracked girders beneath the deck of the 1968 span.",
    "Marisol Denning, who leads bridge engineering for the state, told reporters that the agency was \"not going "
    "to take any chances\" and could not yet say when traffic would return to the crossing.",
    "Shop owners along Water Street, a block from the river, worried aloud about lost sales during the "
    "festival season, when the riverfront usually fills with visitors from across the region.",
    "Drivers who used the bridge to reach the hospital on the east bank will now follow the county road, a "
    "route that adds several miles, and the school district said buses would leave earlier all week.",
    "Engineers plan to return on Wednesday with ultrasonic equipment to measure how deep the cracks run before "
    "deciding between a temporary brace and a longer repair that could stretch into the autumn.",
]


def edited_copy(paras: list[str], seed: int = 3) -> list[str]:
    """A syndicated copy: the last paragraph cut, a local line added, a few words changed."""
    rng = random.Random(seed)
    out = paras[:-1] + ["Staff of the Lakeside Ledger contributed reporting from the riverfront."]
    for _ in range(3):
        i = rng.randrange(len(out))
        words = out[i].split()
        words[rng.randrange(len(words))] = "local"
        out[i] = " ".join(words)
    return out


def article(url: str, paras: list[str], published: datetime, *, holder: str | None = None) -> Article:
    text = "\n".join(paras)
    domain = url.split("/")[2]
    return Article(
        url=url, canonical_url=url, domain=domain, site_name=domain, title=paras[0][:40], authors=(),
        published_at=published, modified_at=None, language="en", description=None, text=text,
        copyright_holder=holder, copyright_year=None, copyright_notice=None, license_url=None,
        content_hash=hashlib.sha256(text.encode()).hexdigest()[:16], fetched_at=published + timedelta(hours=1),
        extractor_version="test", source="test",
    )


def page_for(a: Article, run_id: str) -> PageLogEntry:
    return PageLogEntry(url=a.url, final_url=None, kind="article", status=200, outcome="ok", error=None,
                        bytes=len(a.text), content_type="text/html", fetched_at=a.fetched_at, elapsed_ms=1,
                        run_id=run_id, source="test")


def run(root, run_id: str, articles: list[Article], settings: StoriesSettings | None = None, now=None):
    with Warehouse(root).writer(run_id) as w:
        w.commit_batch(f"{run_id}-b", pages=[page_for(a, run_id) for a in articles], articles=articles)
        info = update_stories(w, settings or StoriesSettings(), now=now or T0 + timedelta(days=1))
        w.consolidate()
    return info


def rows(root, sql: str):
    con = connect(root)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


WIRE_A = ("https://wire.example/story/bridge", WIRE, T0)
COPY_B = ("https://lakesideledger.example/news/bridge-closed", edited_copy(WIRE), T0 + timedelta(hours=5))
OTHER_C = ("https://hartwelldaily.example/local/bridge-commute", OTHER_REPORTER, T0 + timedelta(hours=2))


# ------------------------------------------------------------------------------------------------ unit


def test_signature_similarity_separates_copy_from_same_event_article():
    a, b, c = (signature("\n".join(p)) for p in (WIRE, edited_copy(WIRE), OTHER_REPORTER))
    j_copy, cont_copy = similarity(a, b)
    j_other, cont_other = similarity(a, c)
    assert j_copy >= 0.5, j_copy
    assert j_other < 0.1 and cont_other < 0.2, (j_other, cont_other)
    assert signature(" ".join(["word"] * (MIN_TOKENS - 1))) is None  # too short to tie to anything


def test_index_assigns_in_time_order_and_deterministically():
    def items():
        return [Signed(url, url.split("/")[2], seen, signature("\n".join(p)))
                for url, p, seen in (COPY_B, OTHER_C, WIRE_A)]

    first = {a.key: a.story_id for a in StoryIndex().assign(items())}
    again = {a.key: a.story_id for a in StoryIndex().assign(list(reversed(items())))}
    assert first == again
    assert first[COPY_B[0]] == first[WIRE_A[0]] == WIRE_A[0]  # the earliest copy opened the story
    assert first[OTHER_C[0]] == OTHER_C[0]


def test_index_window_evicts_old_members():
    old = Signed("old", "a.example", T0, signature("\n".join(WIRE)))
    late = Signed("late", "b.example", T0 + timedelta(days=40), signature("\n".join(edited_copy(WIRE))))
    out = {a.key: a.story_id for a in StoryIndex(window_days=30).assign([old, late])}
    assert out == {"old": "old", "late": "late"}
    out = {a.key: a.story_id for a in StoryIndex(window_days=60).assign([old, late])}
    assert out == {"old": "old", "late": "old"}


# ------------------------------------------------------------------------------------------ warehouse


def test_copy_joins_story_other_article_does_not(tmp_path):
    root = tmp_path / "wh"
    a, b, c = (article(*x) for x in (WIRE_A, COPY_B, OTHER_C))
    info = run(root, "r1", [a, c])
    assert (info.articles, info.joined) == (2, 0)
    info = run(root, "r2", [b], now=T0 + timedelta(days=2))  # next night: matched against the stored window
    assert (info.articles, info.joined, info.candidates) == (1, 1, 1)

    got = {u: (s, n, cod) for u, s, n, cod in
           rows(root, "SELECT url, story_id, story_size, copy_of_domain FROM articles")}
    assert got[a.url][0] == got[b.url][0] == a.content_hash
    assert got[a.url][1] == got[b.url][1] == 2
    assert got[c.url][0] == c.content_hash and got[c.url][1] == 1
    assert got[b.url][2] == "wire.example"  # seen earlier on another domain, though it has no notice
    assert got[a.url][2] is None and got[c.url][2] is None

    st = rows(root, "SELECT story_id, first_domain, n_articles, n_domains, first_title FROM stories "
                    "WHERE n_articles > 1")
    assert st == [(a.content_hash, "wire.example", 2, 2, a.title)]


def test_retried_run_and_rebuild_give_same_ids(tmp_path):
    root = tmp_path / "wh"
    a, b, c = (article(*x) for x in (WIRE_A, COPY_B, OTHER_C))
    run(root, "r1", [a, b, c])
    before = rows(root, "SELECT article_id, story_id FROM articles ORDER BY 1")
    info = run(root, "r1", [a, b, c])  # the same run again (retry): nothing new, nothing re-assigned
    assert info.articles == 0
    assert rows(root, "SELECT count(*) FROM story_members")[0][0] == 3
    import dataclasses

    with Warehouse(root).writer("reextract") as w:  # the same texts under a newer extractor: new versions
        stats = w.commit_batch("rx", articles=[dataclasses.replace(x, extractor_version="test2") for x in (a, b, c)])
        assert stats.new_versions == 3
    with Warehouse(root).writer("rebuild") as w:
        rb = rebuild_stories(w, StoriesSettings(), chunk=2)  # chunks smaller than the input
        w.consolidate()
    assert (rb.articles, rb.joined) == (3, 1)
    assert rows(root, "SELECT article_id, story_id FROM articles ORDER BY 1") == before
    assert rows(root, "SELECT count(*) FROM story_members")[0][0] == 3  # replaced, not appended


def test_takedown_removes_article_from_its_story(tmp_path):
    root = tmp_path / "wh"
    a, b, c = (article(*x) for x in (WIRE_A, COPY_B, OTHER_C))
    run(root, "r1", [a, b, c])
    report = delete_url(root, b.url)
    assert report["rows"]["story_members"] == 1
    assert rows(root, f"SELECT count(*) FROM story_members WHERE article_id = '{article_id(b.url)}'") == [(0,)]
    assert rows(root, f"SELECT story_size FROM articles WHERE url = '{a.url}'") == [(1,)]
    assert rows(root, "SELECT max(n_articles) FROM stories") == [(1,)]


def test_settings_are_validated():
    from newsmill.tasks.config import settings_from_dict
    from newsmill.tasks.errors import ConfigError

    with pytest.raises(ConfigError, match="stories.threshold"):
        settings_from_dict({"stories": {"threshold": 1.5}})
    with pytest.raises(ConfigError, match="stories.window_days"):
        settings_from_dict({"stories": {"window_days": 0}})
    assert settings_from_dict({"stories": {"window_days": 7}}).stories.window_days == 7
