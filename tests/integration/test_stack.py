"""`clickstream.stack.local` against the real emulators, on a state dir and ports of its own."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from clickstream.errors import StackError
from clickstream.settings import StackSettings
from clickstream.stack import local as stack


@pytest.fixture
def own(
    tmp_path, free_ports: Callable[[int], list[int]], unavailable: Callable[[str], NoReturn]
) -> Iterator[StackSettings]:
    """Settings for a stack of this test's own, stopped afterwards whatever happened."""
    missing = [name for name in ("noida_db", "osmem_server") if not importlib.util.find_spec(name)]
    if missing:
        unavailable(f"{', '.join(missing)} not installed ({stack.INSTALL_HINT})")
    kafka_port, opensearch_port, clickhouse_port = free_ports(3)
    settings = StackSettings(
        kafka_port=kafka_port,
        opensearch_port=opensearch_port,
        clickhouse_port=clickhouse_port,
        state_dir=tmp_path / "state",
    )
    yield settings
    stack.down(settings)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _exists(pid: int) -> bool:
    """True while `pid` runs; an exited process that its parent has not reaped yet does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def listener() -> Iterator[Callable[[int], None]]:
    """`listener(port)`: something else listens on `port` until the test ends."""
    sockets: list[socket.socket] = []

    def occupy(port: int) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        sockets.append(sock)

    yield occupy
    for sock in sockets:
        sock.close()


class TestUp:
    def test_starts_both_and_reports_where(self, own):
        """up starts both services, which answer at the configured addresses."""
        status, started = stack.up(own, timeout=30)
        assert started
        assert status.running
        assert status.kafka.address == f"127.0.0.1:{own.kafka_port}"
        assert status.opensearch.address == f"http://127.0.0.1:{own.opensearch_port}"
        assert status.kafka.pid is not None
        assert status.opensearch.pid is not None
        stack.wait_for_kafka(status.kafka.address, timeout=5)
        stack.wait_for_opensearch(status.opensearch.address, timeout=5)
        assert stack.status(own) == status

    def test_second_up_starts_nothing(self, own):
        """up is idempotent: when both run, it starts nothing and says so."""
        first, _ = stack.up(own, timeout=30)
        second, started = stack.up(own, timeout=30)
        assert not started
        assert second == first

    def test_restarts_only_the_missing_service(self, own):
        """When one service died, up starts that one and leaves the other alone."""
        first, _ = stack.up(own, timeout=30)
        assert first.opensearch.pid is not None
        os.kill(first.opensearch.pid, signal.SIGKILL)
        assert not stack.status(own).opensearch.running
        second, started = stack.up(own, timeout=30)
        assert started
        assert second.running
        assert second.kafka.pid == first.kafka.pid


class TestDown:
    def test_stops_both(self, own):
        """down stops both processes, frees both ports and removes the pid file."""
        up, _ = stack.up(own, timeout=30)
        status = stack.down(own)
        assert not status.kafka.running
        assert not status.opensearch.running
        assert up.kafka.pid is not None
        assert not _exists(up.kafka.pid)
        assert up.opensearch.pid is not None
        assert not _exists(up.opensearch.pid)
        assert _bindable(own.kafka_port)
        assert _bindable(own.opensearch_port)
        assert not stack.paths(own).pid_file.exists()

    def test_nothing_running_is_a_no_op(self, own):
        """down with nothing started (or already stopped) succeeds and changes nothing."""
        assert not stack.down(own).running
        stack.up(own, timeout=30)
        stack.down(own)
        assert not stack.down(own).running


class TestBusyPort:
    def test_kafka_port_in_use(self, own, listener):
        """A foreign listener on the Kafka port is a StackError naming it; nothing starts."""
        listener(own.kafka_port)
        with pytest.raises(StackError, match=f"kafka .*port {own.kafka_port} is already in use"):
            stack.up(own, timeout=30)
        assert not stack.status(own).opensearch.running

    def test_opensearch_port_in_use(self, own, listener):
        """A foreign listener on the OpenSearch port fails up before Kafka starts."""
        listener(own.opensearch_port)
        with pytest.raises(StackError, match=f"opensearch .*port {own.opensearch_port} is"):
            stack.up(own, timeout=30)
        assert not stack.status(own).kafka.running
        assert _bindable(own.kafka_port)


class TestFailedStart:
    def test_server_that_exits_is_reported_with_its_log(self, own, tmp_path, monkeypatch):
        """A search server that dies at once: StackError with its last words and log; the
        broker started by the same call is stopped again."""
        fake = tmp_path / "bin" / "osmem-server"
        fake.parent.mkdir()
        fake.write_text("#!/bin/sh\necho 'osmem-server: cannot start: disk on fire' >&2\nexit 1\n")
        fake.chmod(0o755)
        monkeypatch.setenv("OSMEM_SERVER_BIN", str(fake))
        with pytest.raises(StackError) as caught:
            stack.up(own, timeout=30)
        message = str(caught.value)
        assert "disk on fire" in message
        assert str(stack.paths(own).opensearch_log) in message
        assert not stack.status(own).kafka.running
        assert _bindable(own.kafka_port)

    def test_waits_give_up_on_a_silent_port(self, free_ports):
        """wait_for_* raise StackError naming the address once the timeout has passed."""
        (port,) = free_ports(1)
        with pytest.raises(StackError, match=f"127.0.0.1:{port}"):
            stack.wait_for_kafka(f"127.0.0.1:{port}", timeout=0.3)
        with pytest.raises(StackError, match=f"http://127.0.0.1:{port}"):
            stack.wait_for_opensearch(f"http://127.0.0.1:{port}", timeout=0.3)
