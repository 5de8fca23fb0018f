"""The warm runner's process (``python -m newsmill.cli.warm_runner KEY``, started by ``newsmill.cli.warm.spawn``):
it imports everything a flow command needs once, then forks a copy of itself per command handed over
(``newsmill.cli.warm.hand_off``), which becomes that command. See ``newsmill.cli.warm`` for the design."""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import socket
import sys
import time

from newsmill.cli import warm
from newsmill.cli.warm import PROTOCOL, VOLATILE, _paths, _recv_json, _send_json, env_key

def _preload() -> None:
    """Everything a flow command imports, and the extraction stack warmed (``tasks.preload``)."""
    import newsmill.cli  # noqa: F401
    import newsmill.cli.common  # noqa: F401
    import newsmill.flows.demo  # noqa: F401
    import newsmill.flows.import_warc  # noqa: F401
    import newsmill.flows.ingest  # noqa: F401
    import newsmill.flows.reporting  # noqa: F401
    import newsmill.flows.reprocess  # noqa: F401
    import newsmill.tasks.preload  # noqa: F401  (the extraction stack, the language model, warm caches)
    import newsmill.warehouse.query  # noqa: F401
    import prefect.context  # noqa: F401

    import importlib

    # what a run would import on first use (profiled: ~0.25 s of a 1,000-page run); optional, as these move
    for name in ("bs4", "fastapi.encoders", "prefect.utilities.visualization", "prefect.task_engine",
                 "anyio._backends._asyncio", "newsmill.tasks.discover", "newsmill.flows.health"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _module_files() -> dict[str, tuple[int, int]]:
    out = {}
    for m in list(sys.modules.values()):
        f = getattr(m, "__file__", None)
        if f:
            try:
                st = os.stat(f)
            except OSError:
                continue
            out[f] = (st.st_mtime_ns, st.st_size)
    return out


def _stale(files: dict[str, tuple[int, int]]) -> str | None:
    """The first module file changed on disk since the runner loaded it (an upgrade, an edit)."""
    for f, sig in files.items():
        try:
            st = os.stat(f)
        except OSError:
            return f
        if (st.st_mtime_ns, st.st_size) != sig:
            return f
    return None


def _log(msg: str) -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S ") + msg, flush=True)


def serve(key: str) -> int:
    """The runner's main loop (``python -m newsmill.cli.warm_runner KEY``, started by ``warm.spawn``)."""
    import threading

    paths = _paths(key)
    lock_fh = open(paths["lock"], "a+b")
    try:
        fcntl.flock(lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        _log("another runner holds this key; exiting")
        return 0
    if env_key() != key:
        _log("started with an environment of another key; exiting")
        return 1
    t0 = time.monotonic()
    _preload()
    # A fork copies only the forking thread. No Python thread may run here; the native threads the imports
    # start (OpenBLAS's pool, pyarrow's jemalloc background thread) stop or lock around a fork in their own
    # pthread_atfork handlers — the extraction forkserver forks its workers the same way in a cold run.
    if threading.active_count() != 1:
        _log(f"threads running after the imports ({threading.enumerate()}): not safe to fork; exiting")
        return 1
    try:  # a run is watched through its pidfd (Linux >= 5.3): without one, serve nothing
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError) as exc:
        _log(f"no pidfd_open here ({exc}): not serving; commands run in their own process")
        return 1
    import gc

    gc.collect()
    gc.freeze()  # what the imports built is read-only from here: no run's collector walks it (or copies its pages)
    files = _module_files()
    idle_s = warm.DEFAULT_IDLE_S
    try:
        idle_s = float(os.environ.get(warm.IDLE_ENV, warm.DEFAULT_IDLE_S))
    except ValueError:
        pass
    env0 = {k: v for k, v in os.environ.items() if k not in VOLATILE}

    paths["sock"].unlink(missing_ok=True)  # a dead runner's (we hold the lock)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(str(paths["sock"]))
    finally:
        os.umask(old_umask)
    listener.listen(16)
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno())
    stopping = False

    def on_term(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    state = {"pid": os.getpid(), "key": key, "started_at": time.time(), "exe": sys.executable, "runs": 0,
             "log": str(paths["log"]), "warm_up_s": round(time.monotonic() - t0, 2)}

    def write_state():
        tmp = paths["json"].with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, paths["json"])

    write_state()
    _log(f"ready in {state['warm_up_s']} s (pid {os.getpid()}, key {key})")
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, ("accept", None))
    sel.register(wake_r, selectors.EVENT_READ, ("wake", None))
    runs: dict[int, dict] = {}  # pid -> {"conn", "pidfd", "t0", "argv"}
    last_activity = time.monotonic()
    own_fds = lambda: [listener.fileno(), wake_r.fileno(), wake_w.fileno(), lock_fh.fileno(), sel.fileno(),  # noqa: E731
                       *(r["conn"].fileno() for r in runs.values()), *(r["pidfd"] for r in runs.values())]

    while True:
        if stopping and listener is not None:
            sel.unregister(listener)
            listener.close()
            listener = None
            for name in ("sock", "json"):
                paths[name].unlink(missing_ok=True)
            lock_fh.close()  # a new runner may start now (the runs still running report to this one)
            _log("stopping: no new runs; waiting for %d running" % len(runs))
        if stopping and not runs:
            break
        timeout = None if runs or stopping else max(0.0, idle_s - (time.monotonic() - last_activity))
        if timeout == 0.0:
            _log(f"idle for {idle_s:.0f} s; exiting")
            stopping = True
            continue
        for skey, _ in sel.select(timeout):
            kind, pid = skey.data
            if kind == "wake":
                try:
                    while wake_r.recv(512):
                        pass
                except BlockingIOError:
                    pass
            elif kind == "accept":
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                last_activity = time.monotonic()
                child = _answer(conn, key, env0, files, own_fds, state)
                if child is None:
                    conn.close()
                    if state.get("stale"):
                        stopping = True
                    continue
                child_pid, pidfd = child
                runs[child_pid] = {"conn": conn, "pidfd": pidfd, "t0": time.monotonic()}
                sel.register(pidfd, selectors.EVENT_READ, ("exit", child_pid))
                sel.register(conn, selectors.EVENT_READ, ("client", child_pid))
                state["runs"] += 1
                write_state()
            elif kind == "client":  # a client says nothing after its request: this is its end (EOF)
                r = runs.get(pid)
                if r is None:
                    continue
                try:
                    data = r["conn"].recv(64)
                except OSError:
                    data = b""
                if not data:  # the command was killed outright: so is its run (and all the run started)
                    _log(f"run {pid}: its command went away; killing the run")
                    sel.unregister(r["conn"])
                    for target in (lambda s: os.killpg(pid, s), lambda s: os.kill(pid, s)):
                        try:
                            target(signal.SIGKILL)
                            break
                        except OSError:
                            continue
            elif kind == "exit":
                r = runs.pop(pid)
                sel.unregister(r["pidfd"])
                os.close(r["pidfd"])
                signum = None
                try:
                    _, status = os.waitpid(pid, 0)
                    code = os.waitstatus_to_exitcode(status)
                except ChildProcessError:
                    code = 1
                if code < 0:
                    signum, code = -code, 128 - code
                try:
                    sel.unregister(r["conn"])
                except (KeyError, ValueError):
                    pass
                try:
                    _send_json(r["conn"], {"exit": code, "signal": signum})
                except OSError:
                    pass
                r["conn"].close()
                last_activity = time.monotonic()
                _log(f"run {pid}: exit {code} in {time.monotonic() - r['t0']:.1f} s")
    _log("stopped")
    sys.stderr.flush()
    os._exit(0)  # nothing to tear down: no half a second of module teardown with the lock still held


def _answer(conn: socket.socket, key: str, env0: dict, files: dict, own_fds, state: dict):
    """Read one request; fork its run (``(pid, pidfd)``) or answer and return None."""
    conn.settimeout(10)
    fds: list[int] = []
    try:
        req, fds = _recv_json(conn, nfds=3)
        if req.get("ping"):
            changed = _stale(files)
            if changed:
                _log(f"code changed on disk since the runner started ({changed}): retiring")
                state["stale"] = True
            _send_json(conn, {"pong": True, "stale": bool(changed)})
            return None
        reason = None
        env = req.get("env")
        if req.get("v") != PROTOCOL:
            reason = "another protocol version"
        elif req.get("exe") != sys.executable:
            reason = "another Python"
        elif len(fds) != 3 or not isinstance(env, dict) or not isinstance(req.get("argv"), list):
            reason = "malformed request"
        elif {k: v for k, v in env.items() if k not in VOLATILE} != env0:
            reason = "another environment"
        elif _peer_uid(conn) not in (None, os.getuid()):
            reason = "another user"
        elif (why := _cannot_apply(req.get("process"))) is not None:
            reason = why
        else:
            changed = _stale(files)
            if changed:
                reason = f"code changed on disk since the runner started ({changed})"
                state["stale"] = True
        if reason:
            _log(f"declined a command: {reason}")
            _send_json(conn, {"refused": reason})
            return None
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child becomes the command and never returns
            _child(req, fds, [*own_fds(), conn.fileno()])
        try:
            pidfd = os.pidfd_open(pid)
        except BaseException:  # the client will run it itself: this copy must not run too
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        conn.settimeout(None)
        try:
            _send_json(conn, {"pid": pid})
        except OSError:  # the client is already gone
            os.kill(pid, signal.SIGKILL)
        _log(f"run {pid}: newsmill {' '.join(req['argv'])} (cwd {req['cwd']})")
        return pid, pidfd
    except (OSError, EOFError, ValueError) as exc:
        _log(f"bad request: {exc}")
        return None
    finally:
        for fd in fds:
            os.close(fd)


def _peer_uid(conn: socket.socket) -> int | None:
    """The connecting process's user (``SO_PEERCRED``), None where the platform does not say."""
    try:
        import struct

        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[1]
    except (AttributeError, OSError):
        return None


def _cannot_apply(process) -> str | None:
    """Why a run could not take the command's process state (niceness, resource limits), or None."""
    import resource

    if not isinstance(process, dict):
        return "malformed request"
    nice = process.get("nice")
    if isinstance(nice, int) and nice < os.getpriority(os.PRIO_PROCESS, 0):
        return "a higher priority than the runner's"
    for name, (soft, hard) in (process.get("rlimits") or {}).items():
        res = getattr(resource, name, None)
        if res is None:
            continue
        _, own_hard = resource.getrlimit(res)
        if own_hard != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > own_hard):
            return f"a higher {name} limit than the runner's"
    return None


def _apply(process: dict) -> None:  # pragma: no cover - in the child
    """The command's umask, niceness and resource limits (checked by ``_cannot_apply``)."""
    import resource

    os.umask(int(process.get("umask", 0o022)))
    nice = process.get("nice")
    if isinstance(nice, int) and nice != os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    for name, (soft, hard) in (process.get("rlimits") or {}).items():
        res = getattr(resource, name, None)
        if res is not None and tuple(resource.getrlimit(res)) != (soft, hard):
            resource.setrlimit(res, (soft, hard))


def _child(req: dict, fds: list[int], parent_fds: list[int]) -> None:  # pragma: no cover - in the child
    """Become the command: its stdio, directory, environment and arguments; run it; exit with its code."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setpgid(0, 0)  # its own group: the run and every process it starts
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
        for fd in {*fds, *parent_fds}:
            if fd > 2:
                try:
                    os.close(fd)
                except OSError:
                    pass
        sys.stdout.reconfigure(line_buffering=os.isatty(1))
        warm._in_runner = True  # never hand the command over again
        _apply(req["process"])
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        time.tzset()
        sys.argv = [req.get("argv0") or "newsmill", *req["argv"]]
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()
        _own_forkserver()
        from newsmill.cli import main

        try:
            rc = main(list(req["argv"]))
            code = rc if isinstance(rc, int) and 0 <= rc <= 255 else (0 if rc is None else 1)
        except SystemExit as exc:  # argparse, sys.exit() in a command
            c = exc.code
            code = c if isinstance(c, int) else (0 if c is None else 1)
            if c is not None and not isinstance(c, int):
                print(c, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - the command's own traceback, as a cold command shows it
            import traceback

            traceback.print_exc()
            code = 1
        _finish()  # as an interpreter's exit: after a traceback too
    except BaseException:  # noqa: BLE001 - setting the run up failed
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os._exit(code)


def _finish() -> None:  # pragma: no cover - in the child
    """What an interpreter's exit runs before tearing its modules down (newsmill.cli._exit_now skips that
    teardown too): wait for non-daemon threads and their exit hooks, then every atexit handler —
    Prefect's log and event drains, the writer lock's release, multiprocessing's clean-up."""
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    # the run's forkserver exits when its alive pipe closes: wait for it, so the run ends with all it started
    # (and its CPU, its workers' included, is the run's: the runner's children time, as a cold command's)
    from multiprocessing import forkserver

    fs = forkserver._forkserver
    pid, fd = fs._forkserver_pid, fs._forkserver_alive_fd
    if pid is not None and fd is not None:
        os.close(fd)
        fs._forkserver_alive_fd = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.01)


def _own_forkserver() -> None:  # pragma: no cover - in the child
    """This run's extraction forkserver: a fork of this (still single-threaded) process, which already
    holds the preloaded extraction stack, running multiprocessing's forkserver loop. multiprocessing then
    uses it as if it had started it (``ensure_running`` finds it alive), and it exits with the run (its
    ``alive`` pipe), taking the run's workers along (``flows.runtime._worker_init``)."""
    from multiprocessing import connection, forkserver

    fs = forkserver._forkserver
    if fs._forkserver_pid is not None:
        return
    listener = socket.socket(socket.AF_UNIX)
    address = connection.arbitrary_address("AF_UNIX")
    listener.bind(address)
    os.chmod(address, 0o600)
    listener.listen()
    alive_r, alive_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(alive_w)
            forkserver.main(listener.fileno(), alive_r, [])
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(alive_r)
    listener.close()
    fs._forkserver_address = address
    fs._forkserver_alive_fd = alive_w
    fs._forkserver_pid = pid
    fs._preload_modules = ["newsmill.tasks.preload"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m newsmill.cli.warm_runner KEY (started by newsmill server start)", file=sys.stderr)
        return 2
    try:
        return serve(argv[0])
    except Exception as exc:  # noqa: BLE001 - the log says why; commands then run cold
        import traceback

        traceback.print_exc()
        _log(f"failed: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
