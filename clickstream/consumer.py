"""The Kafka side of `consume`: batching, validation, dead letters, commits, rebalances.

Every consumed message ends in exactly one of two places: indexed in OpenSearch,
or in the dead-letter topic with headers saying why and where it came from. A
batch's offsets are committed only after all of its messages got there, so a
crash at any point replays (never loses) messages; replays overwrite themselves
in the index because the document id is the event id.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from pydantic import ValidationError

from clickstream import kafka, logs
from clickstream.errors import KafkaFailure
from clickstream.events import Event, format_timestamp
from clickstream.opensearch import BulkItem, IndexResult
from clickstream.settings import Settings

log = logs.get("consumer")

#: librdkafka settings for the indexing consumer, on top of the connection settings.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,  # we commit after indexing, never before
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
}
#: Dead letters keep at most this much of an error reason.
MAX_REASON = 1000
#: How long one poll may block, so that stop requests are seen promptly.
POLL_SLICE = 0.2


class ErrorKind:
    """Why a message was dead-lettered (the `clickstream.error.kind` header)."""

    EMPTY = "empty"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    REJECTED = "rejected_by_opensearch"


@dataclass(frozen=True)
class DeadLetter:
    """A message that could not be indexed, with its reason."""

    message: Message
    kind: str
    reason: str


@dataclass
class ConsumeStats:
    """Counts of one consume run; consumed == indexed + dead_lettered after every batch."""

    consumed: int = 0
    indexed: int = 0
    dead_lettered: int = 0
    retried: int = 0
    batches: int = 0
    abandoned: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return max(end - self.started, 1e-9)

    @property
    def rate(self) -> float:
        return self.consumed / self.elapsed

    def as_dict(self) -> dict[str, Any]:
        return {
            "consumed": self.consumed,
            "indexed": self.indexed,
            "dead_lettered": self.dead_lettered,
            "retried": self.retried,
            "batches": self.batches,
            "seconds": round(self.elapsed, 3),
            "events_per_second": round(self.rate, 1),
        }


class Indexer(Protocol):
    """Writes a batch of events; positions in the result's `rejected` refer to the batch."""

    def index(self, items: Sequence[BulkItem]) -> IndexResult: ...


def decode(message: Message) -> Event | DeadLetter:
    """The event in `message`, or why there is none."""
    value = message.value()
    if not value:
        return DeadLetter(message, ErrorKind.EMPTY, "message has no value")
    try:
        return Event.model_validate_json(value)
    except ValidationError as exc:
        return DeadLetter(message, *_classify_invalid(value, exc))


def _classify_invalid(value: bytes, exc: ValidationError) -> tuple[str, str]:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as bad:
        return ErrorKind.INVALID_UTF8, f"not UTF-8: {bad.reason} at byte {bad.start}"
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError as bad:
        return ErrorKind.INVALID_JSON, f"not JSON: {bad}"
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}" for err in exc.errors()
    )
    return ErrorKind.INVALID_EVENT, problems


def dead_letter_headers(
    letter: DeadLetter, now: dt.datetime
) -> list[tuple[str, str | bytes | None]]:
    """Headers that say why a message was dead-lettered and where it came from."""
    msg = letter.message
    return [
        ("clickstream.error.kind", letter.kind.encode()),
        ("clickstream.error.reason", letter.reason[:MAX_REASON].encode()),
        ("clickstream.source.topic", str(msg.topic()).encode()),
        ("clickstream.source.partition", str(msg.partition()).encode()),
        ("clickstream.source.offset", str(msg.offset()).encode()),
        ("clickstream.failed_at", format_timestamp(now).encode()),
    ]


def commit_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """The offsets to commit after `messages`: one past the last of each partition."""
    last: dict[tuple[str, int], int] = {}
    for msg in messages:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is None or partition is None or offset is None:
            continue  # not a fetched message (an error event): nothing to commit
        key = (topic, partition)
        last[key] = max(last.get(key, -1), offset)
    return [
        TopicPartition(topic, part, offset + 1) for (topic, part), offset in sorted(last.items())
    ]


class EventConsumer:
    """Reads the events topic in a consumer group and hands batches to an indexer."""

    def __init__(
        self,
        settings: Settings,
        indexer: Indexer,
        *,
        on_batch: Callable[[ConsumeStats], None] | None = None,
    ) -> None:
        self._settings = settings
        self._kafka = settings.kafka
        self._indexer = indexer
        self._on_batch = on_batch
        self.stats = ConsumeStats()
        self._batch: list[Message] = []
        base = settings.kafka.client_config()
        self._consumer = Consumer(
            {
                **base,
                **CONSUMER_DEFAULTS,
                "group.id": settings.kafka.group_id,
                "error_cb": self._on_error,
            }
        )
        self._dlq = Producer(
            {**base, "enable.idempotence": True, "linger.ms": 5, "error_cb": self._on_error}
        )
        self._dlq_failures: list[str] = []

    # -- Kafka callbacks -------------------------------------------------------------------

    def _on_error(self, error: KafkaError) -> None:
        log.warning(
            "kafka client error",
            bootstrap=self._kafka.bootstrap_servers,
            error=kafka.describe(error),
        )

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Abandon (never half-commit) the pending messages of partitions we lose."""
        lost = {(tp.topic, tp.partition) for tp in partitions}
        keep = [m for m in self._batch if (m.topic(), m.partition()) not in lost]
        dropped = len(self._batch) - len(keep)
        if dropped:
            self.stats.abandoned += dropped
            log.info(
                "partitions revoked; pending messages left for their next owner",
                partitions=sorted(lost),
                abandoned=dropped,
            )
        self._batch = keep

    def _on_dlq_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._dlq_failures.append(kafka.describe(error))

    # -- the loop --------------------------------------------------------------------------

    def run(
        self, *, until_idle: float | None = None, stop: threading.Event | None = None
    ) -> ConsumeStats:
        """Consume until `stop` is set or, with `until_idle`, no message came for that long."""
        stop = stop or threading.Event()
        topic = self._kafka.topic
        kafka.require_topic(self._consumer, self._kafka.bootstrap_servers, topic)
        kafka.require_topic(self._consumer, self._kafka.bootstrap_servers, self._kafka.dlq_topic)
        self._consumer.subscribe([topic], on_revoke=self._on_revoke, on_lost=self._on_revoke)
        cfg = self._settings.consumer
        last_message_at = time.monotonic()
        batch_started = 0.0
        try:
            while not stop.is_set():
                wanted = cfg.batch_size - len(self._batch)
                try:
                    messages = self._consumer.consume(num_messages=wanted, timeout=POLL_SLICE)
                except KafkaException as exc:
                    raise kafka.wrap(
                        exc, f"consuming {topic!r}", self._kafka.bootstrap_servers
                    ) from None
                now = time.monotonic()
                for msg in messages:
                    if self._accept(msg):
                        if not self._batch:
                            batch_started = now
                        self._batch.append(msg)
                if messages:
                    last_message_at = now
                if self._batch and (
                    len(self._batch) >= cfg.batch_size or now - batch_started >= cfg.batch_timeout
                ):
                    self._process(self._take_batch())
                elif (
                    until_idle is not None
                    and not self._batch
                    and now - last_message_at >= until_idle
                ):
                    log.info("idle; stopping", idle_seconds=until_idle)
                    break
            if self._batch:
                self._process(self._take_batch())
        finally:
            self.stats.finished = time.monotonic()
            self.close()
        return self.stats

    def close(self) -> None:
        """Leave the group (its partitions go to the others at once)."""
        with contextlib.suppress(KafkaException, RuntimeError):  # already closed
            self._consumer.close()

    def _accept(self, msg: Message) -> bool:
        error = msg.error()
        if error is None:
            return True
        if error.code() == KafkaError._PARTITION_EOF:
            return False
        if error.fatal():
            raise KafkaFailure(f"fatal consumer error: {kafka.describe(error)}")
        log.warning("consumer error", error=kafka.describe(error))
        return False

    def _take_batch(self) -> list[Message]:
        batch, self._batch = self._batch, []
        return batch

    def _process(self, batch: list[Message]) -> None:
        """Index or dead-letter every message of `batch`, then commit its offsets."""
        events: list[tuple[Event, bytes]] = []
        sources: list[Message] = []
        letters: list[DeadLetter] = []
        for msg in batch:
            decoded = decode(msg)
            if isinstance(decoded, DeadLetter):
                letters.append(decoded)
            else:
                # The validated message is indexed as it came: no second serialization.
                events.append((decoded, msg.value() or b""))
                sources.append(msg)
        indexed = retries = 0
        if events:
            outcome = self._indexer.index(events)
            indexed, retries = outcome.indexed, outcome.retries
            letters.extend(
                DeadLetter(sources[r.position], ErrorKind.REJECTED, r.reason)
                for r in outcome.rejected
            )
        if letters:
            self._send_dead_letters(letters)
        if indexed + len(letters) != len(batch):
            raise KafkaFailure(
                f"batch accounting mismatch: {len(batch)} consumed, {indexed} indexed, "
                f"{len(letters)} dead-lettered; offsets not committed"
            )
        self._commit(batch)
        stats = self.stats
        stats.consumed += len(batch)
        stats.indexed += indexed
        stats.dead_lettered += len(letters)
        stats.retried += retries
        stats.batches += 1
        log.info(
            "batch",
            messages=len(batch),
            indexed=indexed,
            dead_lettered=len(letters),
            retried=retries,
            total=stats.consumed,
        )
        if self._on_batch is not None:
            self._on_batch(stats)

    def _send_dead_letters(self, letters: list[DeadLetter]) -> None:
        now = dt.datetime.now(dt.UTC)
        topic = self._kafka.dlq_topic
        self._dlq_failures.clear()
        for letter in letters:
            msg = letter.message
            self._dlq.produce(
                topic,
                msg.value(),
                msg.key(),
                headers=dead_letter_headers(letter, now),
                on_delivery=self._on_dlq_delivery,
            )
        remaining = self._dlq.flush(30.0)
        if remaining or self._dlq_failures:
            why = self._dlq_failures[0] if self._dlq_failures else f"{remaining} still in flight"
            raise KafkaFailure(
                f"could not write to dead-letter topic {topic!r}: {why}; offsets not committed"
            )
        kinds: dict[str, int] = {}
        for letter in letters:
            kinds[letter.kind] = kinds.get(letter.kind, 0) + 1
        first = letters[0]
        log.warning(
            "dead-lettered",
            topic=topic,
            count=len(letters),
            kinds=kinds,
            first_reason=first.reason[:200],
            first_partition=first.message.partition(),
            first_offset=first.message.offset(),
        )

    def _commit(self, batch: list[Message]) -> None:
        offsets = commit_offsets(batch)
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # A rebalance took the partitions first: their next owner replays the batch,
            # which overwrites the same documents (same ids). Nothing is lost.
            log.warning("commit failed; the batch will be replayed", error=kafka.describe(exc))
