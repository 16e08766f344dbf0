"""Fault injection for the integration tests: a TCP proxy that can be cut, a broker of our own
that can be stopped and started, and `clickstream consume` run as a real process."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch

from clickstream.consume import status
from clickstream.events import Event
from clickstream.produce import publish
from clickstream.settings import Settings, StackSettings
from clickstream.simulate.config import SimulationConfig
from clickstream.simulate.simulator import Simulator
from clickstream.stack import local as stack
from tests.helpers import port_below_ephemeral_range

CLI = str(Path(sys.executable).parent / "clickstream")
#: A configuration file with nothing in it: processes read only what their environment says.
EMPTY_CONFIG = Path(__file__).resolve().parents[1] / "data" / "empty.toml"
START = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)


class FaultyProxy:
    """A TCP proxy to `target` on a free local port; `cut()` drops every connection and
    refuses new ones (accepted, then closed at once) until `restore()`."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        self._up.clear()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def restore(self) -> None:
        """Accept and forward connections again."""
        self._up.set()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self._thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class Broker:
    """A broker of our own (noida-db), which a test may stop and start again; its data
    (topics, offsets) is kept across restarts in its data dir."""

    def __init__(self, state_dir: Path, opensearch_port: int) -> None:
        self.settings = StackSettings(
            kafka_port=port_below_ephemeral_range(),
            opensearch_port=opensearch_port,
            state_dir=state_dir,
        )
        self.address = stack.kafka_address(self.settings)

    def start(self) -> None:
        stack._start_kafka(self.settings)  # the broker alone, not the whole stack
        stack.wait_for_kafka(self.address, 60.0)

    def stop(self) -> None:
        stack._stop(self.settings, kafka=True, opensearch_pid=None)


def produce_events(settings: Settings, count: int, seed: int = 1) -> set[str]:
    """Publish `count` simulated events to the settings' topic; return their event ids."""
    config = SimulationConfig(users=500, seed=seed, start=START)
    events: list[Event] = list(itertools.islice(Simulator(config), count))
    stats = publish.ProduceStats()
    sink = publish.KafkaSink(settings.kafka, settings.kafka.topic, stats)
    publish.run(events, sink, stats)
    assert stats.delivered == count, stats
    return {str(event.event_id) for event in events}


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """An environment for a `clickstream` process pointed where `settings` point."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    kafka, search = settings.kafka, settings.opensearch
    env.update(
        {
            "CLICKSTREAM_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "CLICKSTREAM_KAFKA__TOPIC": kafka.topic,
            "CLICKSTREAM_KAFKA__DLQ_TOPIC": kafka.dlq_topic,
            "CLICKSTREAM_KAFKA__GROUP_ID": kafka.group_id,
            "CLICKSTREAM_OPENSEARCH__URL": search.url,
            "CLICKSTREAM_OPENSEARCH__INDEX_PREFIX": search.index_prefix,
            "CLICKSTREAM_CONFIG": str(EMPTY_CONFIG),
        }
    )
    env.update(extra)
    return env


class Process:
    """A `clickstream` command running in the background, its stderr kept in a file."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], workdir: Path) -> None:
        self.log = workdir / f"clickstream-{uuid.uuid4().hex[:8]}.log"
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [CLI, *args],
                env=dict(env),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        out = []
        for line in self.stderr().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]


@contextlib.contextmanager
def running(args: Sequence[str], env: Mapping[str, str], workdir: Path) -> Iterator[Process]:
    """A background `clickstream` process, killed if the test leaves it running."""
    proc = Process(args, env, workdir)
    try:
        yield proc
    finally:
        proc.kill()


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, *, every: float = 0.5
) -> None:
    """Poll `condition` until it holds; fail saying `what` did not happen in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(every)


def group_lag(settings: Settings) -> int:
    """How many messages of the events topic the group has not committed yet."""
    parts = status.offsets(settings.kafka, settings.kafka.topic, settings.kafka.group_id)
    return sum(p.lag for p in parts)


def doc_count(client: OpenSearch, prefix: str) -> int:
    """Documents in `<prefix>-*` after a refresh (0 before the first index exists)."""
    pattern = f"{prefix}-*"
    client.indices.refresh(index=pattern, allow_no_indices=True, ignore_unavailable=True)
    found = client.count(index=pattern, allow_no_indices=True, ignore_unavailable=True)
    return int(found["count"])
