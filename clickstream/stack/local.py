"""Start, stop and inspect the local stack: a Kafka-compatible broker, an OpenSearch server
and, if chdb is installed, a ClickHouse server (`clickstream.stack.chserver`).

Both come from PyPI (`pip install 'clickstream[stack]'`): `noida-db` speaks the Kafka
protocol and runs as its own background daemon, keyed by its data dir; `osmem-server`
speaks the OpenSearch REST API and runs detached from us, with its pid in a file.
Everything lives under `StackSettings.state_dir`:

    kafka/            noida-db's data dir (topics and offsets survive restarts; log in noida.log)
    opensearch.pid    the pid of the osmem-server that `up` started
    opensearch.log    its output
    clickhouse/, clickhouse.pid, clickhouse.log   the local ClickHouse (see its `control`)

`down` stops exactly what `up` started: the daemon of that data dir, and the recorded pid
only while it is still an osmem-server process.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from clickstream.errors import StackError
from clickstream.settings import StackSettings
from clickstream.stack.service import ServiceStatus, alive, cmdline, read_pid

__all__ = ["ServiceStatus", "StackStatus", "down", "status", "up"]

INSTALL_HINT = "pip install 'clickstream[stack]'"
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
NOIDA_SAVE_GRACE = 60.0  # seconds noida-db may take to save its data and exit
_POLL = 0.05
_NOIDA_TIMEOUT = 30.0


@dataclass(frozen=True)
class StackStatus:
    """The services of the local stack: Kafka, OpenSearch and (if installed) ClickHouse."""

    kafka: ServiceStatus
    opensearch: ServiceStatus
    clickhouse: ServiceStatus

    @property
    def services(self) -> tuple[ServiceStatus, ...]:
        return (self.kafka, self.opensearch, self.clickhouse)

    @property
    def running(self) -> bool:
        """True when every installed service runs."""
        return all(service.running for service in self.services if service.installed)

    def render(self) -> str:
        """One line per service, for people."""
        return "\n".join(service.render() for service in self.services)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for machines."""
        return asdict(self)


# -- paths and addresses ---------------------------------------------------------------------


@dataclass(frozen=True)
class StackPaths:
    """Where the local stack keeps its state."""

    kafka_dir: Path
    kafka_log: Path
    pid_file: Path
    opensearch_log: Path


def paths(settings: StackSettings) -> StackPaths:
    """The state files of the stack that `settings` describes, as absolute paths."""
    state = settings.state_dir.expanduser().resolve()
    kafka = state / "kafka"
    return StackPaths(
        kafka, kafka / "noida.log", state / "opensearch.pid", state / "opensearch.log"
    )


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def kafka_address(settings: StackSettings) -> str:
    """The bootstrap servers of the broker that `up` starts."""
    return _hostport(settings.host, settings.kafka_port)


def opensearch_url(settings: StackSettings) -> str:
    """The URL of the search server that `up` starts."""
    return f"http://{_hostport(settings.host, settings.opensearch_port)}"


def clickhouse_url(settings: StackSettings) -> str:
    """The URL of the ClickHouse server that `up` starts (if chdb is installed)."""
    return f"http://{_hostport(settings.host, settings.clickhouse_port)}"


# -- the emulator binaries -------------------------------------------------------------------


def _noida_binary() -> Path:
    try:
        path = Path(str(resources.files("noida_db") / "noida-db"))
    except ModuleNotFoundError:
        raise StackError("noida-db (the local Kafka) is not installed", hint=INSTALL_HINT) from None
    if not path.is_file():
        raise StackError(f"noida-db has no binary at {path}", hint=INSTALL_HINT)
    if not os.access(path, os.X_OK):
        path.chmod(0o755)  # as noida-db's own console script does: wheels can drop the x bit
    return path


def _osmem_binary() -> Path:
    try:
        import osmem_server  # noqa: PLC0415  (optional extra, imported only when needed)

        return Path(osmem_server.resolve_binary())
    except ImportError:
        raise StackError(
            "osmem-server (the local OpenSearch) is not installed", hint=INSTALL_HINT
        ) from None
    except Exception as exc:  # noqa: BLE001  (OsmemError: no binary for this platform)
        raise StackError(f"osmem-server cannot run here: {exc}", hint=INSTALL_HINT) from None


def _clean(text: str) -> str:
    """Output without the noida-db binary's harmless glibc version warning."""
    return "\n".join(line for line in text.splitlines() if "GLIBC_" not in line).strip()


def _noida(settings: StackSettings, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(_noida_binary()), *args, "--data-dir", str(paths(settings).kafka_dir)]
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=_NOIDA_TIMEOUT,
            check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"noida-db {args[0]} failed: {exc}") from None


# -- processes -------------------------------------------------------------------------------


def _osmem_addr(pid: int) -> str | None:
    """The listen address of osmem-server process `pid`, or None if it is not one."""
    args = cmdline(pid) or []
    if not args or not Path(args[0]).name.startswith("osmem") or "-addr" not in args[:-1]:
        return None
    return args[args.index("-addr") + 1]


def _check_port(name: str, host: str, port: int, field: str) -> None:
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            raise StackError(
                f"{name} cannot listen on {_hostport(host, port)}: port {port} is "
                f"{'already in use' if exc.errno == errno.EADDRINUSE else exc.strerror}",
                hint=f"stop that process, or pick another port: --{field.replace('_', '-')} "
                f"or stack.{field} in the configuration",
            ) from None


def _wait(probe: Callable[[], str | None], what: str, timeout: float, pid: int | None) -> None:
    """Call `probe` until it returns None (ready); else raise with its last complaint."""
    deadline = time.monotonic() + timeout
    while True:
        problem = probe()
        if problem is None:
            return
        if pid is not None and not alive(pid):
            raise StackError(f"{what} exited before it answered")
        if time.monotonic() >= deadline:
            raise StackError(f"{what} did not answer within {timeout:.3g}s: {problem}")
        time.sleep(_POLL)


# -- readiness -------------------------------------------------------------------------------


def wait_for_kafka(bootstrap: str, timeout: float, *, pid: int | None = None) -> None:
    """Return once the broker at `bootstrap` answers a metadata request."""
    from confluent_kafka import KafkaException  # noqa: PLC0415  (slow import, needed here only)
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    servers = [s.split("://")[-1].rsplit(":", 1) for s in bootstrap.split(",") if s.strip()]

    def listening() -> str | None:  # before librdkafka, which would log every refused connect
        problem = f"nothing listens on {bootstrap}"
        for host, port in servers:
            try:
                with socket.create_connection((host.strip("[] "), int(port)), timeout=1.0):
                    return None
            except (OSError, ValueError) as exc:
                problem = str(exc)
        return problem

    started = time.monotonic()
    _wait(listening, f"Kafka at {bootstrap}", timeout, pid)
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": "0"})

    def metadata() -> str | None:
        try:
            answer = admin.list_topics(timeout=1.0)
        except KafkaException as exc:
            return str(exc.args[0] if exc.args else exc)
        return None if answer.brokers else "no brokers in the metadata"

    _wait(metadata, f"Kafka at {bootstrap}", max(timeout - (time.monotonic() - started), 0), pid)


def wait_for_opensearch(url: str, timeout: float, *, pid: int | None = None) -> None:
    """Return once `GET /_cluster/health` at `url` answers 200 with a yellow or green status."""
    health = url.rstrip("/") + "/_cluster/health"
    if not health.startswith(("http://", "https://")):
        raise StackError(f"OpenSearch URL {url} must start with http:// or https://")

    def healthy() -> str | None:
        try:
            with urllib.request.urlopen(health, timeout=1.0) as resp:  # noqa: S310  (checked)
                state = json.loads(resp.read()).get("status")
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            return str(getattr(exc, "reason", exc))
        return None if state in ("green", "yellow") else f"cluster status {state}"

    _wait(healthy, f"OpenSearch at {url}", timeout, pid)


# -- status ----------------------------------------------------------------------------------


def _kafka_status(settings: StackSettings) -> ServiceStatus:
    data, address = paths(settings).kafka_dir, kafka_address(settings)
    if not data.is_dir():
        return ServiceStatus("kafka", address, False, None, "not started")
    try:
        result = _noida(settings, "status")
    except StackError as exc:
        return ServiceStatus("kafka", address, False, None, str(exc))
    output = _clean(result.stdout + "\n" + result.stderr)
    pid = re.search(r"\bpid (\d+)", output)
    listening = re.search(r"^\s*\S+\s+kafka\s+(\S+:\d+)", output, re.MULTILINE)
    running = result.returncode == 0 and listening is not None
    return ServiceStatus(
        "kafka",
        listening.group(1) if listening else address,
        running,
        int(pid.group(1)) if pid and result.returncode == 0 else None,
        f"data {data}, log {paths(settings).kafka_log}" if running else "not running",
    )


def _opensearch_status(settings: StackSettings) -> ServiceStatus:
    url, log = opensearch_url(settings), paths(settings).opensearch_log
    pid = read_pid(paths(settings).pid_file)
    if pid is None:
        return ServiceStatus("opensearch", url, False, None, "not started")
    addr = _osmem_addr(pid) if alive(pid) else None
    if addr is None:
        return ServiceStatus("opensearch", url, False, None, f"not running (stale pid {pid})")
    return ServiceStatus("opensearch", f"http://{addr}", True, pid, f"log {log}")


def clickhouse_installed() -> bool:
    """Whether chdb, the local ClickHouse's engine, is installed (an optional extra)."""
    return importlib.util.find_spec("chdb") is not None


def _clickhouse_status(settings: StackSettings) -> ServiceStatus:
    from clickstream.stack.chserver import control  # noqa: PLC0415  (imports this module)

    if not clickhouse_installed():
        detail = f"not installed: {control.INSTALL_HINT}"
        return ServiceStatus(
            "clickhouse", clickhouse_url(settings), False, None, detail, installed=False
        )
    return control.status(settings.state_dir, settings.host, settings.clickhouse_port)


def status(settings: StackSettings) -> StackStatus:
    """What runs where; never starts or stops anything."""
    return StackStatus(
        kafka=_kafka_status(settings),
        opensearch=_opensearch_status(settings),
        clickhouse=_clickhouse_status(settings),
    )


# -- up and down -----------------------------------------------------------------------------


def _start_kafka(settings: StackSettings) -> None:
    paths(settings).kafka_dir.mkdir(parents=True, exist_ok=True)
    port = str(settings.kafka_port)
    result = _noida(
        settings, "up", "--only", "kafka", "--kafka-port", port, "--host", settings.host
    )
    if result.returncode != 0:
        output = _clean(result.stdout + "\n" + result.stderr)
        errors = [line.strip() for line in output.splitlines() if "error:" in line]
        reason = errors[-1] if errors else output.splitlines()[-1] if output else "no output"
        raise StackError(
            f"kafka (noida-db) did not start on {kafka_address(settings)}: {reason}",
            hint=f"log: {paths(settings).kafka_log}",
        )


def _start_opensearch(settings: StackSettings) -> int:
    binary, log = _osmem_binary(), paths(settings).opensearch_log
    argv = [str(binary), "-addr", _hostport(settings.host, settings.opensearch_port)]
    argv += ["-no-ja", "-no-stdin-watch"]
    log.parent.mkdir(parents=True, exist_ok=True)
    # posix_spawn rather than Popen: the server outlives us, and an abandoned Popen object
    # warns that its child still runs. setsid keeps our terminal's Ctrl-C away from it.
    pid = os.posix_spawn(
        str(binary),
        argv,
        os.environ,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    paths(settings).pid_file.write_text(f"{pid}\n")
    return pid


def _last_log_line(path: Path) -> str:
    try:
        lines = _clean(path.read_text(errors="replace")).splitlines()
    except OSError:
        return ""
    return f": {lines[-1].strip()}" if lines else ""


def _wait_for_clickhouse(settings: StackSettings, timeout: float, pid: int | None) -> None:
    from clickstream.stack.chserver import control  # noqa: PLC0415  (imports this module)

    log = control.paths(settings.state_dir).log
    try:
        control.wait_until_ready(clickhouse_url(settings), timeout, pid=pid)
    except StackError as exc:
        raise StackError(exc.message + _last_log_line(log), hint=f"log: {log}") from None


def up(settings: StackSettings, *, timeout: float = 60.0) -> tuple[StackStatus, bool]:
    """Start whatever is not running yet and wait until every service answers; ClickHouse
    only if chdb is installed (without it Kafka and OpenSearch start, and the status says
    how to install it).

    Returns the status and whether anything was started. If a start fails, what this call
    started is stopped again, and `StackError` says which service, which port and which log.
    """
    from clickstream.stack.chserver import control  # noqa: PLC0415  (imports this module)

    deadline, where = time.monotonic() + timeout, paths(settings)
    before = status(settings)
    start_kafka, start_opensearch = not before.kafka.running, not before.opensearch.running
    start_clickhouse = before.clickhouse.installed and not before.clickhouse.running
    if start_kafka:
        if before.kafka.pid is not None:  # someone ran `noida-db stop kafka` by hand
            raise StackError(
                f"noida-db runs in {where.kafka_dir} but its kafka service is stopped",
                hint="run `clickstream stack down`, then up again",
            )
        _noida_binary()
        _check_port("kafka", settings.host, settings.kafka_port, "kafka_port")
    if start_opensearch:
        _osmem_binary()
        _check_port("opensearch", settings.host, settings.opensearch_port, "opensearch_port")
    if start_clickhouse:
        _check_port("clickhouse", settings.host, settings.clickhouse_port, "clickhouse_port")
    os_pid = before.opensearch.pid
    ch_pid = before.clickhouse.pid
    try:
        if start_kafka:
            _start_kafka(settings)
        if start_opensearch:
            os_pid = _start_opensearch(settings)
        if start_clickhouse:
            ch_pid = control.start(settings.state_dir, settings.host, settings.clickhouse_port)
        kafka = _kafka_status(settings)
        try:
            wait_for_kafka(kafka.address, max(deadline - time.monotonic(), 0.0), pid=kafka.pid)
        except StackError as exc:
            raise StackError(exc.message, hint=f"log: {where.kafka_log}") from None
        url = opensearch_url(settings) if start_opensearch else before.opensearch.address
        try:
            wait_for_opensearch(url, max(deadline - time.monotonic(), 0.0), pid=os_pid)
        except StackError as exc:
            message = exc.message + _last_log_line(where.opensearch_log)
            raise StackError(message, hint=f"log: {where.opensearch_log}") from None
        if start_clickhouse:
            _wait_for_clickhouse(settings, max(deadline - time.monotonic(), 0.0), ch_pid)
    except BaseException:
        with contextlib.suppress(StackError):  # the failure to report is the one above
            _stop(settings, kafka=start_kafka, opensearch_pid=os_pid if start_opensearch else None)
            if start_clickhouse:
                control.stop(settings.state_dir)
        raise
    return status(settings), start_kafka or start_opensearch or start_clickhouse


def _gone(pid: int, grace: float) -> bool:
    deadline = time.monotonic() + grace
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)
    return True


def _stop_pid(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if _gone(pid, STOP_GRACE):
            return
    raise StackError(f"osmem-server (pid {pid}) did not stop even after SIGKILL")


def _stop(settings: StackSettings, *, kafka: bool, opensearch_pid: int | None) -> None:
    where = paths(settings)
    if kafka and where.kafka_dir.is_dir():
        kafka_pid = _kafka_status(settings).pid
        result = _noida(settings, "down")
        if result.returncode != 0:
            output = _clean(result.stdout + "\n" + result.stderr)
            raise StackError(f"noida-db down failed: {output}", hint=f"log: {where.kafka_log}")
        # `noida-db down` returns at once; the daemon saves its data and exits ~2s later.
        if kafka_pid is not None and not _gone(kafka_pid, NOIDA_SAVE_GRACE):
            raise StackError(
                f"noida-db (pid {kafka_pid}) is still saving its data after "
                f"{NOIDA_SAVE_GRACE:g}s; its ports stay taken until it exits",
                hint=f"log: {where.kafka_log}",
            )
    if opensearch_pid is not None:
        _stop_pid(opensearch_pid)
        where.pid_file.unlink(missing_ok=True)


def down(settings: StackSettings) -> StackStatus:
    """Stop what `up` started under this state dir; a no-op when nothing runs.

    The recorded osmem-server pid is signalled only while it still is an osmem-server
    process, so a pid reused by something else since is left alone.
    """
    pid = read_pid(paths(settings).pid_file)
    if pid is not None and (not alive(pid) or _osmem_addr(pid) is None):
        pid = None
    from clickstream.stack.chserver import control  # noqa: PLC0415  (imports this module)

    _stop(settings, kafka=True, opensearch_pid=pid)
    paths(settings).pid_file.unlink(missing_ok=True)
    control.stop(settings.state_dir)
    return status(settings)
