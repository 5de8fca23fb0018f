"""A time budget per page: ``extract.page_timeout_s`` bounds the extraction of every page, trafilatura's
and lxml's C code included.

A Python-level check (or a ``SIGALRM`` handler) cannot stop a single long C call: libxml2 parsing an
element with 200,000 attributes, or evaluating trafilatura's ``//p//text()`` over 100,000 paragraphs, runs
for minutes without returning to the interpreter. So a batch is extracted in a child process that reports
each step (:func:`tasks.extract.batch_steps`); this process times every page (its first pass plus its
extraction) and, when a page runs over, kills the child with ``SIGKILL`` and starts another one for the
pages still to do. The page becomes an ``extract_timeout`` result (a ``pages`` row with the reason), the
batch goes on, and the calling process (an extraction worker, or the flow process with ``workers = 1``)
is untouched and keeps working. A child that dies (segfault, OOM kill) costs its current page the same way
(``no_article``, "extraction process died …").

The child is a plain ``fork`` of a single-threaded caller (a pool worker: the extraction stack is already
loaded, nothing to pickle, ~ms); a multi-threaded caller (the flow process running extraction inline) asks
the multiprocessing forkserver for it instead, as forking a threaded process can deadlock the child. The
child also takes the batch's memory with it when it exits.

The budget is CPU time (the child's, read from ``/proc``; wall time where that is not available): a page
is judged by its own work, not by how busy the machine is — on a loaded machine a wall-clock budget turned
ordinary slow pages into timeouts. A child that uses no CPU at all for the budget's length in wall time
(stuck, not computing) is stopped as well.

Public API: :func:`extract_batch_budgeted`, :func:`extract_pages_budgeted`, :data:`TIMEOUT_OUTCOME`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time

from newsmill.tasks.records import ExtractResult

__all__ = ["TIMEOUT_OUTCOME", "extract_batch_budgeted", "extract_pages_budgeted", "reuse_children"]

TIMEOUT_OUTCOME = "extract_timeout"
try:
    _TICKS = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # pragma: no cover
    _TICKS = 100
log = logging.getLogger(__name__)


def _child_main(conn, pages, rules, settings, history, learned) -> None:  # pragma: no cover - in the child
    """Run :func:`tasks.extract.batch_steps` and send every step to the supervisor."""
    from newsmill.tasks.extract import batch_steps

    conn.send(("ready", None, None))  # the clock of the first page starts now, not at process start
    for step in batch_steps(pages, rules=rules, settings=settings, history=history, learned=learned):
        conn.send(step)
    conn.send(("done", None, None))


def _child_serve(conn) -> None:  # pragma: no cover - in the child
    """A reused child (:func:`reuse_children`): extract the batches sent to it until the pipe closes."""
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        _child_main(conn, *job)
        del job


def _die_with_parent() -> None:  # pragma: no cover - in the child
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _load_stack() -> None:
    """Import everything a page needs before forking, so no child pays for it on the clock (a pool worker
    already has it from the forkserver's preload: then this is a few dict lookups)."""
    import newsmill.tasks.copyright  # noqa: F401
    import newsmill.tasks.metadata  # noqa: F401
    import newsmill.tasks.preload  # noqa: F401  (tasks.extract, trafilatura, lxml, the language model)
    import newsmill.tasks.recurring  # noqa: F401


class _Child:
    """One extraction child process and its end of the step pipe. ``job`` (pages, rules, settings, history,
    learned) given: a one-batch child that inherits it; None: a reused child (:func:`reuse_children`) that
    is sent each batch by :meth:`start` and serves until it is closed."""

    def __init__(self, job: tuple | None):
        reused = job is None
        mine, theirs = multiprocessing.Pipe(duplex=reused)
        self.conn = mine
        self.proc = None
        self.pid = None
        self.batches = 0
        target, args = (_child_serve, (theirs,)) if reused else (_child_main, (theirs, *job))
        if threading.active_count() == 1 or multiprocessing.current_process().daemon:
            _load_stack()
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - in the child
                code = 0
                try:
                    mine.close()
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    _die_with_parent()
                    if os.getppid() != parent:
                        os._exit(0)
                    target(*args)
                except BaseException:  # noqa: BLE001 - the supervisor sees the pipe close
                    code = 70
                finally:
                    os._exit(code)
            self.pid = pid
        else:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["newsmill.tasks.preload"])  # as flows.runtime's pool (no-op once started)
            self.proc = ctx.Process(target=target, args=args, name="newsmill-extract", daemon=True)
            self.proc.start()
            self.pid = self.proc.pid
        theirs.close()

    def start(self, job: tuple) -> bool:
        """Send a reused child its next batch; False when it is gone (then the caller starts another)."""
        try:
            self.conn.send(job)
        except (OSError, EOFError, ValueError):
            return False
        self.batches += 1
        return True

    def close(self) -> None:
        """Let a reused child exit (end of its pipe), and reap it."""
        try:
            self.conn.send(None)
        except (OSError, EOFError, ValueError):
            pass
        self.conn.close()
        self.status()

    def cpu(self) -> float | None:
        """CPU seconds the child has used (Linux ``/proc``), or None where that cannot be read."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime

    def recv(self, timeout: float):
        """The next step, ``"timeout"`` when none came within ``timeout`` seconds, ``"dead"`` at EOF."""
        try:
            if not self.conn.poll(max(timeout, 0.0)):
                return "timeout"
            return self.conn.recv()
        except (EOFError, OSError):
            return "dead"

    def status(self) -> str:
        """How the child ended (reaped here)."""
        if self.proc is not None:
            self.proc.join(5)
            code = self.proc.exitcode
            return f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        try:
            _, st = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return "unknown status"
        if os.WIFSIGNALED(st):
            return f"signal {os.WTERMSIG(st)}"
        return f"exit status {os.WEXITSTATUS(st)}"

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.status()
        self.conn.close()


# A process that extracts batch after batch (an extraction pool worker: flows.runtime) keeps one child and
# sends it each batch, so what the extraction stack builds lazily — compiled regexes of the cleaning rules and
# of dateparser's locales (htmldate), lxml's XPaths, trafilatura's caches — is built once per child, not
# once per batch (~30 % of a worker's CPU when every batch had a fresh child). A child is replaced when a page
# overruns (it is killed), when it dies, and after REUSE_MAX_BATCHES batches (its memory grows with what it
# touched); elsewhere (``newsmill extract``, tests that patch the extraction code) every batch gets its own
# child, which inherits the batch instead of receiving it.
REUSE_MAX_BATCHES = 25
_reuse = False
_reused: _Child | None = None


def reuse_children(on: bool = True) -> None:
    """Keep one extraction child in this process across batches (see REUSE_MAX_BATCHES); ``False`` closes it."""
    global _reuse, _reused
    _reuse = on
    if not on and _reused is not None:
        _reused.close()
        _reused = None


def _run(pages, rules, settings, history, learned, timeout: float) -> list[ExtractResult]:
    global _reused
    results: list[ExtractResult | None] = [None] * len(pages)
    todo = list(range(len(pages)))
    while todo:
        job = ([pages[i] for i in todo], rules, settings, history, learned)
        child = None
        if _reuse:
            child = _reused
            if child is None or not child.start(job):
                if child is not None:
                    child.kill()
                child = _reused = _Child(None)
                child.start(job)
        else:
            child = _Child(job)
        del job
        spent: dict[int, tuple[float, float]] = {}  # local index -> (CPU, wall) seconds of its first pass
        phase, cur = "prepare", 0  # the step the child is on, and its page (local index)
        last, last_cpu = time.monotonic(), child.cpu()
        moved_at, moved_cpu = last, last_cpu  # when the child last used CPU
        while True:
            cpu_before, wall_before = spent.get(cur, (0.0, 0.0)) if phase == "extract" else (0.0, 0.0)
            now, cpu = time.monotonic(), child.cpu()
            if cpu is None or last_cpu is None:  # no CPU clock: wall time
                cpu_left = stall_left = timeout - wall_before - (now - last)
            else:
                # CPU time: the budget is the page's own work, not the machine's load. One thread cannot
                # use CPU faster than wall time passes, so waiting for the CPU time left never overshoots.
                cpu_left = timeout - cpu_before - (cpu - last_cpu)
                if cpu > moved_cpu:
                    moved_at, moved_cpu = now, cpu
                stall_left = timeout - (now - moved_at)  # a child using no CPU at all is stuck
            if cpu_left <= 0 or stall_left <= 0:
                step = "timeout"
                break
            step = child.recv(max(min(cpu_left, stall_left), 0.01))  # (the CPU clock ticks every 10 ms)
            if step == "timeout":
                continue  # look at the CPU clock again
            now, cpu = time.monotonic(), child.cpu()
            if step == "dead":
                break
            kind, j, value = step
            if kind == "ready":
                pass
            elif kind == "prepared":
                spent[j] = ((cpu - last_cpu) if cpu is not None and last_cpu is not None else now - last, now - last)
                cur = j + 1
            elif kind == "learned":
                learned = value
                phase, cur = "extract", 0
            elif kind == "result":
                results[todo[j]] = value
                cur = j + 1
            else:  # done
                step = "done"
                break
            last, last_cpu = now, cpu
        reused = child is _reused
        if reused and (step != "done" or child.batches >= REUSE_MAX_BATCHES):
            _reused = None  # killed below, or it has served its share (its memory grows): closed
        if step == "timeout":
            child.kill()
            how = (f"exceeded extract.page_timeout_s = {timeout:g} s of CPU time" if cpu_left <= 0 else
                   f"made no progress for extract.page_timeout_s = {timeout:g} s (no CPU time used)")
        elif step == "dead":
            how = f"extraction process died ({child.status()})"
            child.conn.close()
        elif not reused:  # a one-batch child
            child.status()
            child.conn.close()
        elif child is not _reused:
            child.close()
        if step in ("timeout", "dead"):
            if phase == "extract" and cur >= len(todo):  # every result is in: nothing to blame
                pass
            elif phase == "prepare" and cur >= len(todo):  # learning recurring blocks overran: do without
                log.warning("learning recurring blocks %s; extracting without them", how)
                learned = {}
            else:
                culprit = todo[cur]
                url = pages[culprit][0]
                outcome = TIMEOUT_OUTCOME if step == "timeout" else "no_article"
                stage = "first pass" if phase == "prepare" else "extraction"
                results[culprit] = ExtractResult(url=url, article=None, outcome=outcome,
                                                 error=f"{how} ({stage})")  # the row says it; no log
        elif any(results[i] is None for i in todo):  # pragma: no cover - "done" before every result
            for i in todo:
                if results[i] is None:
                    results[i] = ExtractResult(url=pages[i][0], article=None, outcome="no_article",
                                               error="extraction process ended without a result")
        todo = [i for i in todo if results[i] is None]
    return results  # type: ignore[return-value]


def extract_batch_budgeted(pages: list[tuple[str, str | bytes]], *, rules, settings,
                           history: dict[str, frozenset[str]] | None = None) -> list[ExtractResult]:
    """:func:`tasks.extract.extract_batch` with ``settings.page_timeout_s`` per page (0: no budget, in
    this process). Results are in input order; a page over its budget is an ``extract_timeout`` result."""
    timeout = settings.page_timeout_s
    if not pages:
        return []
    if not timeout:
        from newsmill.tasks.extract import extract_batch

        return extract_batch(pages, rules=rules, settings=settings, history=history)
    return _run(pages, rules, settings, history, None, timeout)


def extract_pages_budgeted(pages: list[tuple[str, str | bytes]], *, rules, settings) -> list[ExtractResult]:
    """Pages extracted on their own, as :func:`tasks.extract.extract_page` does (no recurring blocks
    learned across them), each within ``settings.page_timeout_s``."""
    timeout = settings.page_timeout_s
    if not pages:
        return []
    if not timeout:
        from newsmill.tasks.extract import extract_page

        return [extract_page(html, url, rules=rules, settings=settings) for url, html in pages]
    return _run(pages, rules, settings, None, {}, timeout)
