"""A tiny run of ``bench/throughput.py`` so the harness cannot rot: the served path uses the session's Prefect
API, the cold path and the WARC import the local server the bench starts (and stops) in its work dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
AEB_HTML = REPO.parent / "shared" / "benchmarks" / "aeb" / "html"


@pytest.mark.skipif(not AEB_HTML.is_dir(), reason="AEB benchmark pages not available")
def test_throughput_bench_smoke(prefect_api, newsmill_cmd, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "throughput.py"), "--n", "12", "--hosts", "2", "--json",
         "--api-url", prefect_api["url"], "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600, cwd=str(REPO), env={**prefect_api["env"], "NEWSMILL_WARM": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    report = json.loads(proc.stdout)
    # warm runners (the default): one per path, started before the rounds; every newsmill command ran in one
    assert report["warm"] is True
    assert report["warm_runners"]["served"]["runs"] == 2 and report["warm_runners"]["cold"]["runs"] == 3, report
    run0 = report["runs"][0]
    assert all(run0[k]["warm"] for k in ("newsmill", "incremental", "cold", "cold_incremental", "import")), run0
    s = report["summary"]
    assert report["n"] == 12 and len(report["sites"]) == 2
    assert s["pages_fetched"] == 12, report
    assert s["articles_written"] >= 10, report  # every copy is its own article
    assert s["newsmill_pages_per_s"] > 0 and s["baseline_pages_per_s"] > 0 and s["ratio"] > 0
    assert s["newsmill_peak_rss_mb"] > 50
    assert set(s["stages_s"]) == {"outside_flow", "discover", "plan", "batch_phase", "consolidate", "flow_other"}
    assert set(s["summed_s"]) == {"fetch", "clean_extract", "write"}
    assert 0 < s["stages_s"]["batch_phase"] < s["newsmill_wall_s"] and s["stages_s"]["outside_flow"] > 0
    assert abs(sum(s["stages_s"].values()) - s["newsmill_wall_s"]) < 0.05 * s["newsmill_wall_s"] + 0.05
    # the second ingest over unchanged pages gets 304s only
    assert s["incremental_outcomes"].get("not_modified", 0) == 12, s["incremental_outcomes"]
    assert report["server_requests"]["304"] >= 12
    # cold: as typed in a fresh shell (the local server), same pages, same 304s on the rerun
    assert s["cold_pages_fetched"] == 12 and s["cold_ratio"] > 0, report
    assert s["cold_stages_s"]["outside_flow"] > 0
    assert s["cold_incremental_outcomes"].get("not_modified", 0) == 12, s["cold_incremental_outcomes"]
    assert 0 < s["cold_incremental_share"] < 1.5
    # like with like: one round runs served then cold back to back; each run's CPU is split into the command's
    # own process and its extraction children, and the paired difference of the round is reported
    assert report["runs"][0]["order"] == ["served", "cold"]
    for run in (report["runs"][0]["newsmill"], report["runs"][0]["cold"]):
        assert run["flow_process_cpu_s"] > 0 and run["child_cpu_s"] > 0, run
        assert abs(run["flow_process_cpu_s"] + run["child_cpu_s"] - run["cpu_s"]) < 0.05, run
        # the API server the run reported to (the session's for served, the local one for cold) worked for it
        assert run["api_server_cpu_s"] > 0, run
    assert report["runs"][0]["import"]["api_server_cpu_s"] > 0
    for key in ("newsmill_api_server_cpu_s", "incremental_api_server_cpu_s", "cold_api_server_cpu_s",
                "cold_incremental_api_server_cpu_s", "import_api_server_cpu_s"):
        assert s[key] > 0, (key, s)
    assert len(s["ratio_per_round"]) == 1 and s["ratio_per_round"][0] == pytest.approx(s["ratio"], abs=0.01)
    assert set(s["steal_share_per_round"][0]) == {"newsmill", "cold", "baseline", "import"}
    assert all(0 <= v < 1 for v in s["steal_share_per_round"][0].values())
    assert s["cold_minus_served"]["rounds"] == 1
    assert s["cold_minus_served"]["wall_s"] == pytest.approx(
        report["runs"][0]["cold"]["wall_s"] - report["runs"][0]["newsmill"]["wall_s"], abs=0.002)
    # import-warc of what the first ingest archived vs the bare WARC loop over the same records
    assert s["import_records"] >= 12 and s["bare_warc_records"] >= 12, report
    assert s["import_wall_s"] > 0 and s["bare_warc_wall_s"] > 0 and s["import_ratio"] > 0
    # the bench stopped the local server it started
    state = tmp_path / "work" / "newsmill-home" / "prefect" / "server.json"
    assert not state.exists()
    # and the warm runners
    for home in ("newsmill-home", "newsmill-home-served"):
        assert list((tmp_path / "work" / home / "warm").glob("*.json")) == [], home


def test_throughput_rounds_swap_the_two_ingest_paths():
    """Served and cold swap places every round, so ``--repeat 2`` measures each once first and once second
    (with cold always second, whatever the machine did after the served runs fell on cold)."""
    sys.path.insert(0, str(REPO))
    from bench.throughput import round_order

    assert [round_order(r) for r in range(4)] == [("served", "cold"), ("cold", "served")] * 2
