"""The local Prefect server newsmill manages: started once in the background, reused by later commands.

Without it every command that runs a flow (``ingest``, ``reprocess``, ``import-warc``, ``demo``) pays
Prefect's temporary server (~12 s on a 2-core machine) and its run is gone when the command exits. With
it, the first such command starts ``prefect server start`` detached (its own session: it survives the
command and Ctrl-C in the terminal), later commands find it and point their run at it, and the UI
(``newsmill ui``) shows every run, hand-typed ones included.

Where it lives (``newsmill server status`` prints it)::

    $NEWSMILL_HOME/prefect/          (default ${XDG_DATA_HOME:-~/.local/share}/newsmill/prefect)
        prefect.db                   the server's SQLite database (PREFECT_HOME is this directory)
        server.log                   its output (the previous start's in server.log.1)
        server.json                  pid, host, port, API URL and start time of the running server
        server.lock                  held while a command checks, starts or stops the server

It binds 127.0.0.1 on port ``$NEWSMILL_SERVER_PORT`` (default 4280, not Prefect's 4200, so a Prefect
server of your own keeps its port). An explicit ``PREFECT_API_URL`` (environment or Prefect profile)
always wins; ``NEWSMILL_LOCAL_SERVER=0`` falls back to Prefect's temporary server.

No Prefect import here: ``newsmill server status|stop`` stay light.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import signal
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from newsmill.flows.server import port_free, server_env, start_server
from newsmill.tasks.errors import NewsmillError

__all__ = ["DEFAULT_PORT", "ServerInfo", "enabled", "ensure_running", "newsmill_home", "server_dir",
           "status", "stop"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4280
HOME_ENV = "NEWSMILL_HOME"
PORT_ENV = "NEWSMILL_SERVER_PORT"
SWITCH_ENV = "NEWSMILL_LOCAL_SERVER"
START_TIMEOUT_S = 180.0  # a first start creates the database (all migrations): ~60 s on a loaded 2-core box


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    host: str
    port: int
    api_url: str
    started_at: float  # epoch seconds
    home: str  # PREFECT_HOME of the server (database, log)

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    @property
    def uptime_s(self) -> float:
        return max(0.0, time.time() - self.started_at)

    @property
    def log_path(self) -> Path:
        return Path(self.home) / "server.log"


def enabled() -> bool:
    """False when ``NEWSMILL_LOCAL_SERVER`` is 0/false/no/off: commands use Prefect's temporary server."""
    return os.environ.get(SWITCH_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def newsmill_home() -> Path:
    """``$NEWSMILL_HOME``, else ``${XDG_DATA_HOME:-~/.local/share}/newsmill``."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share") / "newsmill"


def server_dir() -> Path:
    return newsmill_home() / "prefect"


def default_port() -> int:
    raw = os.environ.get(PORT_ENV, "")
    if not raw:
        return DEFAULT_PORT
    try:
        port = int(raw)
        if 0 < port < 65536:
            return port
    except ValueError:
        pass
    raise NewsmillError(f"{PORT_ENV}: expected a port number, got {raw!r}")


# ---------------------------------------------------------------------------------------------- state


def _state_path() -> Path:
    return server_dir() / "server.json"


@contextmanager
def _locked():
    """Serialise check/start/stop between concurrent commands (two shells starting at once get one
    server)."""
    d = server_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        fh = open(d / "server.lock", "a+b")
    except OSError as exc:
        raise NewsmillError(f"cannot use {d} for the local Prefect server ({exc.strerror or exc}); "
                            f"set {HOME_ENV} to a writable directory") from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_state() -> ServerInfo | None:
    try:
        data = json.loads(_state_path().read_text())
        return ServerInfo(**{k: data[k] for k in ServerInfo.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_state(info: ServerInfo) -> None:
    path = _state_path()
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(info), indent=1))
    os.replace(tmp, path)


def _clear_state() -> None:
    _state_path().unlink(missing_ok=True)


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own child (a server started in this process): a killed child stays a
    zombie, which ``kill(pid, 0)`` still finds, until it is waited for."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def _alive(pid: int) -> bool:
    """``pid`` runs and is a Prefect server (``/proc`` where there is one: a pid reused by another
    program after a crash does not count)."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: not the server this user started
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            return False
        return b"prefect" in cmdline and b"server" in cmdline
    return True


def _healthy(api_url: str, timeout: float = 3.0) -> bool:
    """``GET <api>/health`` answers 200. The local server speaks plain HTTP on this machine: a stdlib
    request, without the TLS context an ``httpx`` client loads first (~45 ms of CPU in every command)."""
    u = urlsplit(api_url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=timeout)
    try:
        conn.request("GET", u.path.rstrip("/") + "/health")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _running() -> ServerInfo | None:
    """The recorded server if its process runs and answers; otherwise None (a stale record — a killed or
    crashed server — is removed; a server that runs but does not answer within 30 s, hung, is stopped)."""
    info = _read_state()
    if info is None:
        return None
    if not _alive(info.pid):
        _clear_state()
        return None
    deadline = time.monotonic() + 30  # a busy machine can slow an answer down, not stop it
    while not _healthy(info.api_url):
        if time.monotonic() > deadline or not _alive(info.pid):
            _kill(info.pid)
            _clear_state()
            return None
        time.sleep(0.5)
    return info


# ---------------------------------------------------------------------------------------------- commands


def status() -> ServerInfo | None:
    """The running local server, or None."""
    if not _state_path().exists():
        return None
    with _locked():
        return _running()


def ensure_running(port: int | None = None, host: str | None = None, timeout: float = START_TIMEOUT_S,
                   on_start: Callable[[str, Path], None] | None = None) -> tuple[ServerInfo, bool]:
    """The local server, started if it is not running: ``(info, started_by_this_call)``. Idempotent.

    ``port``/``host`` apply to a start; asking for another port or host than the running server's is an
    error (stop it first). ``on_start(ui_url, home)`` is called before a start (which takes seconds)."""
    with _locked():
        info = _running()
        if info is not None:
            if (port is not None and port != info.port) or (host is not None and host != info.host):
                raise NewsmillError(f"the local Prefect server already runs on {info.host}:{info.port} "
                                    f"(pid {info.pid}); stop it first: newsmill server stop")
            return info, False
        host = host or DEFAULT_HOST
        port = port or default_port()
        if not port_free(host, port):
            raise NewsmillError(f"port {port} on {host} is in use by another program: choose another with "
                                f"{PORT_ENV}=PORT (or newsmill server start --port PORT), or point "
                                f"PREFECT_API_URL at a Prefect server")
        d = server_dir()
        log = d / "server.log"
        if log.exists():
            os.replace(log, d / "server.log.1")
        env = server_env(host, port, home=d)
        if on_start is not None:
            on_start(env["PREFECT_API_URL"].removesuffix("/api"), d)
        env.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")  # no access log line per API call
        proc, api_url = start_server(host, port, timeout=timeout, log_path=log, env=env)
        info = ServerInfo(pid=proc.pid, host=host, port=port, api_url=api_url, started_at=time.time(),
                          home=str(d))
        _write_state(info)
        return info, True


def _kill(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM the server's process group (it runs in its own session: the group is the server and
    every child it started), SIGKILL after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            try:
                os.kill(pid, sig)
            except OSError:
                return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _exited(pid):
                return
            time.sleep(0.1)


def _exited(pid: int) -> bool:
    """``pid`` is gone, a zombie, or another program now (a reused pid). A process in the middle of its exit
    has an empty ``/proc/<pid>/cmdline`` but is not gone yet: ``_alive`` already says no, this waits."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return False
    try:
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return True
        cmdline = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return True  # vanished while being read
    return bool(cmdline) and not (b"prefect" in cmdline and b"server" in cmdline)


def stop(timeout: float = 20.0) -> ServerInfo | None:
    """Stop the local server (and its children); returns what was stopped, or None when none ran."""
    with _locked():
        info = _read_state()
        if info is None:
            return None
        running = _alive(info.pid)
        if running:
            _kill(info.pid, timeout)
        _clear_state()
        return info if running else None
