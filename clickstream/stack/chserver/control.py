"""Start, wait for, inspect and stop the local ClickHouse server process.

For `clickstream stack`: the server runs detached from us, with its pid in a file, under
the stack's state dir:

    clickhouse/       the data directory (databases, tables, parts; survives restarts)
    clickhouse.pid    the pid of the server that `start` started
    clickhouse.log    its output

`stop` signals the recorded pid only while it still is this server, so a pid reused by
another process since is left alone.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from clickstream.errors import StackError
from clickstream.stack.service import ServiceStatus, alive, cmdline, read_pid

INSTALL_HINT = "pip install 'clickstream[clickhouse-local]'"
MODULE = "clickstream.stack.chserver"
STOP_GRACE = 30.0  # seconds between SIGTERM and SIGKILL: the engine flushes as it closes
_POLL = 0.05


@dataclass(frozen=True)
class ClickHousePaths:
    """Where the local ClickHouse keeps its state."""

    data_dir: Path
    pid_file: Path
    log: Path


def paths(state_dir: Path) -> ClickHousePaths:
    """The state files of the local ClickHouse under `state_dir`, as absolute paths."""
    state = state_dir.expanduser().resolve()
    return ClickHousePaths(state / "clickhouse", state / "clickhouse.pid", state / "clickhouse.log")


def url(host: str, port: int) -> str:
    """The HTTP URL of the server listening at `host`:`port`."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _is_server(pid: int) -> bool:
    """True while `pid` is alive and runs this server (not a zombie, not a reused pid).

    Only for a process started a while ago: a child just spawned may not have run `exec`
    yet, and then shows no command line."""
    args = cmdline(pid) or []
    return alive(pid) and "-m" in args and MODULE in args


def _check_port(host: str, port: int) -> None:
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            taken = exc.errno == errno.EADDRINUSE
            raise StackError(
                f"clickhouse cannot listen on {host}:{port}: port {port} is "
                f"{'already in use' if taken else exc.strerror}",
                hint="stop that process, or pick another port: --clickhouse-port "
                "or stack.clickhouse_port in the configuration",
            ) from None


EXEC_GRACE = 5.0  # seconds a just-spawned server may take to show its command line


def running_pid(state_dir: Path) -> int | None:
    """The pid of the server started under `state_dir`, if it still runs."""
    pid = read_pid(paths(state_dir).pid_file)
    if pid is None:
        return None
    deadline = time.monotonic() + EXEC_GRACE
    while alive(pid) and not (cmdline(pid) or []) and time.monotonic() < deadline:
        time.sleep(_POLL)  # spawned a moment ago: not yet past exec
    return pid if _is_server(pid) else None


def start(state_dir: Path, host: str, port: int) -> int:
    """Start the server detached, record its pid, and return it (it is not ready yet)."""
    if importlib.util.find_spec("chdb") is None:
        raise StackError("chdb (the local ClickHouse) is not installed", hint=INSTALL_HINT)
    _check_port(host, port)
    where = paths(state_dir)
    where.data_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", MODULE, "--path", str(where.data_dir)]
    argv += ["--host", host, "--port", str(port)]
    # posix_spawn rather than Popen: the server outlives us, and an abandoned Popen object
    # warns that its child still runs. setsid keeps our terminal's Ctrl-C away from it.
    pid = os.posix_spawn(
        sys.executable,
        argv,
        os.environ,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(where.log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    where.pid_file.write_text(f"{pid}\n")
    return pid


def _ping(base: str) -> str | None:
    """None when the server at `base` answers `GET /ping` with `Ok.`; else the problem."""
    try:
        with urllib.request.urlopen(base.rstrip("/") + "/ping", timeout=1.0) as resp:  # noqa: S310
            body = resp.read()
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except OSError as exc:
        return str(getattr(exc, "reason", exc))
    return None if body.strip() == b"Ok." else f"unexpected answer {body[:40]!r}"


def wait_until_ready(base: str, timeout: float, *, pid: int | None = None) -> None:
    """Return once the server at `base` answers `/ping`; raise `StackError` on timeout or if
    process `pid` exits first."""
    if not base.startswith(("http://", "https://")):
        raise StackError(f"ClickHouse URL {base} must start with http:// or https://")
    deadline = time.monotonic() + timeout
    while True:
        problem = _ping(base)
        if problem is None:
            return
        if pid is not None and not alive(pid):
            raise StackError(f"ClickHouse at {base} exited before it answered")
        if time.monotonic() >= deadline:
            raise StackError(
                f"ClickHouse at {base} did not answer within {timeout:.3g}s: {problem}"
            )
        time.sleep(_POLL)


def status(state_dir: Path, host: str, port: int) -> ServiceStatus:
    """What runs where; never starts or stops anything."""
    where, address = paths(state_dir), url(host, port)
    pid = read_pid(where.pid_file)
    if pid is None:
        return ServiceStatus("clickhouse", address, False, None, "not started")
    if not _is_server(pid):
        return ServiceStatus("clickhouse", address, False, None, f"not running (stale pid {pid})")
    args = cmdline(pid) or []
    listening = url(args[args.index("--host") + 1], int(args[args.index("--port") + 1]))
    return ServiceStatus(
        "clickhouse", listening, True, pid, f"data {where.data_dir}, log {where.log}"
    )


def stop(state_dir: Path) -> None:
    """Stop the server started under `state_dir`; a no-op when none runs."""
    where = paths(state_dir)
    pid = running_pid(state_dir)
    if pid is not None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + STOP_GRACE
            while _is_server(pid) and time.monotonic() < deadline:
                time.sleep(_POLL)
            if not _is_server(pid):
                break
        else:
            raise StackError(f"the local ClickHouse (pid {pid}) did not stop even after SIGKILL")
    where.pid_file.unlink(missing_ok=True)
