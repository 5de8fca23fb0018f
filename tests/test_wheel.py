"""The distribution as a user gets it: a wheel built from the repository, installed with its declared
dependencies (pinned by constraints.txt) into a fresh virtualenv that sees nothing of this one, runs
``newsmill demo`` from an unrelated directory.

Slow (a wheel build, a venv, ~150 dependency wheels): marked ``slow``; CI runs it with everything else.
The dependency wheels are resolved from the wheel's own metadata (PyPI, pinned by constraints.txt) into
a wheelhouse in pytest's cache, keyed by the declared dependencies and the pins, so later runs install
offline (``--no-index``) in about a minute; a dependency the wheel does not declare is never there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.test_imports import package_dirs

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _clean_env(extra: dict | None = None, venv: Path | None = None) -> dict:
    """The environment without this checkout's venv: nothing of it may leak into the throwaway one."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = os.pathsep.join([str(venv / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    env.update(extra or {})
    return env


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert p.returncode == 0, f"{cmd}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def _files_under(root: Path) -> dict[str, tuple[int, int]]:
    """relative path → (size, mtime_ns) of every file, bytecode caches left out (the interpreter writes
    those for any installed module whose .pyc pip did not compile; they are not newsmill's writes)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _package_folders() -> set[str]:
    """The repository folders the distribution is built from (pyproject's packages and package-dir)."""
    return {str(folder.relative_to(REPO)) for folder in package_dirs().values()}


def _wheelhouse(request, wheel: Path) -> Path:
    """A directory of wheels for every dependency of ``wheel`` (pinned), built once per set of
    dependencies and pins."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    key = hashlib.sha256(json.dumps(sorted(deps)).encode() + (REPO / "constraints.txt").read_bytes()).hexdigest()
    house = Path(request.config.cache.mkdir("newsmill-wheelhouse"))
    stamp = house / "complete"
    if not stamp.exists() or stamp.read_text() != key:
        for old in house.glob("*.whl"):
            old.unlink()
        _run([sys.executable, "-m", "pip", "wheel", "-q", "-w", house, wheel, "-c", REPO / "constraints.txt"],
             env=_clean_env(), timeout=3600)
        for own in house.glob("newsmill-*.whl"):
            own.unlink()
        stamp.write_text(key)
    return house


@pytest.fixture(scope="module")
def installed(request, tmp_path_factory):
    """(venv, site-packages) with the wheel built from this repository installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    # build from a copy: setuptools writes build/ and *.egg-info next to the sources it builds
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for folder in sorted({Path(d).parts[0] for d in _package_folders()}):
        shutil.copytree(REPO / folder, src / folder, ignore=ignore)
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, src],
         env=_clean_env(), timeout=600)
    (wheel,) = dist.glob("newsmill-*.whl")
    house = _wheelhouse(request, wheel)
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], env=_clean_env(), timeout=300)  # no system site-packages
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     env=_clean_env(venv=venv)).stdout.strip())
    _run([py, "-m", "pip", "install", "-q", "--no-index", "--find-links", house, wheel,
          "-c", REPO / "constraints.txt"], env=_clean_env(venv=venv), timeout=1800)
    return venv, site


def test_the_distribution_installs_one_import_name(installed):
    venv, site = installed
    files = json.loads(_run([venv / "bin" / "python", "-c",
                             "import json, importlib.metadata as m; "
                             "print(json.dumps([str(f) for f in m.distribution('newsmill').files]))"],
                            env=_clean_env(venv=venv), cwd="/").stdout)
    tops = {Path(f).parts[0] for f in files if not f.startswith("..")}  # ../../../bin/newsmill: the script
    assert tops == {"newsmill", "newsmill-0.1.0.dist-info"}
    # the bundled config ships as package data
    for rel in ("newsmill/config/defaults.toml", "newsmill/config/demo/demo.toml", "newsmill/config/rules"):
        assert (site / rel).exists(), rel
    assert any(f.startswith("newsmill/config/sites/") for f in files)
    assert not any((site / name).exists() for name in ("flows", "tasks", "warehouse", "config"))


def test_demo_runs_from_another_directory_and_writes_nothing_into_site_packages(installed, prefect_api, tmp_path):
    venv, site = installed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env(venv=venv, extra={**{k: v for k, v in prefect_api["env"].items() if k.startswith("PREFECT_")},
                                       "NEWSMILL_HOME": str(tmp_path / "home")})
    before = _files_under(site)
    wh = tmp_path / "wh"
    p = _run([venv / "bin" / "newsmill", "demo", "--warehouse", wh, "--quiet"], env=env, cwd=elsewhere,
             timeout=600)
    assert "articles written" in p.stdout
    out = _run([venv / "bin" / "newsmill", "sql", "--warehouse", wh, "--format", "json",
                "select count(*) as n, count(DISTINCT copyright_holder) as holders from articles"],
               env=env, cwd=elsewhere, timeout=120).stdout
    row = json.loads(out)[0]
    assert row["n"] >= 3 and row["holders"] >= 1, row
    after = _files_under(site)
    assert after == before, {k for k in before.keys() ^ after.keys()} or \
        {k for k in before if before[k] != after.get(k)}
    assert list(elsewhere.iterdir()) == []  # --warehouse given: nothing lands in the working directory

    # ``python -m newsmill`` is the same command, from any directory
    p = _run([venv / "bin" / "python", "-m", "newsmill", "--help"], env=env, cwd=elsewhere, timeout=120)
    assert p.stdout.startswith("usage: newsmill")
