"""The command line as a package: the light commands run without Prefect, the flows never import the CLI,
and ``python -m newsmill`` is the same command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_LIGHT = """
import sys
from newsmill.cli import main
rc = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m == "prefect" or m.startswith("prefect."))
print("PREFECT_MODULES", len(loaded))
sys.exit(rc)
"""


@pytest.mark.parametrize("argv", [
    ["sql", "--format", "csv", "select 1 as x"],
    ["reset-fetch-state", "--reason", "test"],
    ["compact"],
    ["delete", "--url", "https://example.org/a"],
    ["extract", "{page}"],
    ["--help"],
])
def test_light_commands_never_import_prefect(tmp_path, argv):
    page = tmp_path / "a.html"
    page.write_text("<html><head><title>T</title></head><body><article><p>" + "Word " * 80
                    + "</p></article></body></html>", encoding="utf-8")
    argv = [a.replace("{page}", str(page)) for a in argv]
    if argv[0] not in ("extract", "--help"):
        from newsmill.warehouse.store import Warehouse

        with Warehouse(tmp_path / "wh").writer("init"):  # an (empty) warehouse to work on
            pass
        argv += ["--warehouse", str(tmp_path / "wh")]
    p = subprocess.run([sys.executable, "-c", _LIGHT, *argv], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    if argv != ["--help"]:  # argparse exits inside main() on --help: nothing to count, but it must not fail
        assert "PREFECT_MODULES 0" in p.stdout, p.stdout[-500:]


def test_python_dash_m_is_the_command(tmp_path):
    p = subprocess.run([sys.executable, "-m", "newsmill", "sql", "--warehouse", str(tmp_path), "select 41 + 1"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "42" in p.stdout
    p = subprocess.run([sys.executable, "-m", "newsmill", "sql", "--warehouse", str(tmp_path), "drop table x"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode != 0 and p.stderr.startswith("newsmill: error: ") and "Traceback" not in p.stderr


def test_flows_never_import_the_cli():
    offenders = [str(f.relative_to(ROOT)) for d in ("flows", "tasks", "warehouse") for f in (ROOT / d).rglob("*.py")
                 if "newsmill.cli" in f.read_text(encoding="utf-8")]
    assert offenders == []


def test_extraction_forkserver_starts_before_prefect_only_for_runs_that_extract(tmp_path, monkeypatch):
    """``ingest``/``import-warc``/``reprocess`` start the extraction forkserver (~3 s of imports and warm-up)
    before importing Prefect, so it overlaps the import and the flow run's creation — except for an ingest
    into a warehouse that already holds pages (a rerun: mostly conditional requests, maybe nothing to
    extract; the flow starts it when it must), unless ``--refetch``; never on Dask (the workers extract)."""
    import dataclasses

    from newsmill.flows import runtime
    from newsmill.flows.runtime import start_extraction_early
    from newsmill.tasks.config import Settings

    started: list[int] = []
    monkeypatch.setattr(runtime, "start_forkserver", started.append)
    settings = Settings()
    start_extraction_early(settings)  # import-warc, reprocess
    start_extraction_early(settings, tmp_path / "fresh")  # a first ingest
    assert started == [settings.extract.workers] * 2
    (tmp_path / "wh" / "pages").mkdir(parents=True)
    (tmp_path / "wh" / "pages" / "part-0.parquet").write_bytes(b"PAR1")
    start_extraction_early(settings, tmp_path / "wh")  # a rerun
    assert len(started) == 2
    start_extraction_early(settings, tmp_path / "wh", refetch=True)
    assert len(started) == 3
    dask = dataclasses.replace(settings, runner=dataclasses.replace(settings.runner, task_runner="dask"))
    start_extraction_early(dask)
    assert len(started) == 3
    # and it imports no Prefect (that is its point)
    probe = ("import sys; from newsmill.flows.runtime import start_extraction_early; "
             "from newsmill.tasks.config import Settings; import newsmill.flows.runtime as r; "
             "r.start_forkserver = lambda w: None; start_extraction_early(Settings()); "
             "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
