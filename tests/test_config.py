"""Settings: defaults + user file, validation errors name the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from newsmill.tasks.config import Settings, load_settings, settings_from_dict
from newsmill.tasks.errors import ConfigError


def test_defaults_and_shipped_sources_load():
    s = load_settings()
    assert s.fetch.user_agent.startswith("newsmill/")
    assert s.fetch.timeout_s == 20.0 and s.fetch.retries == 3 and s.fetch.max_bytes == 10_000_000
    assert s.fetch.allow_networks == ()
    assert len(s.sources) >= 4, "config/sources.toml ships a handful of real feeds"
    for src in s.sources:
        assert src.feeds or src.sitemaps or src.urls


def test_user_file_overrides_defaults(tmp_path):
    cfg = tmp_path / "my.toml"
    cfg.write_text('[fetch]\nper_host_delay_s = 0\nallow_networks = ["127.0.0.0/8"]\n'
                   '[[sources]]\nname = "local"\nurls = ["http://127.0.0.1:8000/a"]\nmax_pages = 5\n')
    s = load_settings(cfg)
    assert s.fetch.per_host_delay_s == 0.0
    assert s.fetch.timeout_s == 20.0  # untouched default
    assert s.fetch.allow_networks == ("127.0.0.0/8",)
    assert [x.name for x in s.sources] == ["local"] and s.sources[0].max_pages == 5
    assert s.config_path == str(cfg)


@pytest.mark.parametrize("data, key", [
    ({"fetch": {"timout_s": 3}}, "fetch.timout_s"),
    ({"fetch": {"timeout_s": "soon"}}, "fetch.timeout_s"),
    ({"fetch": {"retries": 1.5}}, "fetch.retries"),
    ({"fetch": {"timeout_s": 0}}, "fetch.timeout_s"),
    ({"fetch": {"allow_networks": ["not-a-cidr"]}}, "fetch.allow_networks[0]"),
    ({"fetch": {"allow_networks": "127.0.0.0/8"}}, "fetch.allow_networks"),
    ({"fetchh": {}}, "fetchh"),
    ({"sources": [{"name": "a", "feeds": ["file:///etc/passwd"]}]}, "sources[0].feeds[0]"),
    ({"sources": [{"name": "a", "urls": ["ftp://x.org/a"]}]}, "sources[0].urls[0]"),
    ({"sources": [{"name": "a", "colour": "red"}]}, "sources[0].colour"),
    ({"sources": [{"feeds": []}]}, "sources[0].name"),
    ({"sources": [{"name": "a"}, {"name": "a"}]}, "sources[1].name"),
    ({"sources": [{"name": "a", "include": ["("]}]}, "sources[0].include[0]"),
    ({"runner": {"task_runner": "spark"}}, "runner.task_runner"),
])
def test_bad_values_name_the_key(data, key):
    with pytest.raises(ConfigError) as exc:
        settings_from_dict(data)
    assert str(exc.value).startswith(key), str(exc.value)


def test_select_sources_unknown_name():
    s = settings_from_dict({"sources": [{"name": "a", "urls": ["https://a.org/x"]}]})
    assert s.select_sources(["a"]).sources[0].name == "a"
    assert s.select_sources(None) is s
    with pytest.raises(ConfigError, match="no source named 'b'"):
        s.select_sources(["b"])


def test_invalid_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[fetch\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")


def test_cli_bad_config_is_one_line_error(tmp_path, newsmill_cmd):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[fetch]\ntimeout_s = -1\n")
    p = subprocess.run([newsmill_cmd, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "w")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert p.stderr.strip().count("\n") == 0, p.stderr
    assert "fetch.timeout_s" in p.stderr and "Traceback" not in p.stderr


def test_cli_unwritable_warehouse(tmp_path, newsmill_cmd):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = subprocess.run([newsmill_cmd, "ingest", "--warehouse", str(blocker / "w")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "not writable" in p.stderr and "Traceback" not in p.stderr


def test_help_everywhere(newsmill_cmd):
    for cmd in ([], ["ingest"], ["extract"], ["sql"], ["demo"]):
        p = subprocess.run([newsmill_cmd, *cmd, "--help"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and "usage: newsmill" in p.stdout


def test_cli_locked_warehouse_is_one_line_error(tmp_path, newsmill_cmd):
    from newsmill.warehouse.store import Warehouse

    cfg = tmp_path / "c.toml"
    cfg.write_text('[[sources]]\nname = "x"\nurls = ["http://127.0.0.1:9/a"]\n')
    with Warehouse(tmp_path / "w").writer("night-1"):
        p = subprocess.run([newsmill_cmd, "ingest", "--config", str(cfg), "--warehouse", str(tmp_path / "w")],
                           capture_output=True, text=True, timeout=60)
    assert p.returncode == 3, p.stderr
    assert p.stderr.strip().count("\n") == 0 and "locked by pid" in p.stderr and "night-1" in p.stderr


def test_bundled_defaults_file_and_the_settings_dataclasses_agree():
    """``config/defaults.toml`` is the documented copy of the defaults; the typed dataclasses of
    ``tasks.config`` are the source of truth (tests and library callers build them directly). Every key of
    the file is a field with the same default, and every field is in the file: one cannot drift from the
    other."""
    import dataclasses
    import tomllib

    from newsmill.tasks.config import DEFAULTS_FILE

    data = tomllib.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))
    base = Settings()
    sections = {f.name for f in dataclasses.fields(Settings) if dataclasses.is_dataclass(getattr(base, f.name))}
    assert set(data) - {"sources"} == sections
    for name in sections:
        obj = getattr(base, name)
        fields = {f.name for f in dataclasses.fields(obj)}
        assert set(data[name]) == fields, f"[{name}]: only in the file {set(data[name]) - fields}, " \
                                          f"only in the dataclass {fields - set(data[name])}"
        for key, value in data[name].items():
            default = getattr(obj, key)
            assert (list(default) if isinstance(default, tuple) else default) == value, f"{name}.{key}"
