"""The Kafka side of `produce`: pacing, delivery accounting, flushing on stop.

Events are keyed by user id, so one user's actions land on one partition and stay
in order. The producer is idempotent (no duplicates from its own retries) and
compresses its batches.

Messages are handed over in chunks (about 10 ms worth at the target rate), so stopping,
pacing and progress are checked per chunk rather than per event. librdkafka reports
only failed deliveries: a delivered message is one that was produced, has not failed,
and is no longer queued or in flight, which `flush` settles at the end.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from clickstream import kafka, logs
from clickstream.events import Event
from clickstream.settings import KafkaSettings
from clickstream.stats import RunClock

log = logs.get("producer")

#: librdkafka settings for the events producer; `kafka.extra` overrides them.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,  # implies acks=all and safe retries
    # lz4 costs about 1 µs of CPU per event and shrinks these events 4.4 times; zstd costs
    # about 2.5 µs for 8.4 times. Set `compression.type` in `kafka.extra` to choose.
    "compression.type": "lz4",
    "linger.ms": 50,
    "batch.size": 1024 * 1024,
    # The local queue is bounded: a fast producer waits for the broker instead of growing.
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 64 * 1024,
    # A report per message would cost more than producing it; failures are still reported.
    "delivery.report.only.error": True,
}


def producer_config(settings: KafkaSettings) -> dict[str, Any]:
    """librdkafka settings of the events producer: ours, then the user's on top."""
    return kafka.client_config(settings, PRODUCER_DEFAULTS)


#: How often the progress callback may run, in seconds.
PROGRESS_EVERY = 0.25
#: How often the achieved rate is logged, in seconds.
REPORT_EVERY = 10.0
#: Most messages handed to the sink at once (as fast as possible); with a target rate,
#: a chunk is about 10 ms worth.
CHUNK = 1024

#: A Kafka message as the simulator makes it: (key, value).
KeyValue = tuple[bytes, bytes]


@dataclass
class ProduceStats(RunClock):
    """Counts of one produce run."""

    produced: int = 0
    delivered: int = 0
    failed: int = 0
    interrupted: bool = False
    first_error: str | None = None

    @property
    def done(self) -> int:
        return self.produced

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

    def send_all(self, messages: Iterable[KeyValue]) -> int:
        """Send every message; return how many were sent."""
        ...

    def poll(self) -> None: ...

    def close(self, timeout: float) -> None: ...


class KafkaSink:
    """Publishes to a Kafka topic; counts failed deliveries (reported by librdkafka) and
    delivered ones (produced, not failed, no longer queued) into `stats`."""

    def __init__(self, settings: KafkaSettings, topic: str, stats: ProduceStats) -> None:
        self._stats = stats
        self._topic = topic
        self._bootstrap = settings.bootstrap_servers
        conf = {
            **producer_config(settings),
            "on_delivery": self._on_delivery,
            "error_cb": self._on_error,
        }
        self._producer = Producer(conf)
        kafka.require_topic(self._producer, self._bootstrap, topic)
        # librdkafka answers that first metadata request from the bootstrap connection and
        # then drops it for the brokers the answer names. The idempotent producer asks for its
        # producer id in that gap, finds no broker up, and tries again only after a fixed
        # 500 ms, so a short run idled half a second in `flush`. A second metadata request
        # is answered by a named broker, and with it up the id is fetched at once.
        kafka.topic_partitions(self._producer, self._bootstrap, topic)

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is None:  # only with delivery.report.only.error turned off
            return
        self._stats.failed += 1
        if self._stats.first_error is None:
            self._stats.first_error = kafka.describe(error)
            log.error("delivery failed", topic=self._topic, error=self._stats.first_error)

    def _on_error(self, error: KafkaError) -> None:
        log.warning("kafka client error", bootstrap=self._bootstrap, error=kafka.describe(error))

    def send(self, key: bytes, value: bytes) -> None:
        self.send_all(((key, value),))

    def send_all(self, messages: Iterable[KeyValue]) -> int:
        produce, topic = self._producer.produce, self._topic
        sent = 0
        try:
            for key, value in messages:
                try:
                    produce(topic, value, key)
                except BufferError:
                    self._produce_when_there_is_room(key, value)
                sent += 1
        except KafkaException as exc:
            raise kafka.wrap(exc, f"producing to {topic!r}", self._bootstrap) from None
        finally:
            self._update_delivered(sent)
        return sent

    def _produce_when_there_is_room(self, key: bytes, value: bytes) -> None:
        """The local queue is full: wait for the broker to make room, then produce."""
        while True:
            self._producer.poll(0.05)
            try:
                self._producer.produce(self._topic, value, key)
            except BufferError:
                continue
            return

    def _update_delivered(self, sent: int) -> None:
        """Delivered so far: produced (before this call, plus `sent`) minus failed and queued."""
        stats = self._stats
        queued = len(self._producer)
        stats.delivered = max(stats.produced + sent - stats.failed - queued, stats.delivered)

    def poll(self) -> None:
        self._producer.poll(0)

    def close(self, timeout: float) -> None:
        remaining = self._producer.flush(timeout)
        stats = self._stats
        stats.delivered = stats.produced - stats.failed - remaining
        if remaining:
            log.error("messages still in flight after flush", count=remaining, timeout=timeout)


class StreamSink:
    """Writes one JSON event per line, for `--dry-run`; every line counts as delivered."""

    def __init__(self, stream: IO[bytes], stats: ProduceStats) -> None:
        self._stream = stream
        self._stats = stats

    def send(self, key: bytes, value: bytes) -> None:
        self.send_all(((key, value),))

    def send_all(self, messages: Iterable[KeyValue]) -> int:
        lines = [value for _key, value in messages]
        if lines:
            self._stream.write(b"\n".join(lines) + b"\n")
        self._stats.delivered += len(lines)
        return len(lines)

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


def as_messages(events: Iterable[Event] | Iterable[KeyValue]) -> Iterator[KeyValue]:
    """(key, value) messages from simulator messages (as they are) or from `Event`s."""
    items = iter(events)
    first = next(items, None)
    if first is None:
        return iter(())
    if isinstance(first, Event):
        as_events = cast(Iterator[Event], itertools.chain((first,), items))
        return ((event.user_id.encode(), event.to_json()) for event in as_events)
    return cast(Iterator[KeyValue], itertools.chain((first,), items))


def chunk_size(rate: float) -> int:
    """Messages per chunk: about 10 ms worth at `rate`, at most `CHUNK`."""
    return CHUNK if rate <= 0 else max(1, min(CHUNK, int(rate / 100)))


def run(
    events: Iterable[Event] | Iterable[KeyValue],
    sink: Sink,
    stats: ProduceStats,
    *,
    count: int | None = None,
    duration: float | None = None,
    rate: float = 0.0,
    stop: threading.Event | None = None,
    on_progress: Callable[[ProduceStats], None] | None = None,
    flush_timeout: float = 30.0,
    pacer: Pacer | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ProduceStats:
    """Send `events` (simulator messages or `Event`s) to `sink` until they end, or `count`,
    `duration` or `stop`; then flush what is in flight. Stops within one chunk.

    `pacer` and `clock` are for tests: by default the pacer holds `rate` on `clock`."""
    stop = stop or threading.Event()
    messages = as_messages(events)
    pacer = pacer or Pacer(rate, clock)
    chunk = chunk_size(rate)
    deadline = None if duration is None else clock() + duration
    next_progress = 0.0
    stats.started = clock()
    last_report = (stats.started, 0)
    try:
        while not stop.is_set():
            pacer.wait(stats.produced, stop)
            now = clock()
            if stop.is_set() or (deadline is not None and now >= deadline):
                break
            size = chunk if count is None else min(chunk, count - stats.produced)
            sent = sink.send_all(itertools.islice(messages, size)) if size > 0 else 0
            stats.produced += sent
            if sent < chunk:
                break  # the events have run out, or count is reached
            sink.poll()
            if on_progress is not None and now >= next_progress:
                on_progress(stats)
                next_progress = now + PROGRESS_EVERY
            if now - last_report[0] >= REPORT_EVERY:
                recent = (stats.produced - last_report[1]) / (now - last_report[0])
                log.info("producing", produced=stats.produced, events_per_second=round(recent, 1),
                         target=rate or None)  # fmt: skip
                last_report = (now, stats.produced)
    finally:
        stats.interrupted = stop.is_set()
        sink.close(flush_timeout)
        stats.finished = time.monotonic()
        if on_progress is not None:
            on_progress(stats)
    return stats
