"""The warm runner: a background process that has already imported Prefect, the flows and the extraction
stack, and forks a ready copy of itself for each flow command typed in a shell.

A flow command (``ingest``, ``import-warc``, ``reprocess``, ``demo``) started from a cold shell spends its
first seconds on start-up, not on pages: ~2.6 s of CPU importing Prefect and the flows, and ~4.8 s in the
extraction forkserver loading the extraction stack, the language model and dateparser's every-locale
regexes (profiled: ``bench/README.md``). The warm runner pays that once. For each command it forks a child
(a copy-on-write copy of its memory, ~20 ms), and the child becomes the command: it takes over the
terminal's stdin/stdout/stderr (passed over a Unix socket), the working directory, the environment and the
arguments, then runs ``newsmill.cli.main`` exactly as the cold command would — the same flow run, reported
to the same Prefect API, the same output and exit code. The command typed in the shell (the client) only
waits for the child's exit code, forwards signals to it (Ctrl-C is the child's Ctrl-C), and exits with it.

It is a convenience, never a requirement: any doubt and the command runs in its own process as before.
The client falls back when there is no runner for its environment, when the runner refuses (its code
changed on disk since it started, or the client runs another Python), or when it cannot reach it.

Keyed by environment: a runner serves only commands whose environment equals the one it was started with
(every variable but a few a shell changes by itself, :data:`VOLATILE`), because Prefect and the libraries
read theirs at import. Several can run under one ``NEWSMILL_HOME`` (a shell with ``PREFECT_API_URL`` and
one without). Each lives in ``$NEWSMILL_HOME/warm/``::

    <key>.sock   the socket commands connect to (mode 0600: only this user)
    <key>.json   pid, start time, Python, runs served
    <key>.lock   held by the runner while it lives (one runner per key)
    <key>.log    its output

Started by ``newsmill server start`` (``--warm-only``: without the local Prefect server, for a shell with
its own ``PREFECT_API_URL``), and in the background after a flow command that used the local server;
stopped by ``newsmill server stop``, or by itself after ``NEWSMILL_WARM_IDLE`` seconds without a command
(default 3600). ``NEWSMILL_WARM=0`` turns it off (nothing is started, nothing is handed over).

Each run is a fork: nothing of one run lives on into the next. The child starts its own extraction
forkserver by forking once more (the copy already holds the preloaded stack), so a run's extraction
workers die with the run as before (``flows.runtime._worker_init``). No Prefect import at module level:
the client side runs in every flow command before anything heavy is imported.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["COMMANDS", "RunnerInfo", "enabled", "hand_off", "running", "spawn", "start", "stop_all"]

PROTOCOL = 1
SWITCH_ENV = "NEWSMILL_WARM"
IDLE_ENV = "NEWSMILL_WARM_IDLE"
DEFAULT_IDLE_S = 3600.0
COMMANDS = frozenset({"ingest", "import-warc", "reprocess", "demo"})
# Variables a shell sets or changes by itself, or that newsmill reads only while a command runs: a command
# may differ from the runner in these and still be handed over (the child takes the command's values).
VOLATILE = frozenset({"PWD", "OLDPWD", "SHLVL", "_", "COLUMNS", "LINES", "TERM", "COLORTERM", "TERM_PROGRAM",
                      "TERM_PROGRAM_VERSION", "TMUX_PANE", "WINDOWID", "SSH_TTY", "SSH_CLIENT", "SSH_CONNECTION",
                      "SSH_AUTH_SOCK", "DISPLAY", "XAUTHORITY", "NEWSMILL_WAREHOUSE", "PS1", "PS2", "PROMPT_COMMAND",
                      "HISTFILE", "MAIL", "OLDPWD", "STY", "WINDOW", IDLE_ENV})
READY_TIMEOUT_S = 120.0  # the runner's imports and warm-up: ~8 s of CPU, more on a loaded machine
MAX_REQUEST = 4 << 20

_in_runner = False  # True in a child: main() runs the command itself
_start_env: dict | None = None  # the command's environment before it changed any (see remember_env)


def remember_env() -> None:
    """Note the environment as the command got it (``newsmill.cli.main`` calls this first): a cold run then
    adds ``PREFECT_API_URL`` of the local server, and the runner it leaves behind must be keyed by the
    environment the next command will come with."""
    global _start_env
    _start_env = dict(os.environ)


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def runner_dir() -> Path:
    from newsmill.flows.local_server import newsmill_home

    return newsmill_home() / "warm"


def env_key(env: dict | None = None) -> str:
    """The runner key of an environment (and of this Python: another venv has other code)."""
    env = _start_env if env is None and _start_env is not None else os.environ if env is None else env
    items = sorted((k, v) for k, v in env.items() if k not in VOLATILE)
    h = hashlib.sha256(f"{PROTOCOL}\0{os.path.realpath(sys.executable)}\0{sys.prefix}".encode())
    for k, v in items:
        h.update(f"\0{k}={v}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def _paths(key: str) -> dict[str, Path]:
    d = runner_dir()
    return {s: d / f"{key}.{s}" for s in ("sock", "json", "lock", "log")}


# ---------------------------------------------------------------------------------------------- client


def _send_json(sock: socket.socket, obj: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode()
    data = struct.pack("!I", len(data)) + data
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.sendall(data)


def _recv_exact(sock: socket.socket, n: int, buf: bytes = b"") -> bytes:
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def _recv_json(sock: socket.socket, nfds: int = 0) -> tuple[dict, list[int]]:
    if nfds:
        data, fds, _flags, _addr = socket.recv_fds(sock, 65536, nfds)
        if not data:
            for fd in fds:
                os.close(fd)
            raise EOFError("connection closed")
    else:
        data, fds = b"", []
    try:
        head = _recv_exact(sock, 4, data[:4])
        (n,) = struct.unpack("!I", head)
        if n > MAX_REQUEST:
            raise ValueError(f"message of {n} bytes")
        body = _recv_exact(sock, n, data[4:])
        return json.loads(body), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def hand_off(argv: list[str], command: str | None) -> int | None:
    """Run this command in the warm runner of this environment: its exit code, or None when there is no
    runner for it or it declined (the caller then runs the command itself). Once the runner has started
    the command it owns it: Ctrl-C, SIGTERM, SIGHUP and SIGQUIT are forwarded to it, and a client killed
    outright (SIGKILL) takes the run with it, as a cold command would."""
    if _in_runner or command not in COMMANDS or not enabled():
        return None
    try:
        path = _paths(env_key())["sock"]
        if not path.exists() or len(str(path)) > 100:
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except (OSError, Exception):  # noqa: BLE001 - no runner reachable: run here
        return None
    with sock:
        try:
            sock.settimeout(30)
            sock.connect(str(path))
            _send_json(sock, {"v": PROTOCOL, "argv": list(argv), "argv0": sys.argv[0] if sys.argv else "newsmill",
                              "cwd": os.getcwd(), "env": dict(_start_env if _start_env is not None else os.environ),
                              "exe": sys.executable}, [0, 1, 2])
            reply, _ = _recv_json(sock)
        except (OSError, EOFError, ValueError):
            return None
        except KeyboardInterrupt:  # Ctrl-C before the run started: closing the connection ends it if it did
            print("newsmill: error: interrupted", file=sys.stderr)
            return 130
        pid = reply.get("pid")
        if not isinstance(pid, int):
            return None  # refused (stale code, another Python, stopping): run here

        def forward(signum, _frame):
            try:
                os.kill(pid, signum)
            except OSError:
                pass

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            try:
                signal.signal(sig, forward)
            except (OSError, ValueError):
                pass
        sock.settimeout(None)
        try:
            done, _ = _recv_json(sock)
            code = done.get("exit")
        except (OSError, EOFError, ValueError):
            code = None
        if not isinstance(code, int):  # the runner went away mid-run (stopped or killed): wait for the run
            while _pid_alive(pid):
                time.sleep(0.2)
            print("newsmill: error: the warm runner stopped before reporting this run's exit status "
                  "(see its log in " f"{path.parent})", file=sys.stderr)
            return 1
        return code


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


# ---------------------------------------------------------------------------------------------- lifecycle


class RunnerInfo(dict):
    """A runner's state file: ``pid``, ``key``, ``started_at``, ``exe``, ``runs``, ``log``."""


def running() -> list[RunnerInfo]:
    """The runners alive under this ``NEWSMILL_HOME`` (stale state files of dead ones are removed)."""
    d = runner_dir()
    out = []
    for p in sorted(d.glob("*.json")) if d.is_dir() else ():
        try:
            info = RunnerInfo(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
        if not _holds_lock(d / f"{p.stem}.lock"):
            for s in ("json", "sock"):
                (d / f"{p.stem}.{s}").unlink(missing_ok=True)
            continue
        out.append(info)
    return out


def _holds_lock(lock: Path) -> bool:
    """Someone (the runner) holds ``lock``."""
    try:
        fh = open(lock, "a+b")
    except OSError:
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def _ready(key: str) -> bool:
    path = _paths(key)["sock"]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(path))
            _send_json(s, {"v": PROTOCOL, "ping": True})
            return _recv_json(s)[0].get("pong") is True
    except (OSError, EOFError, ValueError):
        return False


def spawn() -> int | None:
    """Start the runner of this environment in the background (its own session, no terminal) unless it
    runs; returns its pid, None when it already ran or warm runners are off. Does not wait for it."""
    if not enabled():
        return None
    key = env_key()
    paths = _paths(key)
    if len(str(paths["sock"])) > 100:  # a Unix socket path is at most ~107 bytes
        return None
    paths["sock"].parent.mkdir(parents=True, exist_ok=True)
    if _holds_lock(paths["lock"]):
        return None
    log = paths["log"]
    if log.exists():
        os.replace(log, log.with_suffix(".log.1"))
    env = dict(_start_env if _start_env is not None else os.environ)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "newsmill.flows.warm", key], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, cwd="/", start_new_session=True,
                                close_fds=True, env=env)
    return proc.pid


def start(timeout: float = READY_TIMEOUT_S) -> tuple[RunnerInfo | None, bool]:
    """The runner of this environment, started if needed and waited for: ``(info, started)``; info None
    when it could not start (its log says why) or warm runners are off."""
    if not enabled():
        return None, False
    key = env_key()
    if _ready(key):
        return _info(key), False
    pid = spawn()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ready(key):
            return _info(key), True
        if pid is not None and not _pid_alive(pid):
            _reap(pid)
            return None, True
        time.sleep(0.2)
    return None, True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def _info(key: str) -> RunnerInfo | None:
    try:
        return RunnerInfo(json.loads(_paths(key)["json"].read_text()))
    except (OSError, ValueError):
        return None


def stop_all(timeout: float = 10.0) -> list[RunnerInfo]:
    """Stop every runner under this ``NEWSMILL_HOME`` (runs already started finish on their own); returns
    those stopped."""
    stopped = []
    for info in running():
        pid = info.get("pid")
        if not isinstance(pid, int):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + timeout
        lock = runner_dir() / f"{info.get('key')}.lock"
        while time.monotonic() < deadline and _holds_lock(lock):
            _reap(pid)
            time.sleep(0.05)
        stopped.append(info)
    return stopped


# ---------------------------------------------------------------------------------------------- runner


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
    """The runner's main loop (``python -m newsmill.flows.warm KEY``, started by :func:`spawn`)."""
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
    if threading.active_count() != 1:  # a fork copies only the forking thread: refuse rather than risk it
        _log(f"threads running after the imports ({threading.enumerate()}): not safe to fork; exiting")
        return 1
    files = _module_files()
    idle_s = DEFAULT_IDLE_S
    try:
        idle_s = float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S))
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
            paths["sock"].unlink(missing_ok=True)
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
                try:
                    _, status = os.waitpid(pid, 0)
                    code = os.waitstatus_to_exitcode(status)
                except ChildProcessError:
                    code = 1
                if code < 0:
                    code = 128 - code
                try:
                    sel.unregister(r["conn"])
                except (KeyError, ValueError):
                    pass
                try:
                    _send_json(r["conn"], {"exit": code})
                except OSError:
                    pass
                r["conn"].close()
                last_activity = time.monotonic()
                _log(f"run {pid}: exit {code} in {time.monotonic() - r['t0']:.1f} s")
    for s in ("sock", "json"):
        paths[s].unlink(missing_ok=True)
    _log("stopped")
    return 0


def _answer(conn: socket.socket, key: str, env0: dict, files: dict, own_fds, state: dict):
    """Read one request; fork its run (``(pid, pidfd)``) or answer and return None."""
    conn.settimeout(10)
    fds: list[int] = []
    try:
        req, fds = _recv_json(conn, nfds=3)
        if req.get("ping"):
            _send_json(conn, {"pong": True})
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
        pidfd = os.pidfd_open(pid)
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


def _child(req: dict, fds: list[int], parent_fds: list[int]) -> None:  # pragma: no cover - in the child
    """Become the command: its stdio, directory, environment and arguments; run it; exit with its code."""
    global _in_runner
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
        _in_runner = True
        if __name__ != "newsmill.flows.warm":  # never hand the command over again
            raise RuntimeError("the warm runner must run as the module newsmill.flows.warm")
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
        _finish()
    except BaseException:  # noqa: BLE001 - the command's own traceback, as a cold command shows it
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
        print("usage: python -m newsmill.flows.warm KEY (started by newsmill server start)", file=sys.stderr)
        return 2
    try:
        return serve(argv[0])
    except Exception as exc:  # noqa: BLE001 - the log says why; commands then run cold
        import traceback

        traceback.print_exc()
        _log(f"failed: {exc}")
        return 1


if __name__ == "__main__":  # run as the module newsmill.flows.warm, which newsmill.cli imports, not as __main__
    from newsmill.flows import warm as _module

    sys.exit(_module.main())
