"""The Kafka side of `produce`: pacing, delivery accounting, flushing on stop.

Events are keyed by user id, so one user's actions land on one partition and stay
in order. The producer is idempotent (no duplicates from its own retries) and
compresses its batches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from clickstream import kafka, logs
from clickstream.events import Event
from clickstream.settings import KafkaSettings

log = logs.get("producer")

#: librdkafka settings for the events producer, on top of the connection settings.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,  # implies acks=all and safe retries
    "compression.type": "zstd",
    "linger.ms": 20,
    "batch.size": 512 * 1024,
    "queue.buffering.max.messages": 200_000,
}
#: How often the progress callback may run, in seconds.
PROGRESS_EVERY = 0.25


@dataclass
class ProduceStats:
    """Counts of one produce run."""

    produced: int = 0
    delivered: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    interrupted: bool = False
    first_error: str | None = None

    @property
    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return max(end - self.started, 1e-9)

    @property
    def rate(self) -> float:
        """Events handed over per second."""
        return self.produced / self.elapsed

    @property
    def in_flight(self) -> int:
        return self.produced - self.delivered - self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "produced": self.produced,
            "delivered": self.delivered,
            "failed": self.failed,
            "undelivered": self.in_flight,
            "seconds": round(self.elapsed, 3),
            "events_per_second": round(self.rate, 1),
            "interrupted": self.interrupted,
        }


class Sink(Protocol):
    """Where produced events go: Kafka, or stdout for `--dry-run`."""

    def send(self, key: bytes, value: bytes) -> None: ...

    def poll(self) -> None: ...

    def close(self, timeout: float) -> None: ...


class KafkaSink:
    """Publishes to a Kafka topic and counts delivery reports into `stats`."""

    def __init__(self, settings: KafkaSettings, topic: str, stats: ProduceStats) -> None:
        self._stats = stats
        self._topic = topic
        self._bootstrap = settings.bootstrap_servers
        conf = {
            **settings.client_config(),
            **PRODUCER_DEFAULTS,
            "on_delivery": self._on_delivery,
            "error_cb": self._on_error,
        }
        self._producer = Producer(conf)
        kafka.require_topic(self._producer, self._bootstrap, topic)

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is None:
            self._stats.delivered += 1
            return
        self._stats.failed += 1
        if self._stats.first_error is None:
            self._stats.first_error = kafka.describe(error)
            log.error("delivery failed", topic=self._topic, error=self._stats.first_error)

    def _on_error(self, error: KafkaError) -> None:
        log.warning("kafka client error", bootstrap=self._bootstrap, error=kafka.describe(error))

    def send(self, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(self._topic, value, key)
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self._producer.poll(0.05)
                continue
            except KafkaException as exc:
                raise kafka.wrap(exc, f"producing to {self._topic!r}", self._bootstrap) from None
            return

    def poll(self) -> None:
        self._producer.poll(0)

    def close(self, timeout: float) -> None:
        remaining = self._producer.flush(timeout)
        if remaining:
            log.error("messages still in flight after flush", count=remaining, timeout=timeout)


class StreamSink:
    """Writes one JSON event per line, for `--dry-run`; every line counts as delivered."""

    def __init__(self, stream: IO[bytes], stats: ProduceStats) -> None:
        self._stream = stream
        self._stats = stats

    def send(self, key: bytes, value: bytes) -> None:
        self._stream.write(value + b"\n")
        self._stats.delivered += 1

    def poll(self) -> None:
        """Nothing to serve."""

    def close(self, timeout: float) -> None:
        self._stream.flush()


class Pacer:
    """Holds a steady rate: event i is due at start + i / rate (no drift, no bursts of catch-up
    beyond what was lost). A rate of 0 means as fast as possible."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._start = clock()

    def wait(self, index: int, stop: threading.Event) -> None:
        """Block until event `index` (0-based) is due, or `stop` is set."""
        if not self._interval:
            return
        delay = self._start + index * self._interval - self._clock()
        if delay > 0:
            stop.wait(delay) if delay > 0.002 else self._sleep(delay)


def run(
    events: Iterable[Event],
    sink: Sink,
    stats: ProduceStats,
    *,
    count: int | None = None,
    duration: float | None = None,
    rate: float = 0.0,
    stop: threading.Event | None = None,
    on_progress: Callable[[ProduceStats], None] | None = None,
    flush_timeout: float = 30.0,
) -> ProduceStats:
    """Send `events` to `sink` until `count`, `duration` or `stop`; then flush what is in flight."""
    stop = stop or threading.Event()
    pacer = Pacer(rate)
    deadline = None if duration is None else time.monotonic() + duration
    next_progress = 0.0
    try:
        for index, event in enumerate(events):
            if (count is not None and index >= count) or stop.is_set():
                break
            pacer.wait(index, stop)
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                break
            sink.send(event.user_id.encode(), event.to_json())
            stats.produced += 1
            if index % 256 == 0:
                sink.poll()
                now = time.monotonic()
                if on_progress is not None and now >= next_progress:
                    on_progress(stats)
                    next_progress = now + PROGRESS_EVERY
    finally:
        stats.interrupted = stop.is_set()
        sink.close(flush_timeout)
        stats.finished = time.monotonic()
        if on_progress is not None:
            on_progress(stats)
    return stats
