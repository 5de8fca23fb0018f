"""``newsmill sql`` is bounded (issue 15 item 5): a statement stops after ``sql.timeout_s``; it spills into a
private directory under the system temp dir, capped by ``sql.max_temp_size`` and removed at the end, also on
SIGTERM and Ctrl-C; rows are written as they are produced. Through the real CLI, on a real warehouse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from newsmill.warehouse.query import run_query
from newsmill.warehouse.store import Warehouse

# a statement that never ends (DuckDB materialises a recursive CTE before returning a row)
FOREVER = "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t"
# a sort far beyond a small memory_limit: it spills for tens of seconds
SPILL = "SELECT count(*) FROM (SELECT i, hash(i) AS h FROM range(300000000) t(i) ORDER BY h)"
# rows without end, produced as fast as they are consumed
ENDLESS_ROWS = "SELECT i FROM range(1000000000000) t(i)"


@pytest.fixture()
def wh(tmp_path):
    return Warehouse(tmp_path / "wh").root


def _config(tmp_path: Path, **sql) -> Path:
    cfg = tmp_path / "sql.toml"
    cfg.write_text("[sql]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in sql.items()))
    return cfg


def _as_in_a_shell() -> None:
    """SIGINT at its default in the command, as in a user's shell: a test runner started in the background
    by a non-interactive shell (``cmd &``) ignores SIGINT, every child inherits that, and the Ctrl-C tests
    then timed out with no fault of the command's."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sql(newsmill_cmd, wh, query, cfg, tmp_path, **kw):
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmpdir"))
    (tmp_path / "tmpdir").mkdir(exist_ok=True)
    (tmp_path / "cwd").mkdir(exist_ok=True)
    return subprocess.Popen([newsmill_cmd, "sql", "--warehouse", str(wh), "--config", str(cfg), *kw.pop("args", []),
                             query], cwd=tmp_path / "cwd", env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_as_in_a_shell, **kw)


def _one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().count("\n") == 0 and stderr.startswith("newsmill: error: "), stderr
    return stderr


def test_statement_timeout_stops_a_query_that_never_ends(tmp_path, wh, newsmill_cmd):
    p = _sql(newsmill_cmd, wh, FOREVER, _config(tmp_path, timeout_s=2), tmp_path)
    t0 = time.monotonic()
    try:
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert time.monotonic() - t0 < 30
    assert p.returncode == 2
    assert "sql.timeout_s = 2 s" in _one_line_error(err)


def _wait_for_spill(tmp_path: Path, p: subprocess.Popen, min_bytes: int = 4 << 20, timeout: float = 60) -> Path:
    """The private spill directory of ``p`` once it holds ``min_bytes``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert p.poll() is None, p.communicate()
        for d in (tmp_path / "tmpdir").glob("newsmill-sql-*"):
            size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            if size >= min_bytes:
                return d
        time.sleep(0.2)
    raise AssertionError("the query never spilled")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_spill_goes_to_a_private_dir_removed_on_signal(tmp_path, wh, newsmill_cmd, sig, code):
    p = _sql(newsmill_cmd, wh, SPILL, _config(tmp_path, memory_limit="100MB", max_temp_size="10GB"), tmp_path)
    try:
        spill = _wait_for_spill(tmp_path, p)
        assert not (tmp_path / "cwd" / ".tmp").exists()  # DuckDB's default: <cwd>/.tmp
        p.send_signal(sig)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == code, err
    _one_line_error(err)
    assert not spill.exists()
    assert list((tmp_path / "tmpdir").iterdir()) == []
    assert not (tmp_path / "cwd" / ".tmp").exists()


def test_spill_is_capped_by_max_temp_size(tmp_path, wh, newsmill_cmd):
    p = _sql(newsmill_cmd, wh, SPILL, _config(tmp_path, memory_limit="100MB", max_temp_size="20MB"), tmp_path)
    try:
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 2
    assert "sql.max_temp_size" in _one_line_error(err) or "sql.memory_limit" in err
    assert list((tmp_path / "tmpdir").iterdir()) == []


def test_working_directory_temp_files_are_not_readable(tmp_path, wh, newsmill_cmd):
    """DuckDB lets a sandboxed query read its temp directory; it used to be ``<cwd>/.tmp``."""
    (tmp_path / "cwd" / ".tmp").mkdir(parents=True)
    (tmp_path / "cwd" / ".tmp" / "secret.txt").write_text("not for the query")
    p = _sql(newsmill_cmd, wh, "SELECT content FROM read_text('.tmp/secret.txt')", _config(tmp_path), tmp_path)
    out, err = p.communicate(timeout=60)
    assert p.returncode != 0 and "not for the query" not in out
    _one_line_error(err)


def test_rows_are_written_while_the_statement_runs(tmp_path, wh, newsmill_cmd):
    """Streamed: rows of an endless result reach the output before the timeout stops it (a fetch-all
    would never print one)."""
    p = _sql(newsmill_cmd, wh, ENDLESS_ROWS, _config(tmp_path, timeout_s=3), tmp_path, args=["--format", "csv"])
    try:
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 2 and "sql.timeout_s" in _one_line_error(err)
    lines = out.splitlines()
    assert lines[0] == "i" and len(lines) > 10_000
    assert lines[1:10_000] == [str(i) for i in range(9_999)]


def test_stream_query_writes_batch_by_batch(wh):
    from newsmill.warehouse.query import stream_query

    class Recorder:
        def __init__(self):
            self.writes: list[int] = []

        def write(self, s):
            self.writes.append(s.count("\n"))

        def flush(self):
            pass

    rec = Recorder()
    assert stream_query(wh, "SELECT i FROM range(100000) t(i)", rec, fmt="csv") == 100_000
    assert sum(rec.writes) == 100_001 and max(rec.writes) < 10_000  # no write holds the whole result


def test_table_format_long_result_and_types(wh):
    out = run_query(wh, "SELECT i, repeat('x', i % 70) AS s FROM range(12000) t(i)")
    lines = out.splitlines()
    assert lines[-1] == "(12000 rows)" and len(lines) == 12000 + 5
    assert len({len(line) for line in lines[:-1]}) == 1  # aligned, also after the first 10,000 rows
    row = json.loads(run_query(wh, "SELECT 170141183460469231731687303715884105727::HUGEINT AS h, "
                                   "INTERVAL 1 DAY AS d, MAP {'a': 1} AS m, 1.5::DECIMAL(4,2) AS x", fmt="json"))[0]
    assert row == {"h": 170141183460469231731687303715884105727, "d": 86400.0, "m": {"a": 1}, "x": 1.5}


def test_ctrl_c_during_a_query_is_one_line(tmp_path, wh, newsmill_cmd):
    """Ctrl-C used to end in ``RuntimeError: Query interrupted`` and a traceback."""
    p = subprocess.Popen([newsmill_cmd, "sql", "--warehouse", str(wh), FOREVER], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=tmp_path, preexec_fn=_as_in_a_shell)
    try:
        time.sleep(4)  # past start-up: inside the statement
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 130, err
    assert "interrupted" in _one_line_error(err)
