"""``reprocess``: ingest a small site from a loopback HTTP server (real fetch, real WARC archive, real
Parquet), stop the server, then re-extract the archived pages with a changed rule — no network — and check
that ``articles`` keeps one row per article, the new rule's text moves from ``text`` to ``boilerplate``,
and the run is recorded. Flows run against the session's real Prefect API."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent
WORDS = ("river council budget school harbour election winter festival library bridge farmers market "
         "railway museum hospital research coast mountain village ministry report season football "
         "orchestra theatre weather energy solar wind transport housing policy").split()
N_ARTICLES = 7
NEW_RULE = "test.members_lounge"


def lounge_line(i: int) -> str:
    # varies per page, so recurring-block learning does not remove it: only the new rule will
    return f"Members lounge: {i * 7 + 3} exclusive {WORDS[i % len(WORDS)]} stories await you."


def article_html(i: int, base: str) -> str:
    rng = random.Random(i)
    paras = "\n".join(
        "<p>" + " ".join(rng.choice(WORDS) for _ in range(45)).capitalize() + ".</p>" for _ in range(6))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Story number {i} about the {rng.choice(WORDS)}</title>
<meta name="author" content="Jane Reporter">
<meta property="article:published_time" content="2024-05-0{1 + i % 9}T10:00:00Z">
<link rel="canonical" href="{base}/news/story-{i}.html">
</head><body><header><nav><a href="/">Home</a> <a href="/world">World</a></nav></header>
<article><h1>Story number {i}</h1>
{paras}
<p>{lounge_line(i)}</p>
</article><footer><p>Copyright 2024 Example News</p></footer></body></html>"""


def write_site(site: Path) -> None:
    (site / "news").mkdir(parents=True)
    for i in range(N_ARTICLES):
        # the demo server replaces {base_url} in .html files
        (site / "news" / f"story-{i}.html").write_text(article_html(i, "{base_url}"), encoding="utf-8")


def write_config(path: Path, base: str) -> Path:
    urls = ", ".join(f'"{base}/news/story-{i}.html"' for i in range(N_ARTICLES))
    path.write_text(f"""
[fetch]
allow_networks = ["127.0.0.0/8"]
per_host_delay_s = 0.0
retries = 0
timeout_s = 10

[extract]
workers = 2
batch_size = 3

[[sources]]
name = "local"
urls = [{urls}]
""", encoding="utf-8")
    return path


def changed_rules(tmp: Path) -> Path:
    rules = tmp / "rules"
    shutil.copytree(REPO / "config" / "rules", rules)
    with open(rules / "other.toml", "a", encoding="utf-8") as fh:
        fh.write(f"""

[[phrases]]
name = "{NEW_RULE}"
max_chars = 200
patterns = ["members lounge: .*"]
""")
    return rules


def q(root: Path, sql: str, params=None):
    from newsmill.warehouse.catalog import connect

    with contextlib.closing(connect(root)) as con:
        return con.execute(sql, params or []).fetchall()


def port_open(base: str) -> bool:
    u = urlsplit(base)
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((u.hostname, u.port)) == 0


@pytest.fixture(scope="module")
def ingested(prefect_api, tmp_path_factory):
    from newsmill.flows.demo import serve_site
    from newsmill.flows.ingest import ingest

    tmp = tmp_path_factory.mktemp("reprocess")
    site, wh = tmp / "site", tmp / "warehouse"
    write_site(site)
    with serve_site(site) as base:
        cfg = write_config(tmp / "site.toml", base)
        counts = ingest(config=str(cfg), warehouse=str(wh)).asdict()
    assert not port_open(base), "the site server must be down before reprocessing"
    assert counts["articles_written"] == N_ARTICLES, counts
    before = {r[0]: r for r in q(wh, "select article_id, text, extractor_version, url from articles")}
    assert len(before) == N_ARTICLES
    assert all("Members lounge" in r[1] for r in before.values())
    return {"tmp": tmp, "wh": wh, "base": base, "cfg": cfg, "before": before}


@pytest.fixture(scope="module")
def reprocessed(ingested, prefect_api):
    """Reprocess with the changed rules; any attempt to build an HTTP fetcher fails the run."""
    import newsmill.tasks.fetch
    from newsmill.flows.reprocess import reprocess

    rules = changed_rules(ingested["tmp"])

    class NoNetwork(newsmill.tasks.fetch.Fetcher):
        def __init__(self, *a, **kw):
            raise AssertionError("reprocess must not create an HTTP fetcher")

    mp = pytest.MonkeyPatch()
    mp.setattr(newsmill.tasks.fetch, "Fetcher", NoNetwork)
    try:
        counts = reprocess(warehouse=str(ingested["wh"]), rules_dir=str(rules), config=str(ingested["cfg"])).asdict()
    finally:
        mp.undo()
    return {**ingested, "rules": rules, "counts": counts}


def test_reprocess_replaces_visible_rows_with_new_rules(reprocessed):
    from newsmill.tasks.clean import load_rules
    from newsmill.tasks.extract import extractor_version

    wh, before, counts = reprocessed["wh"], reprocessed["before"], reprocessed["counts"]
    assert counts["pages_reprocessed"] == N_ARTICLES
    assert counts["network_requests"] == 0
    assert counts["articles_written"] == N_ARTICLES, counts  # text changed: a new visible version each
    assert counts["outcomes"] == {"ok": N_ARTICLES}

    rows = q(wh, "select article_id, text, extractor_version, run_id, fetched_at from articles")
    assert len(rows) == N_ARTICLES  # exactly one row per article
    assert {r[0] for r in rows} == set(before)  # same set of articles
    (n_total, n_ids), = q(wh, "select count(*), count(distinct article_id) from articles")
    assert n_total == n_ids == N_ARTICLES
    new_version = extractor_version(load_rules(reprocessed["rules"]))
    for aid, text, version, run_id, fetched_at in rows:
        assert "Members lounge" not in text
        assert "exclusive" not in text.split("\n")[-1]
        assert version == new_version != before[aid][2]
        assert fetched_at is not None
    # two versions per article are kept in history
    (n_versions,), = q(wh, "select count(*) from article_versions")
    assert n_versions == 2 * N_ARTICLES


def test_reprocess_boilerplate_reflects_new_rule(reprocessed):
    wh = reprocessed["wh"]
    rows = q(wh, "select url, kind, rule, text, extractor_version from boilerplate where rule = ?", [NEW_RULE])
    assert len(rows) == N_ARTICLES
    by_url = {r[0]: r for r in rows}
    for i in range(N_ARTICLES):
        url = f"{reprocessed['base']}/news/story-{i}.html"
        assert by_url[url][1] == "other"
        assert by_url[url][3] == lounge_line(i)
        assert by_url[url][4]
    # every row carries the run that wrote it: the new rule's rows a reprocess run, the rest theirs
    assert q(wh, "select count(*) from boilerplate where rule = ? and (run_id is null or run_id not in "
                 "(select run_id from runs where flow = 'reprocess'))", [NEW_RULE]) == [(0,)]
    assert q(wh, "select count(*) from boilerplate_all where run_id is null or run_id not in "
                 "(select run_id from runs)") == [(0,)]
    # the boilerplate view shows only the latest extraction of each URL (older rows stay in history)
    (n_old,), = q(wh, "select count(*) from boilerplate where extractor_version <> (select max(extractor_version) "
                      "from boilerplate where rule = ?)", [NEW_RULE])
    assert n_old == 0


def test_reprocess_run_row_and_no_pages_rows(reprocessed):
    wh = reprocessed["wh"]
    runs = q(wh, "select run_id, flow, finished_at, counts from runs where flow = 'reprocess'")
    assert len(runs) == 1
    run_id, _flow, finished, counts = runs[0]
    assert finished is not None
    assert json.loads(counts)["pages_reprocessed"] == N_ARTICLES
    # reprocess makes no request: the fetch log is untouched
    assert q(wh, "select count(*) from pages where run_id = ?", [run_id]) == [(0,)]
    assert {r[0] for r in q(wh, "select distinct run_id from articles")} == {run_id}


def test_reprocess_again_is_idempotent_and_filters(reprocessed, prefect_api):
    from newsmill.flows.reprocess import reprocess

    wh, rules = str(reprocessed["wh"]), str(reprocessed["rules"])
    again = reprocess(warehouse=wh, rules_dir=rules, config=str(reprocessed["cfg"])).asdict()
    assert again["pages_reprocessed"] == N_ARTICLES
    assert again["articles_written"] == 0 and again["articles_unchanged"] == N_ARTICLES
    assert q(reprocessed["wh"], "select count(*) from article_versions") == [(2 * N_ARTICLES,)]
    assert q(reprocessed["wh"], "select count(*) from boilerplate where rule = ?", [NEW_RULE]) == [(N_ARTICLES,)]

    assert reprocess(warehouse=wh, rules_dir=rules, domain="elsewhere.example").pages_reprocessed == 0
    assert reprocess(warehouse=wh, rules_dir=rules, source="nope").pages_reprocessed == 0
    assert reprocess(warehouse=wh, rules_dir=rules, since="2999-01-01").pages_reprocessed == 0
    assert reprocess(warehouse=wh, rules_dir=rules, until="2000-01-01").pages_reprocessed == 0
    assert reprocess(warehouse=wh, rules_dir=rules, source="local", domain="127.0.0.1",
                     since="2000-01-01").pages_reprocessed == N_ARTICLES


FLOW_PROCESS_SCRIPT = """
import json, sys
from newsmill.flows.reprocess import reprocess
info = reprocess(warehouse=sys.argv[1], config=sys.argv[2])
counts = info if isinstance(info, dict) else info.asdict()
stack = [m for m in ("trafilatura", "newsmill.tasks.extract") if m in sys.modules]
print(json.dumps({"stack": stack, "articles": counts["articles_written"] + counts["articles_unchanged"],
                  "outcomes": counts["outcomes"]}))
"""


def test_reprocess_flow_process_never_imports_the_extraction_stack(reprocessed, prefect_api, tmp_path):
    """Extraction runs in the worker pool (as in ingest): a real reprocess in a fresh interpreter
    re-extracts every page, and its own process has not imported trafilatura at the end."""
    import os
    import subprocess
    import sys

    wh = tmp_path / "wh"
    shutil.copytree(reprocessed["wh"], wh)
    proc = subprocess.run([sys.executable, "-c", FLOW_PROCESS_SCRIPT, str(wh), str(reprocessed["cfg"])],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["outcomes"] == {"ok": N_ARTICLES} and result["articles"] == N_ARTICLES, result
    assert result["stack"] == [], result


def test_parse_date_bound():
    from datetime import datetime, timezone

    from newsmill.tasks.dates import parse_date_bound
    from newsmill.tasks.errors import ConfigError

    assert parse_date_bound("2024-05-01") == datetime(2024, 5, 1, tzinfo=timezone.utc)
    assert parse_date_bound("2024-05-01", end=True) == datetime(2024, 5, 2, tzinfo=timezone.utc)
    assert parse_date_bound("2024-05-01T12:00:00+02:00") == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    assert parse_date_bound(None) is None
    with pytest.raises(ConfigError):
        parse_date_bound("yesterday")
