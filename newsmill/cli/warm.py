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

This module is the client side and the lifecycle (no Prefect import: it runs in every flow command before
anything heavy is imported); the runner's process is ``newsmill.cli.warm_runner``.

Each run is a fork: nothing of one run lives on into the next. The child starts its own extraction
forkserver by forking once more (the copy already holds the preloaded stack), so a run's extraction
workers die with the run as before (``flows.runtime._worker_init``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
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
                      "TERM_PROGRAM_VERSION", "TMUX", "TMUX_PANE", "WINDOWID", "SSH_TTY", "SSH_CLIENT",
                      "SSH_CONNECTION", "SSH_AUTH_SOCK", "DISPLAY", "XAUTHORITY", "NEWSMILL_WAREHOUSE", "PS1", "PS2",
                      "PROMPT_COMMAND", "HISTFILE", "MAIL", "STY", "WINDOW", "GNOME_TERMINAL_SCREEN",
                      "GNOME_TERMINAL_SERVICE", "KITTY_WINDOW_ID", "KONSOLE_DBUS_WINDOW", "KONSOLE_DBUS_SESSION",
                      "VTE_VERSION", "ALACRITTY_WINDOW_ID", "WEZTERM_PANE", "XDG_SESSION_ID", "INVOCATION_ID",
                      "JOURNAL_STREAM", "VSCODE_GIT_IPC_HANDLE", "VSCODE_GIT_ASKPASS_NODE", "VSCODE_GIT_ASKPASS_MAIN",
                      "VSCODE_GIT_ASKPASS_EXTRA_ARGS", "VSCODE_INJECTION", SWITCH_ENV, IDLE_ENV})
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


def _reap(pid: int) -> None:
    from newsmill.flows.local_server import _reap as reap  # collect our own child; never raises

    reap(pid)


def runner_dir() -> Path:
    from newsmill.flows.local_server import newsmill_home

    return newsmill_home() / "warm"


def env_key(env: dict | None = None) -> str:
    """The runner key of an environment (and of this Python: another venv has other code)."""
    env = _start_env if env is None and _start_env is not None else os.environ if env is None else env
    items = sorted((k, v) for k, v in env.items() if k not in VOLATILE)
    # and of the interpreter's flags (-X dev, -W error, -O: a runner is started without any)
    flags = f"{tuple(sys.flags)}{sys.warnoptions}{sorted(sys._xoptions.items())}"
    h = hashlib.sha256(f"{PROTOCOL}\0{os.path.realpath(sys.executable)}\0{sys.prefix}\0{flags}".encode())
    for k, v in items:
        h.update(f"\0{k}={v}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def _paths(key: str) -> dict[str, Path]:
    d = runner_dir()
    out = {s: d / f"{key}.{s}" for s in ("sock", "json", "lock", "log")}
    if len(os.fsencode(out["sock"])) > 100:  # a Unix socket path holds ~107 bytes: a deep NEWSMILL_HOME gets
        # its socket in a private directory of this user's under the temp directory, named by the long path
        import tempfile

        name = hashlib.sha256(os.fsencode(out["sock"])).hexdigest()[:24]
        out["sock"] = Path(tempfile.gettempdir()) / f"newsmill-warm-{os.getuid()}" / f"{name}.sock"
    return out


def _private_dir(d: Path) -> bool:
    """``d`` exists (created 0700 if not), is this user's and only this user's: False when it is someone
    else's (they could plant a socket there or read the logs)."""
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = d.stat()
    if st.st_uid != os.getuid():
        return False
    if st.st_mode & 0o077:
        os.chmod(d, 0o700)
    return True


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


_PROJECT_PREFECT_FILES = (".env", "prefect.toml")


def _project_settings_here(cwd: str) -> bool:
    """The working directory holds settings Prefect reads at import from the directory it starts in (a
    ``.env``, a ``prefect.toml``, a ``pyproject.toml`` with ``[tool.prefect]``): the runner, started
    elsewhere, did not read them, so such a command runs in its own process."""
    for name in _PROJECT_PREFECT_FILES:
        if os.path.exists(os.path.join(cwd, name)):
            return True
    try:
        with open(os.path.join(cwd, "pyproject.toml"), "rb") as fh:
            return b"[tool.prefect" in fh.read(1 << 20)
    except OSError:
        return False


def _process_state() -> dict:
    """What a process inherits besides its environment and directory: umask, niceness, resource limits (the
    run applies the command's; the runner declines a command whose limits it cannot give)."""
    import resource

    mask = os.umask(0o022)
    os.umask(mask)
    limits = {}
    for name in ("RLIMIT_NOFILE", "RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NPROC",
                 "RLIMIT_CORE", "RLIMIT_STACK"):
        if hasattr(resource, name):
            try:
                limits[name] = list(resource.getrlimit(getattr(resource, name)))
            except (OSError, ValueError):
                pass
    return {"umask": mask, "nice": os.getpriority(os.PRIO_PROCESS, 0), "rlimits": limits}


def hand_off(argv: list[str], command: str | None) -> int | None:
    """Run this command in the warm runner of this environment: its exit code, or None when there is no
    runner for it or it declined (the caller then runs the command itself). Once the runner has started
    the command it owns it: Ctrl-C, SIGTERM, SIGHUP, SIGQUIT and SIGWINCH are forwarded to the run's process
    group, Ctrl-Z stops it with the command and ``fg`` resumes both, and a client killed outright (SIGKILL)
    takes the run with it, as a cold command would."""
    if _in_runner or command not in COMMANDS or not enabled():
        return None
    try:
        path = _paths(env_key())["sock"]
        if not path.exists() or path.stat().st_uid != os.getuid():
            return None
        for fd in (0, 1, 2):  # a closed one would be taken by the socket below and handed over as stdio
            os.fstat(fd)
        cwd = os.getcwd()
        if _project_settings_here(cwd):
            return None
        state = _process_state()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except (OSError, Exception):  # noqa: BLE001 - no runner reachable: run here
        return None
    with sock:
        try:
            sock.settimeout(30)
            sock.connect(str(path))
            _send_json(sock, {"v": PROTOCOL, "argv": list(argv), "argv0": sys.argv[0] if sys.argv else "newsmill",
                              "cwd": cwd, "env": dict(_start_env if _start_env is not None else os.environ),
                              "exe": sys.executable, "process": state}, [0, 1, 2])
            reply, _ = _recv_json(sock)
        except (OSError, EOFError, ValueError):
            return None
        except KeyboardInterrupt:  # Ctrl-C before the run started: closing the connection ends it if it did
            print("newsmill: error: interrupted", file=sys.stderr)
            return 130
        pid = reply.get("pid")
        if not isinstance(pid, int):
            return None  # refused (stale code, another Python, stopping): run here

        def to_run(signum):
            try:
                os.killpg(pid, signum)  # the run, its forkserver and workers: a terminal signals the whole group
            except OSError:
                try:
                    os.kill(pid, signum)
                except OSError:
                    pass

        def forward(signum, _frame):
            to_run(signum)

        def stop(_signum, _frame):  # Ctrl-Z: stop the run, then this command (the shell's job)
            to_run(signal.SIGSTOP)
            os.kill(os.getpid(), signal.SIGSTOP)

        def cont(_signum, _frame):  # fg / bg
            to_run(signal.SIGCONT)

        for sig, handler in ((signal.SIGINT, forward), (signal.SIGTERM, forward), (signal.SIGHUP, forward),
                             (signal.SIGQUIT, forward), (signal.SIGWINCH, forward), (signal.SIGTSTP, stop),
                             (signal.SIGCONT, cont)):
            try:
                signal.signal(sig, handler)
            except (OSError, ValueError):
                pass
        sock.settimeout(None)
        done: dict = {}
        while True:
            try:
                done, _ = _recv_json(sock)
            except InterruptedError:
                continue
            except (OSError, EOFError, ValueError):
                done = {}
            break
        code = done.get("exit")
        if not isinstance(code, int):  # the runner went away mid-run (stopped or killed): wait for the run
            while _pid_alive(pid):
                time.sleep(0.2)
            print("newsmill: error: the warm runner stopped before reporting this run's exit status "
                  "(see its log in " f"{path.parent})", file=sys.stderr)
            return 1
        sig = done.get("signal")
        if isinstance(sig, int) and sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                                            signal.SIGKILL):
            # the run died of a signal: so does the command, as a cold one would (a shell sees the same status)
            try:
                sys.stdout.flush()
                sys.stderr.flush()
                signal.signal(sig, signal.SIG_DFL)
                os.kill(os.getpid(), sig)
            except (OSError, ValueError):
                pass
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
                _paths(p.stem)[s].unlink(missing_ok=True)
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


def _ping(key: str) -> str | None:
    """``"ready"``: the runner of ``key`` answers and its code is current; ``"stale"``: it answers but its
    code changed on disk (it retires now); None: no runner answers."""
    path = _paths(key)["sock"]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(path))
            _send_json(s, {"v": PROTOCOL, "ping": True})
            reply = _recv_json(s)[0]
    except (OSError, EOFError, ValueError):
        return None
    if reply.get("pong") is not True:
        return None
    return "stale" if reply.get("stale") else "ready"


def spawn() -> int | None:
    """Start the runner of this environment in the background (its own session, no terminal) unless it
    runs; returns its pid, None when it already ran or warm runners are off. Does not wait for it."""
    if not enabled():
        return None
    key = env_key()
    paths = _paths(key)
    if not all(_private_dir(p.parent) for p in (paths["lock"], paths["sock"])):
        return None
    if _holds_lock(paths["lock"]):
        return None
    log = paths["log"]
    if log.exists():
        os.replace(log, log.with_suffix(".log.1"))
    env = dict(_start_env if _start_env is not None else os.environ)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "newsmill.cli.warm_runner", key], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, cwd="/", start_new_session=True,
                                close_fds=True, env=env)
    return proc.pid


def start(timeout: float = READY_TIMEOUT_S) -> tuple[RunnerInfo | None, bool]:
    """The runner of this environment, started if needed and waited for: ``(info, started)``; info None
    when it could not start (its log says why) or warm runners are off. A runner whose code changed on
    disk retires and a new one starts."""
    if not enabled():
        return None, False
    key = env_key()
    lock = _paths(key)["lock"]
    pid = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ping(key) == "ready":
            return _info(key), pid is not None
        if pid is None:
            if not _holds_lock(lock):  # none runs (a stale one has retired): start one
                pid = spawn()
                if pid is None and not _holds_lock(lock):  # cannot (a directory not ours)
                    return None, False
        elif not _pid_alive(pid):  # it failed (its log says why)
            _reap(pid)
            return None, True
        time.sleep(0.2)
    return None, pid is not None


def _info(key: str) -> RunnerInfo | None:
    try:
        return RunnerInfo(json.loads(_paths(key)["json"].read_text()))
    except (OSError, ValueError):
        return None


def stop_all(timeout: float = 10.0) -> list[RunnerInfo]:
    """Stop every runner under this ``NEWSMILL_HOME``: it takes no new command (runs already started finish
    and report their exit to their commands); returns those stopped."""
    stopped = []
    for info in running():
        pid = info.get("pid")
        if not isinstance(pid, int):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        # it stops taking commands and releases its lock at once; runs it started finish on their own
        lock = runner_dir() / f"{info.get('key')}.lock"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _holds_lock(lock) and _pid_alive(pid):
            time.sleep(0.05)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and _pid_alive(pid):  # with no run left it exits right after
            _reap(pid)
            time.sleep(0.05)
        stopped.append(info)
    return stopped
