"""The Kafka side of `consume`: batching, validation, dead letters, commits, rebalances.

Every consumed message ends in exactly one of two places: indexed in OpenSearch,
or in the dead-letter topic with headers saying why and where it came from. A
batch's offsets are committed only after all of its messages got there, so a
crash at any point replays (never loses) messages; replays overwrite themselves
in the index because the document id is the event id.

How a message is checked is `clickstream.consume.decode`'s, what a dead letter carries is
`clickstream.deadletters.letter`', and how an outage is said is `clickstream.retry`'s.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from typing import Any, Protocol, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from clickstream import kafka, logs
from clickstream.consume.decode import decode
from clickstream.consume.offsets import Offsets
from clickstream.consume.rests import Rests
from clickstream.deadletters.letter import DeadLetter, ErrorKind, dead_letter_headers
from clickstream.errors import KafkaFailure, OpenSearchUnavailable
from clickstream.retry import OUTAGE_LOG_EVERY, Outage
from clickstream.settings import Settings
from clickstream.sinks.opensearch.bulk import BulkItem, Document, IndexResult, backoff_delay
from clickstream.stats import Timed

log = logs.get("consumer")

#: librdkafka settings for the indexing consumer, on top of the connection settings.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,  # we commit after indexing, never before
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
    # librdkafka fetches again only once the consumer has taken all it fetched: the
    # consumer reads a batch ahead itself, so fetching further ahead buys nothing. Worse, a
    # fetcher that reaches a partition's end long before the consumer does keeps asking
    # for more meanwhile, and a broker that answers an empty fetch at once (rather than
    # holding it for `fetch.wait.max.ms`) is asked thousands of times a second. A partition
    # end waiting in the queue stops this; the consumer then rests the partition.
    "queued.min.messages": 1,
    # Bound what one fetch brings (memory); look for a drained queue every 100 ms.
    "queued.max.messages.kbytes": 16384,
    "fetch.queue.backoff.ms": 100,
    # Say when a partition is read to its end: it then rests (see `clickstream.consume.rests`).
    "enable.partition.eof": True,
}
#: librdkafka settings for the dead-letter producer: it waits out broker outages instead of
#: failing the letters (0 = no delivery timeout); the consumer stays paused meanwhile.
DLQ_PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "linger.ms": 5,
    "message.timeout.ms": 0,
}
#: How long one poll may block, so that stop requests are seen promptly.
POLL_SLICE = 0.2
#: While a batch is being indexed, how long one poll for the next batch may block: how
#: late, at most, the end of the indexing is noticed.
INDEXING_POLL = 0.005
#: While a batch is being indexed and the next one is full, how long to wait without
#: polling before pausing the partitions and polling again (so that the group keeps us).
FULL_PATIENCE = 5.0
#: While Kafka is unreachable and nothing arrives, how often to ask whether it is back.
KAFKA_PROBE_EVERY = 2.0


@dataclass
class ConsumeStats(Timed):
    """Counts of one consume run; consumed == indexed + dead_lettered after every batch."""

    consumed: int = 0
    indexed: int = 0
    dead_lettered: int = 0
    retried: int = 0
    batches: int = 0
    abandoned: int = 0

    @property
    def done(self) -> int:
        return self.consumed

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
    """Writes a batch of events; positions in the result's `rejected` refer to the batch.

    `wait` is how to wait between attempts, `attempts` how many to make before raising
    `OpenSearchUnavailable`; None means the indexer's own.
    """

    def index(
        self,
        items: Sequence[BulkItem],
        *,
        wait: Callable[[float], None] | None = None,
        attempts: int | None = None,
    ) -> IndexResult: ...


class _Abandon(Exception):
    """The in-flight batch is given up uncommitted: a stop was requested or it was revoked."""


class EventConsumer:
    """Reads the events topic in a consumer group and hands batches to an indexer.

    While OpenSearch or the broker is unavailable, the consumer keeps the in-flight batch,
    pauses its partitions (nothing more is fetched, so memory stays bounded) and keeps
    polling, so that it stays in its group, until the batch can be finished.
    """

    def __init__(
        self,
        settings: Settings,
        indexer: Indexer,
        *,
        on_batch: Callable[[ConsumeStats], None] | None = None,
        source: str | None = None,
        stop_at: Mapping[int, int] | None = None,
    ) -> None:
        """`source` is the topic to read (the events topic by default); with `stop_at`
        (partition -> end offset) the run ends once every listed partition is read to there."""
        self._settings = settings
        self._kafka = settings.kafka
        self._cfg = settings.consumer
        self._indexer = indexer
        self._on_batch = on_batch
        self._source = source or settings.kafka.topic
        self._stop_at = dict(stop_at) if stop_at is not None else None
        self.stats = ConsumeStats()
        self._batch: list[Message] = []
        self._batch_started = 0.0
        self._probed = 0.0
        self._inflight: set[tuple[str, int]] = set()
        self._revoked: set[tuple[str, int]] = set()
        self._paused = False
        self._stop = threading.Event()
        self._rng = random.Random()
        self.search_outage = Outage("opensearch")
        self.kafka_outage = Outage("kafka")
        self._warned: dict[int, float] = {}
        base = settings.kafka.client_config()
        self._consumer = Consumer(
            {
                **base,
                **CONSUMER_DEFAULTS,
                "group.id": settings.kafka.group_id,
                "error_cb": self._on_error,
                "on_commit": self._on_commit,
                **settings.kafka.extra,
            }
        )
        self._rests = Rests(self._consumer)
        self._offsets = Offsets(
            self._consumer,
            self._cfg,
            self.kafka_outage,
            poll=self._poll_while_committing,
            wait=self._wait_to_commit,
            stopping=self._stopping,
            rng=self._rng,
        )
        # Indexing runs in this thread while the main one reads ahead and keeps polling.
        self._indexing = ThreadPoolExecutor(1, thread_name_prefix="clickstream-index")
        self._abandon = threading.Event()
        self._dlq = Producer({**base, **DLQ_PRODUCER_DEFAULTS, "error_cb": self._on_error})
        self._dlq_failures: list[str] = []

    # -- Kafka callbacks -------------------------------------------------------------------

    def _on_error(self, error: KafkaError) -> None:
        if error.code() in kafka.UNAVAILABLE_CODES:
            self.kafka_outage.failed(kafka.describe(error), bootstrap=self._kafka.bootstrap_servers)
            return
        now = time.monotonic()
        if now - self._warned.get(error.code(), -OUTAGE_LOG_EVERY) >= OUTAGE_LOG_EVERY:
            self._warned[error.code()] = now
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
        self._revoked |= self._inflight & lost
        unsaid = self._offsets.revoked(lost)
        if unsaid:
            log.info(
                "partitions revoked before their last batches were committed; "
                "their next owner replays them",
                partitions=unsaid,
            )
        self._rests.forget(lost)
        # A pause outlives the assignment: were these partitions assigned to us again, they
        # would stay paused. Leave them unpaused (a wait in progress pauses what it gets).
        with contextlib.suppress(KafkaException):
            self._consumer.resume(partitions)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        self._offsets.on_commit(error, partitions)

    def _on_dlq_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._dlq_failures.append(kafka.describe(error))

    # -- the loop --------------------------------------------------------------------------

    def run(
        self, *, until_idle: float | None = None, stop: threading.Event | None = None
    ) -> ConsumeStats:
        """Consume until `stop` is set or, with `until_idle`, no message came for that long."""
        self._stop = stop = stop or threading.Event()
        topic = self._source
        kafka.require_topic(self._consumer, self._kafka.bootstrap_servers, topic)
        kafka.require_topic(self._consumer, self._kafka.bootstrap_servers, self._kafka.dlq_topic)
        self._consumer.subscribe([topic], on_revoke=self._on_revoke, on_lost=self._on_revoke)
        cfg = self._cfg
        last_message_at = time.monotonic()
        try:
            while not stop.is_set() and not self._read_to_the_end():
                # At least one: messages that came while a batch was indexed may fill this one.
                wanted = max(cfg.batch_size - len(self._batch), 1)
                messages = self._poll(num_messages=wanted, timeout=self._rests.timeout(POLL_SLICE))
                now = time.monotonic()
                added = self._add_pending(messages, now)
                if self._rests.resting or self._rests.probing:
                    self._rests.tick()
                if self.kafka_outage.active:
                    self._probe_kafka(added, now)
                if added or self.kafka_outage.active:  # an outage is not idleness
                    last_message_at = now
                if self._batch and (
                    len(self._batch) >= cfg.batch_size
                    or now - self._batch_started >= cfg.batch_timeout
                    or self._read_to_the_end(pending=True)
                ):
                    self._process(self._take_batch())
                    last_message_at = time.monotonic()
                elif (
                    until_idle is not None
                    and not self._batch
                    and now - last_message_at >= until_idle
                ):
                    log.info("idle; stopping", idle_seconds=until_idle)
                    break
            if self._batch:
                self._process(self._take_batch())
            self._offsets.commit()
        finally:
            self.stats.finished = time.monotonic()
            self.close()
        return self.stats

    def _poll(self, *, num_messages: int, timeout: float) -> list[Message]:
        """Up to `num_messages` messages (and events), waiting at most `timeout`."""
        try:
            return self._consumer.consume(num_messages=num_messages, timeout=timeout)
        except KafkaException as exc:
            raise kafka.wrap(
                exc, f"consuming {self._source!r}", self._kafka.bootstrap_servers
            ) from None

    def _probe_kafka(self, added: int, now: float) -> None:
        """During a Kafka outage: is the broker back? Messages say so; else ask, now and then."""
        if not added:
            if now - self._probed < KAFKA_PROBE_EVERY:
                return
            self._probed = now
            try:
                self._consumer.list_topics(self._source, timeout=1.0)
            except KafkaException:
                return
        self.kafka_outage.recovered()

    def close(self) -> None:
        """Leave the group (its partitions go to the others at once)."""
        with contextlib.suppress(KafkaException, RuntimeError):  # already closed
            self._consumer.close()
        self._indexing.shutdown(wait=False)

    def _read_to_the_end(self, *, pending: bool = False) -> bool:
        """With `stop_at`: whether every listed partition is read (and, unless `pending`,
        handled) up to its end offset."""
        if self._stop_at is None or (self._batch and not pending):
            return False
        return not self._stop_at

    def _on_event(self, msg: Message) -> None:
        """Handle what `consume` returned that is not a message: an error or an event."""
        error = msg.error()
        if error is None:
            return
        if error.code() == KafkaError._PARTITION_EOF:
            topic, partition = msg.topic(), msg.partition()
            if not self._paused and topic is not None and partition is not None:
                self._rests.reached_end(topic, partition)
            return
        if error.fatal():
            raise KafkaFailure(f"fatal consumer error: {kafka.describe(error)}")
        self._on_error(error)

    def _within_stop_at(self, msg: Message) -> bool:
        """Whether `msg` comes before its partition's end offset; notes a partition's end."""
        assert self._stop_at is not None  # noqa: S101 - only called with stop_at
        partition, offset = msg.partition() or 0, msg.offset() or 0
        end = self._stop_at.get(partition)
        if end is None or offset >= end:
            return False
        if offset + 1 >= end:
            del self._stop_at[partition]
        return True

    def _take_batch(self) -> list[Message]:
        """The next batch: at most `batch_size` of the pending messages, in order."""
        size = self._cfg.batch_size
        batch, self._batch = self._batch[:size], self._batch[size:]
        if self._batch:
            self._batch_started = time.monotonic()
        return batch

    # -- waiting while keeping the group membership ----------------------------------------

    def _pause(self) -> None:
        """Stop fetching for every assigned partition (also ones assigned since last time)."""
        assigned = self._consumer.assignment()
        if assigned:
            with contextlib.suppress(KafkaException):
                self._consumer.pause(assigned)
            self._paused = True

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            self._rests.clear()
            with contextlib.suppress(KafkaException):
                self._consumer.resume(self._consumer.assignment())

    def _wait(self, seconds: float, *, revocable: bool = True) -> None:
        """Wait `seconds` with consumption paused, still polling: the group keeps us, and
        rebalances and stop requests are seen. Raises `_Abandon` on a stop request or, if
        `revocable`, when partitions of the in-flight batch were revoked."""
        deadline = time.monotonic() + seconds
        while True:
            self._pause()
            if self._stop.is_set():
                raise _Abandon("stop requested")
            if revocable and self._revoked:
                raise _Abandon("partitions revoked")
            left = deadline - time.monotonic()
            if left <= 0:
                return
            messages = self._poll(num_messages=self._cfg.batch_size, timeout=min(left, POLL_SLICE))
            # Only partitions assigned since the last pause can deliver: keep them pending.
            self._add_pending(messages, time.monotonic())

    def _add_pending(self, messages: list[Message], now: float) -> int:
        """Add fetched messages to the next batch (the batch's clock starts with its first);
        how many were messages (not events such as a partition's end)."""
        accepted = [msg for msg in messages if msg.error() is None]
        if len(accepted) < len(messages):
            for msg in messages:
                if msg.error() is not None:
                    self._on_event(msg)
        if self._stop_at is not None:
            accepted = [msg for msg in accepted if self._within_stop_at(msg)]
        if accepted:
            if not self._batch:
                self._batch_started = now
            self._batch.extend(accepted)
            if self._rests.probing:
                self._rests.received(
                    {(msg.topic() or "", msg.partition() or 0) for msg in accepted}
                )
        return len(accepted)

    # -- one batch -------------------------------------------------------------------------

    def _process(self, batch: list[Message]) -> None:
        """Index or dead-letter every message of `batch`, then commit its offsets; or, on a
        stop request or a revocation while OpenSearch or Kafka is away, abandon it (or its
        revoked part) uncommitted, for a replay."""
        try:
            while batch:
                self._inflight = {(m.topic() or "", m.partition() or 0) for m in batch}
                self._revoked = set()
                try:
                    self._handle(batch)
                except _Abandon as why:
                    keep = [] if self._stop.is_set() else self._still_ours(batch)
                    self.stats.abandoned += len(batch) - len(keep)
                    log.warning(
                        "in-flight batch abandoned uncommitted; it will be replayed",
                        why=str(why),
                        abandoned=len(batch) - len(keep),
                        kept=len(keep),
                    )
                    batch = keep
                else:
                    return
        finally:
            self._inflight = set()
            self._resume()

    def _still_ours(self, batch: list[Message]) -> list[Message]:
        return [m for m in batch if (m.topic(), m.partition()) not in self._revoked]

    def _handle(self, batch: list[Message]) -> None:
        events: list[Document] = []
        sources: list[Message] = []
        letters: list[DeadLetter] = []
        for msg in batch:
            decoded = decode(msg)
            if type(decoded) is Document:
                events.append(decoded)
                sources.append(msg)
            else:
                letters.append(cast(DeadLetter, decoded))
        indexed = retries = 0
        if events:
            outcome = self._index(events)
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
        self._offsets.handled(batch, self._revoked)
        if self._offsets.due(caught_up=not self._batch):
            self._offsets.commit()
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

    def _index(self, events: list[Document]) -> IndexResult:
        """Index `events`, riding out an OpenSearch outage of any length."""
        outage, attempt = self.search_outage, 0
        while True:
            attempts = 1 if outage.active else None
            self._abandon.clear()
            try:
                result = self._await_indexing(
                    self._indexing.submit(
                        self._indexer.index, events, wait=self._pause_indexing, attempts=attempts
                    )
                )
            except OpenSearchUnavailable as exc:
                outage.failed(str(exc), pending=len(events))
                attempt += 1
                self.stats.retried += 1
                cfg = self._cfg
                self._wait(backoff_delay(attempt, cfg.retry_initial, cfg.retry_max, self._rng))
                continue
            outage.recovered()
            return result

    def _await_indexing(self, indexing: Future[IndexResult]) -> IndexResult:
        """While a batch is indexed in the background, read the next one and rest partitions
        read to their end. Once the next batch is full, just wait: librdkafka's queue behind
        it is bounded too. Should the indexing take long (retries), pause fetching and poll
        now and then, to stay in the group. A stop request or a revocation of the batch's
        partitions cuts the indexer's retries short."""
        full_since: float | None = None
        while not indexing.done():
            if self._stop.is_set() or self._revoked:
                self._abandon.set()
            wanted = self._cfg.batch_size - len(self._batch)
            if wanted > 0:
                timeout = self._rests.timeout(INDEXING_POLL)
            else:
                # Pausing discards what librdkafka has fetched ahead: only for long waits.
                full_since = full_since or time.monotonic()
                wait_for([indexing], timeout=POLL_SLICE)
                if time.monotonic() - full_since < FULL_PATIENCE:
                    continue
                if not self._paused:
                    self._pause()
                timeout, wanted = 0, 1  # partitions assigned since the pause may deliver
            messages = self._poll(num_messages=wanted, timeout=timeout)
            self._add_pending(messages, time.monotonic())
            if not self._paused and (self._rests.resting or self._rests.probing):
                self._rests.tick()
        return indexing.result()

    def _pause_indexing(self, seconds: float) -> None:
        """How the indexer waits between its attempts: in its thread, and cut short by a stop
        request or a revocation (see `_await_indexing`)."""
        if self._abandon.wait(seconds):
            raise _Abandon("stop requested or partitions revoked")

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
        started = time.monotonic()
        while True:
            remaining = self._dlq.flush(1.0)
            if self._dlq_failures:
                raise KafkaFailure(
                    f"could not write to dead-letter topic {topic!r}: {self._dlq_failures[0]}; "
                    "offsets not committed"
                )
            if not remaining:
                break
            if time.monotonic() - started > 5.0:
                self.kafka_outage.failed(f"{remaining} dead letters not delivered", topic=topic)
            self._wait(0.0, revocable=False)
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

    def _poll_while_committing(self) -> None:
        """Poll once, briefly, while a commit is awaited: it serves the commit's result and
        may bring messages beyond the next batch (which `_take_batch` leaves for the one
        after), but not without limit."""
        wanted = self._cfg.batch_size - len(self._batch)
        if wanted <= -self._cfg.batch_size and not self._paused:
            self._pause()
        messages = self._poll(num_messages=max(wanted, 1), timeout=0.005)
        self._add_pending(messages, time.monotonic())

    def _stopping(self) -> bool:
        return self._stop.is_set()  # `run` may be given its own stop event

    def _wait_to_commit(self, seconds: float) -> bool:
        """Wait between commit attempts, paused and polling; False on a stop request."""
        try:
            self._wait(seconds, revocable=False)
        except _Abandon:
            return False
        return True
