"""Errors a user can fix are one line, never a traceback, and never create anything (issue 15 item 7):
hostile config files (non-finite numbers, broken URLs, bytes that are not UTF-8) and maintenance commands
pointed at a warehouse that does not exist. Through the real CLI."""

from __future__ import annotations

import subprocess

import pytest

from newsmill.tasks.config import load_settings
from newsmill.tasks.errors import ConfigError

SOURCE = '[[sources]]\nname = "x"\nurls = ["http://127.0.0.1:9/a"]\n'

# (file bytes, the key or phrase the one-line error must name)
HOSTILE_CONFIGS = {
    "timeout_nan": (b"[fetch]\ntimeout_s = nan\n" + SOURCE.encode(), "fetch.timeout_s"),
    "timeout_inf": (b"[fetch]\ntimeout_s = inf\n" + SOURCE.encode(), "fetch.timeout_s"),
    "delay_minus_inf": (b"[fetch]\nper_host_delay_s = -inf\n" + SOURCE.encode(), "fetch.per_host_delay_s"),
    "backoff_nan": (b"[fetch]\nbackoff_s = +nan\n" + SOURCE.encode(), "fetch.backoff_s"),
    "max_age_inf": (SOURCE.encode() + b"max_age_days = inf\n", "sources[0].max_age_days"),
    "sql_timeout_nan": (b"[sql]\ntimeout_s = nan\n" + SOURCE.encode(), "sql.timeout_s"),
    "unclosed_ipv6": (b'[[sources]]\nname = "x"\nurls = ["http://[::1/"]\n', "sources[0].urls[0]"),
    "bad_port_feed": (b'[[sources]]\nname = "x"\nfeeds = ["http://example.org:99999/rss"]\n',
                      "sources[0].feeds[0]"),
    "ipv6_sitemap": (b'[[sources]]\nname = "x"\nsitemaps = ["https://[fe80::1%eth0/s.xml"]\n',
                     "sources[0].sitemaps[0]"),
    "latin1": ('[fetch]\nuser_agent = "café"\n'.encode("latin-1") + SOURCE.encode(), "not UTF-8"),
    "utf16": ('[fetch]\ntimeout_s = 5\n'.encode("utf-16"), "not UTF-8"),
    "binary": (bytes(range(256)) * 4, "not UTF-8"),
    "sql_size": (b'[sql]\nmax_temp_size = "lots"\n' + SOURCE.encode(), "sql.max_temp_size"),
    "sitemaps_zero": (b"[fetch]\nmax_sitemaps = 0\n" + SOURCE.encode(), "fetch.max_sitemaps"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_CONFIGS))
def test_hostile_config_is_one_line_error(tmp_path, newsmill_cmd, name):
    data, key = HOSTILE_CONFIGS[name]
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(data)
    with pytest.raises(ConfigError, match=__import__("re").escape(key)):
        load_settings(cfg)
    p = subprocess.run([newsmill_cmd, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "w")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr
    assert key in p.stderr
    assert not (tmp_path / "w").exists()  # refused before anything was created


def test_finite_numbers_still_load(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[fetch]\ntimeout_s = 1e3\nbackoff_s = 0\n[sql]\ntimeout_s = 2.5\nmemory_limit = "512MB"\n'
                   'max_temp_size = "1.5 GiB"\n' + SOURCE)
    s = load_settings(cfg)
    assert (s.fetch.timeout_s, s.fetch.backoff_s, s.sql.timeout_s, s.sql.max_temp_size) == (1000.0, 0.0, 2.5, "1.5 GiB")


MAINTENANCE = {
    "compact": ["compact"],
    "delete": ["delete", "--url", "https://example.org/a"],
    "publish": ["publish", "file:///{tmp}/pub"],
    "reprocess": ["reprocess"],
    "reset-fetch-state": ["reset-fetch-state"],
}


@pytest.mark.parametrize("cmd", sorted(MAINTENANCE))
def test_maintenance_on_missing_warehouse_says_so(tmp_path, newsmill_cmd, cmd):
    args = [a.replace("{tmp}", str(tmp_path).lstrip("/")) for a in MAINTENANCE[cmd]]
    missing = tmp_path / "nonexistent" / "y"
    p = subprocess.run([newsmill_cmd, *args, "--warehouse", str(missing)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr
    assert f"no warehouse at {missing}" in p.stderr
    assert not (tmp_path / "nonexistent").exists()
    # a directory that no run ever wrote is not silently turned into one
    empty = tmp_path / "empty"
    empty.mkdir()
    p = subprocess.run([newsmill_cmd, *args, "--warehouse", str(empty)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2 and "not a newsmill warehouse" in p.stderr, p.stderr
    assert list(empty.iterdir()) == []


def test_sql_on_missing_warehouse_is_one_line(tmp_path, newsmill_cmd):
    p = subprocess.run([newsmill_cmd, "sql", "--warehouse", str(tmp_path / "nope"), "SELECT 1"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "no warehouse at" in p.stderr, p.stderr
    assert not (tmp_path / "nope").exists()


def test_two_ingests_started_together_on_a_new_warehouse(tmp_path, newsmill_cmd, prefect_api):
    """Both used to pass the check-only pre-flight (no lock file yet); the loser then failed inside its flow
    with a Prefect traceback before the lock message. Now the lock is held from the check on."""
    import os

    from faultserver import FaultServer, respond

    with FaultServer("127.0.0.2") as site:
        for i in range(5):
            site.route(f"/n/{i}", respond(f"<html><head><title>Story {i}</title></head><body><article><h1>Story {i}"
                                          f"</h1><p>{'The harbour council met on Tuesday. ' * 20}</p></article>"
                                          f"</body></html>"))
        cfg = tmp_path / "c.toml"
        urls = ", ".join(f'"{site.url(f"/n/{i}")}"' for i in range(5))
        cfg.write_text(f'[fetch]\nper_host_delay_s = 0\nallow_networks = ["127.0.0.2/32"]\nrespect_robots = false\n'
                       f'[extract]\nworkers = 1\n[[sources]]\nname = "x"\nurls = [{urls}]\n')
        env = dict(os.environ, PREFECT_API_URL=prefect_api["url"])
        cmd = [newsmill_cmd, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "new-wh"), "--quiet"]
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        results = [(p.wait(300), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 3], results
    loser = next(r for r in results if r[0] == 3)
    assert "Traceback" not in loser[2] and loser[2].strip().count("\n") == 0, loser[2]
    assert "is locked by pid" in loser[2]
