"""Per-process resources shared by the batch tasks of one flow run.

A Prefect task's parameters are serialised for Dask and hashed for caching, so live resources (the HTTP
fetcher with its per-host politeness state, the extraction process pool, the parsed rules, an import's
WARC archive writer) are not passed as parameters. Tasks look them up here by ``run_id``; each process
(the flow's, or a Dask worker) builds its own on first use, and the flow closes them at the end of the run.
"""

from __future__ import annotations

import dataclasses

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# An extraction worker is replaced after this many batches, so a long run's memory stays flat (forkserver
# makes the restart cheap). The extraction itself runs in the worker's child (tasks.budget), which keeps the
# memory lxml/trafilatura touched and is replaced after tasks.budget.REUSE_MAX_BATCHES batches.
MAX_BATCHES_PER_WORKER = 50

_lock = threading.Lock()
_fetchers: dict[str, object] = {}
_pools: dict[str, ProcessPoolExecutor] = {}
_rules: dict[tuple[str, str | None, str | None], object] = {}  # (run_id, rules_dir, sites_dir)
_archives: dict[str, object] = {}


def fetcher(run_id: str, fetch_settings, warehouse_root: str | None):
    """The run's :class:`tasks.fetch.Fetcher` in this process (created on first use)."""
    from newsmill.tasks.archive import WarcArchive
    from newsmill.tasks.fetch import Fetcher

    with _lock:
        f = _fetchers.get(run_id)
        if f is None:
            archive = None
            if warehouse_root and fetch_settings.archive_warc:
                archive = WarcArchive(Path(warehouse_root), run_id)
            f = Fetcher(fetch_settings, run_id=run_id, archive=archive)
            _fetchers[run_id] = f
        return f


_libc_trim = None


def release_memory() -> None:
    """Hand memory freed by the last batch back to the OS: Arrow's pool (``release_unused``) and glibc's
    heap (``malloc_trim``; large bodies freed by many fetch threads otherwise stay in malloc's arenas,
    and the flow process's RSS grew by ~60 MB per 1,000 pages). A no-op where neither applies."""
    global _libc_trim
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except Exception:  # noqa: BLE001
        pass
    if _libc_trim is None:
        try:
            import ctypes
            import ctypes.util

            _libc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _libc_trim = False
    if _libc_trim:
        _libc_trim(0)


def rules(run_id: str, rules_dir: str | None = None, sites_dir: str | None = None):
    """The cleaning rules (the bundled ones, or ``rules_dir``/``sites_dir``), loaded once per process per
    run (so a re-run picks up edited rules)."""
    from newsmill.tasks.clean import load_rules

    key = (run_id, rules_dir, sites_dir)
    with _lock:
        r = _rules.get(key)
        if r is None:
            dirs = {"rules_dir": Path(rules_dir)} if rules_dir else {}
            if sites_dir:
                dirs["sites_dir"] = Path(sites_dir)
            r = load_rules(**dirs)
            _rules[key] = r
        return r


def archive(run_id: str, warehouse_root: str):
    """The run's raw WARC archive writer in this process (``WarcArchive`` is thread-safe)."""
    from newsmill.tasks.archive import WarcArchive

    with _lock:
        a = _archives.get(run_id)
        if a is None:
            a = _archives[run_id] = WarcArchive(Path(warehouse_root), run_id)
        return a


def extractor_version(rules) -> str:
    """:func:`tasks.extract.extractor_version`, run in a worker (see :func:`extract_batch`)."""
    from newsmill.tasks.extract import extractor_version as version

    return version(rules)


def extract_batch(pages, rules, settings, history):
    """:func:`tasks.extract.extract_batch` within ``settings.page_timeout_s`` per page
    (:func:`tasks.budget.extract_batch_budgeted`: a page over it is an ``extract_timeout`` result, this
    worker goes on), imported where it runs: the flow process hands batches to the pool without importing
    the extraction stack (trafilatura & co., ~0.3 s of CPU) itself."""
    from newsmill.tasks.budget import extract_batch_budgeted

    results = extract_batch_budgeted(pages, rules=rules, settings=settings, history=history)
    return sign_results(results)


def sign_results(results: list) -> list:
    """Each article's text signature for stories (``tasks.stories.signature``), computed here in the worker
    so the flow process only matches them; a signature that cannot be computed is left to the run's end."""
    from newsmill.tasks.stories import signature

    out = []
    for r in results:
        if r.article is not None and r.signature is None:
            try:
                r = dataclasses.replace(r, signature=signature(r.article.text))
            except Exception:  # noqa: BLE001 - the flow process signs what is missing
                pass
        out.append(r)
    return out


def _worker_init(run_pid: int | None = None) -> None:  # pragma: no cover - runs in the child
    """A worker dies with the run (``kill -9`` of the flow process, an OOM kill). The forkserver exits when
    its ``alive`` pipe hits EOF, but multiprocessing hands the pipe's write end to every worker it forks,
    so the workers kept it alive and it kept them: they waited on their task queue forever, and held the
    resource tracker. Here the worker closes its copy, so the forkserver exits with the flow process, and
    the kernel then kills the worker (``PR_SET_PDEATHSIG`` to its parent, the single-threaded forkserver);
    its per-batch extraction children die with it the same way (``tasks.budget``), and the resource
    tracker exits once nobody holds its pipe. A worker started after the run died exits at once."""
    import signal
    from multiprocessing import forkserver

    from newsmill.tasks.budget import _die_with_parent, reuse_children

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fs = forkserver._forkserver
    if fs._forkserver_alive_fd is not None:  # a worker never starts processes through this forkserver
        os.close(fs._forkserver_alive_fd)
        fs._forkserver_alive_fd = None
    _die_with_parent()
    reuse_children()  # one extraction child for many batches: its lazily built caches are kept
    if run_pid is not None:
        try:
            os.kill(run_pid, 0)
        except ProcessLookupError:
            os._exit(0)


# Run by the temporary Prefect server's Python before it becomes uvicorn: ask the kernel for SIGTERM when
# the process that started it dies, give up if that already happened, then exec the real command.
_DIE_WITH_PARENT_EXEC = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "os.getppid() == int(sys.argv[1]) or sys.exit(0)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def start_temporary_server() -> None:
    """Start Prefect's temporary API server (``SubprocessASGIServer``, what Prefect starts on first use
    when no API URL is set) now, so that it dies with this process: Prefect runs it as a plain child
    that outlived a ``kill -9`` of the run (~200 MB per killed run). Its command is run through a small
    exec wrapper that sets ``PR_SET_PDEATHSIG``; the kernel ties that to the starting *thread*, so this
    only acts from the main thread (elsewhere Prefect starts the server itself, as before). Prefect then
    uses this instance (one per process)."""
    import subprocess
    import sys

    if threading.current_thread() is not threading.main_thread() or not sys.platform.startswith("linux"):
        return
    from prefect.server.api import server as prefect_server

    srv = prefect_server.SubprocessASGIServer()
    if srv.running:
        return
    real = prefect_server.subprocess
    parent = str(os.getpid())

    class _Subprocess:  # prefect.server.api.server's view of ``subprocess`` while it starts the server
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def Popen(args, **kwargs):  # noqa: N802
            return real.Popen([sys.executable, "-c", _DIE_WITH_PARENT_EXEC, parent, *args], **kwargs)

    prefect_server.subprocess = _Subprocess()
    try:
        srv.start()
    finally:
        prefect_server.subprocess = real


def _warm() -> None:  # pragma: no cover - runs in the child
    import newsmill.tasks.preload  # noqa: F401  (already imported by the forkserver preload: a no-op then)


def pool(run_id: str, workers: int) -> ProcessPoolExecutor | None:
    """A process pool for CPU-bound extraction, or None where child processes are not allowed
    (inside a daemonic Dask worker process) or ``workers == 1``."""
    if workers <= 1 or multiprocessing.current_process().daemon:
        return None
    with _lock:
        p = _pools.get(run_id)
        if p is None:
            p = ProcessPoolExecutor(max_workers=workers, mp_context=_forkserver_context(), initializer=_worker_init,
                                    initargs=(os.getpid(),), max_tasks_per_child=MAX_BATCHES_PER_WORKER)
            _pools[run_id] = p
        return p


def _forkserver_context():
    ctx = multiprocessing.get_context("forkserver")
    # the forkserver imports the extraction stack (trafilatura, lxml, rules) and loads the language
    # model once; each worker forks from it ready to extract
    ctx.set_forkserver_preload(["newsmill.tasks.preload"])
    return ctx


def start_forkserver(workers: int) -> None:
    """Start the extraction forkserver in the background (its imports and model load take ~1 s of a
    core, done while this process creates the flow run and discovers URLs). Best effort, non-blocking;
    a no-op where :func:`pool` would not use processes."""
    if workers <= 1 or multiprocessing.current_process().daemon:
        return

    def start():
        try:
            from multiprocessing import forkserver

            _forkserver_context()
            forkserver.ensure_running()
        except Exception:  # noqa: BLE001 - pool() reports a real failure where it is used
            pass

    threading.Thread(target=start, name="newsmill-forkserver", daemon=True).start()


def start_extraction_early(settings, root: Path | None = None, refetch: bool = False) -> None:
    """Start the extraction forkserver now (its imports, language model and warm-up: ~3 s of one core) while
    this process works on the other: the CLI imports Prefect and creates the flow run, a flow discovers and
    plans; the run's pool finds it running. ``root``: an ingest's warehouse, skipped when it already holds
    pages (a rerun sends mostly conditional requests and may extract nothing: its pool starts the forkserver
    when a batch needs it) unless ``refetch``. Thread task runner only (on Dask the workers extract)."""
    if settings.runner.task_runner != "threads":
        return
    if root is not None and not refetch:
        from newsmill.warehouse.files import has_files

        if has_files(root, "pages"):
            return
    start_forkserver(settings.extract.workers)


def warm_pool(run_id: str, workers: int) -> None:
    """Start the run's extraction workers in the background, so they are ready by the first batch.
    Best effort: a pool that cannot start here fails later where it is used."""
    def warm():
        try:
            p = pool(run_id, workers)
            if p is not None:
                for _ in range(workers):
                    p.submit(_warm)
        except Exception:  # noqa: BLE001
            pass

    threading.Thread(target=warm, name="newsmill-warm-pool", daemon=True).start()


def close(run_id: str) -> None:
    with _lock:
        f = _fetchers.pop(run_id, None)
        p = _pools.pop(run_id, None)
        a = _archives.pop(run_id, None)
        for k in [k for k in _rules if k[0] == run_id]:
            del _rules[k]
    if f is not None:
        f.close()
    if a is not None:
        a.close()
    if p is not None:
        p.shutdown(wait=True, cancel_futures=True)
