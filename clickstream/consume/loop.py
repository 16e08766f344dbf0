"""The consume loop: poll, assemble batches, pause and resume, rebalances, stop and idle.

A consumer joins its group as a static member by default (`clickstream.consume.membership`),
so that a restart after a crash takes its partitions back at once; `--until-idle` counts
only time caught up (`clickstream.consume.idle`). A batch is handed to
`clickstream.consume.batch` and its offsets are committed by
`clickstream.consume.offsets` only once every message of it is stored or dead-lettered, so
a crash at any point replays (never loses) messages. While the sink or the broker is
unavailable, the loop keeps the in-flight batch, pauses its partitions (nothing more is
fetched, so memory stays bounded) and keeps polling, so that it stays in its group, until
the batch can be finished. Partitions read to their end rest (`clickstream.consume.rests`).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from clickstream import kafka, logs
from clickstream.consume import membership, status
from clickstream.consume.batch import Abandon, BatchHandler, ConsumeStats
from clickstream.consume.idle import CaughtUp, GroupOffsets, UntilIdle
from clickstream.consume.offsets import Offsets
from clickstream.consume.pending import Pending
from clickstream.consume.rests import PartitionRests
from clickstream.deadletters import producer as dead_letters
from clickstream.errors import KafkaFailure, MemberFenced
from clickstream.kafka import PartitionKey
from clickstream.retry import OUTAGE_LOG_EVERY, Outage
from clickstream.settings import KafkaSettings, Settings
from clickstream.sinks.base import Sink, WriteResult

__all__ = ["ConsumeStats", "EventConsumer", "make_consumer"]

log = logs.get("consumer")

#: librdkafka settings for the consumer; `kafka.extra` overrides them.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,  # we commit after writing, never before
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
#: How long one poll may block, so that stop requests are seen promptly.
POLL_SLICE = 0.2
#: While a batch is being written, how long one poll for the next batch may block: how
#: late, at most, the end of the write is noticed.
WRITING_POLL = 0.005
#: While a batch is being written and the next one is full, how long to wait without
#: polling before pausing the partitions and polling again (so that the group keeps us).
FULL_PATIENCE = 5.0
#: While Kafka is unreachable and nothing arrives, how often to ask whether it is back.
KAFKA_PROBE_EVERY = 2.0
#: How long a stopping consumer waits for its partitions to be revoked as it leaves.
LEAVE_GRACE = 5.0

#: Builds the Kafka consumer from the callbacks the loop needs (`error_cb`, `on_commit`).
ConsumerFactory = Callable[..., Consumer]
#: Builds the dead-letter producer's client from its `error_cb`.
ProducerFactory = Callable[..., dead_letters.KafkaProducer]


def make_consumer(
    settings: KafkaSettings, *, instance_id: str | None = None, **callbacks: Any
) -> Consumer:
    """The librdkafka consumer of the configured group, with the loop's callbacks; a static
    member named `instance_id` if given (`kafka.extra` may name it instead)."""
    defaults = {**CONSUMER_DEFAULTS, "group.id": settings.group_id}
    if instance_id is not None:
        defaults[membership.INSTANCE_ID] = instance_id
    return Consumer(kafka.client_config(settings, defaults, **callbacks))


class EventConsumer:
    """Reads a topic in a consumer group and hands batches to a sink."""

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        *,
        on_batch: Callable[[ConsumeStats], None] | None = None,
        source: str | None = None,
        stop_at: Mapping[int, int] | None = None,
        consumer: ConsumerFactory | None = None,
        dead_letter_client: ProducerFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`source` is the topic to read (the events topic by default); with `stop_at`
        (partition -> end offset) the run ends once every listed partition is read to there.
        `consumer` and `dead_letter_client` build the Kafka clients (tests script them)."""
        self._kafka = settings.kafka
        self._cfg = settings.consumer
        self._source = source or settings.kafka.topic
        self._clock = clock
        self.stats = ConsumeStats(started=clock())
        self._pending = Pending(stop_at)
        self._probed = 0.0
        self._inflight: set[PartitionKey] = set()
        self.revoked: set[PartitionKey] = set()
        self._paused = False
        self._track_idle = False
        self._stop = threading.Event()
        self.kafka_outage = Outage("kafka", clock=clock)
        self._warned: dict[int, float] = {}
        self._fatal: KafkaError | None = None
        self._group = settings.kafka.group_id
        self.caught_up_since = CaughtUp(self._group, clock)
        #: This consumer's static member id, claimed for it unless `kafka.extra` names one
        #: or `consumer.static_membership` is off; None: a dynamic member.
        self._claim: membership.Claim | None = None
        self.instance_id = settings.kafka.extra.get(membership.INSTANCE_ID)
        if consumer is None:
            if self.instance_id is None and self._cfg.static_membership:
                self._claim = membership.claim(self._group)
                self.instance_id = self._claim.instance_id
            instance = self.instance_id if self._claim is not None else None
            consumer = lambda **cb: make_consumer(settings.kafka, instance_id=instance, **cb)  # noqa: E731
        self._consumer = consumer(error_cb=self._on_error, on_commit=self._on_commit)
        self._rests = PartitionRests(self._consumer, clock=clock)
        rng = random.Random()
        self._offsets = Offsets(
            self._consumer,
            self._cfg,
            self.kafka_outage,
            poll=self._poll_while_committing,
            wait=self._wait_to_commit,
            stopping=self._stopping,
            rng=rng,
            clock=clock,
        )
        produce = dead_letter_client or (
            lambda **cb: dead_letters.make_producer(settings.kafka, **cb)
        )
        letters = dead_letters.DeadLetterProducer(
            produce(error_cb=self._on_error), self._kafka.dlq_topic, self.kafka_outage, clock=clock
        )
        self._batches = BatchHandler(
            sink, letters, self._offsets, self._cfg, self.stats, on_batch=on_batch, clock=clock
        )
        self.sink_outage = self._batches.sink_outage

    # -- Kafka callbacks -------------------------------------------------------------------

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = self._fatal or error  # raised by the loop, on its own thread
            return
        if error.code() in kafka.UNAVAILABLE_CODES:
            self.kafka_outage.failed(kafka.describe(error), bootstrap=self._kafka.bootstrap_servers)
            return
        now = self._clock()
        if now - self._warned.get(error.code(), -OUTAGE_LOG_EVERY) >= OUTAGE_LOG_EVERY:
            self._warned[error.code()] = now
            log.warning(
                "kafka client error",
                bootstrap=self._kafka.bootstrap_servers,
                error=kafka.describe(error),
            )

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """A rebalance is over: these are ours (librdkafka assigns them after this)."""
        self.caught_up_since.assign(PartitionKey(tp.topic, tp.partition) for tp in partitions)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Abandon (never half-commit) the pending messages of partitions we lose."""
        lost = {PartitionKey(tp.topic, tp.partition) for tp in partitions}
        self.caught_up_since.revoke(lost)
        dropped = self._pending.drop(lost)
        if dropped:
            self.stats.abandoned += dropped
            log.info(
                "partitions revoked; pending messages left for their next owner",
                partitions=sorted(lost),
                abandoned=dropped,
            )
        self.revoked |= self._inflight & lost
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

    # -- the loop --------------------------------------------------------------------------

    def run(
        self, *, until_idle: float | None = None, stop: threading.Event | None = None
    ) -> ConsumeStats:
        """Consume until `stop` is set or, with `until_idle`, the consumer has been caught up
        (every assigned partition read to its end) for that long."""
        self._stop = stop = stop or threading.Event()
        bootstrap, pending, cfg = self._kafka.bootstrap_servers, self._pending, self._cfg
        kafka.require_topic(self._consumer, bootstrap, self._source)
        kafka.require_topic(self._consumer, bootstrap, self._kafka.dlq_topic)
        self._consumer.subscribe(
            [self._source],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        log.info(
            "joining group",
            group=self._group,
            topic=self._source,
            instance=self.instance_id or "(dynamic member)",
        )
        self._track_idle = until_idle is not None
        idle = self.caught_up_since
        finish = UntilIdle(
            idle,
            until_idle or 0.0,
            topic=self._source,
            group=self._group,
            consumed=lambda: self.stats.consumed,
            read_offsets=self._group_offsets,
        )
        try:
            while not stop.is_set() and not pending.read_to_the_end():
                # At least one: messages that came while a batch was written may fill this one.
                wanted = max(cfg.batch_size - len(pending), 1)
                messages = self._poll(num_messages=wanted, timeout=self._rests.timeout(POLL_SLICE))
                now = self._clock()
                added = self._add_pending(messages, now)
                if self._rests.resting or self._rests.probing:
                    self._rests.tick()
                if self.kafka_outage.active:
                    self._probe_kafka(added, now)
                    idle.busy()  # an outage is not idleness
                idle.tick(pending=bool(len(pending)))
                if len(pending) and (
                    len(pending) >= cfg.batch_size
                    or now - pending.started >= cfg.batch_timeout
                    or pending.read_to_the_end(pending=True)
                ):
                    self._process(pending.take(cfg.batch_size, now))
                elif until_idle is not None and not len(pending) and finish.over():
                    log.info("idle; stopping", idle_seconds=until_idle)
                    break
            if len(pending):
                self._process(pending.take(cfg.batch_size, self._clock()))
            self._offsets.commit()
            if until_idle is not None and not stop.is_set():
                finish.check()
        finally:
            self.stats.finished = self._clock()
            self.close()
        return self.stats

    def _poll(self, *, num_messages: int, timeout: float) -> list[Message]:
        """Up to `num_messages` messages (and events), waiting at most `timeout`."""
        try:
            messages = self._consumer.consume(num_messages=num_messages, timeout=timeout)
        except KafkaException as exc:
            if self._fatal is None:
                raise kafka.wrap(
                    exc, f"consuming {self._source!r}", self._kafka.bootstrap_servers
                ) from None
            messages = []
        if self._fatal is not None:
            raise self._fatal_failure()
        return messages

    def _group_offsets(self) -> GroupOffsets:
        """The group's committed offset and lag per partition of the topic read."""
        found = status.read_offsets(self._consumer, self._kafka.bootstrap_servers, self._source)
        return {p.partition: (p.committed, p.lag) for p in found}

    def _fatal_failure(self) -> KafkaFailure:
        """The error a fatal librdkafka error stops the consumer with."""
        assert self._fatal is not None  # noqa: S101 - only called once one happened
        text = kafka.describe(self._fatal)
        if "fenced" in text.lower():
            return MemberFenced(
                f"another consumer joined group {self._group!r} with this consumer's "
                f"group.instance.id {self.instance_id!r}, and the broker fenced this one out: "
                f"{text}",
                hint="give each consumer its own kafka.extra group.instance.id, or leave it "
                "unset: each consumer then claims one of its own",
            )
        return KafkaFailure(f"fatal consumer error: {text}")

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
        """Leave the group: its partitions go to the others at once."""
        with contextlib.suppress(KafkaException, RuntimeError):  # already closed
            self._leave_group()
            self._consumer.close()
        self._batches.close()
        if self._claim is not None:
            self._claim.release()

    def _leave_group(self) -> None:
        """Unsubscribe and wait for the partitions to go before closing. librdkafka's close
        alone does not leave the group for a static member (KIP-345: it keeps its place for
        its restart); unsubscribing does. So a stop hands the partitions over at once, and
        only a crash keeps them waiting, for the crashed consumer's restart."""
        self._consumer.unsubscribe()
        deadline = self._clock() + LEAVE_GRACE
        while self._consumer.assignment() and self._clock() < deadline:
            self._consumer.poll(0.05)  # serves the revocation; nothing more is handled
        self._consumer.poll(0.05)  # lets the leave request go out

    def _on_event(self, msg: Message) -> None:
        """Handle what `consume` returned that is not a message: an error or an event."""
        error = msg.error()
        if error is None:
            return
        if error.code() == KafkaError._PARTITION_EOF:
            topic, partition = msg.topic(), msg.partition()
            if topic is not None and partition is not None:
                self.caught_up_since.reached_end(PartitionKey(topic, partition))
                if not self._paused:
                    self._rests.reached_end(topic, partition)
            return
        if error.fatal():
            self._fatal = self._fatal or error
            raise self._fatal_failure()
        self._on_error(error)

    def _add_pending(self, messages: list[Message], now: float) -> int:
        """Add fetched messages to the next batch; how many were messages (not events such
        as a partition's end) within the replay bound."""
        accepted = [msg for msg in messages if msg.error() is None]
        if len(accepted) < len(messages):
            for msg in messages:
                if msg.error() is not None:
                    self._on_event(msg)
        accepted = self._pending.add(accepted, now)
        if accepted and (self._rests.probing or self._track_idle):
            keys = {PartitionKey.of(msg) for msg in accepted}
            if self._rests.probing:
                self._rests.received(keys)
            if self._track_idle:
                self.caught_up_since.received(keys)
        return len(accepted)

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

    def wait(self, seconds: float, *, revocable: bool = True) -> None:
        """Wait `seconds` with consumption paused, still polling: the group keeps us, and
        rebalances and stop requests are seen. Raises `Abandon` on a stop request or, if
        `revocable`, when partitions of the in-flight batch were revoked."""
        deadline = self._clock() + seconds
        while True:
            self._pause()
            if self._stop.is_set():
                raise Abandon("stop requested")
            if revocable and self.revoked:
                raise Abandon("partitions revoked")
            left = deadline - self._clock()
            if left <= 0:
                return
            messages = self._poll(num_messages=self._cfg.batch_size, timeout=min(left, POLL_SLICE))
            # Only partitions assigned since the last pause can deliver: keep them pending.
            self._add_pending(messages, self._clock())

    def await_write(self, write: Future[WriteResult], abandon: threading.Event) -> WriteResult:
        """While a batch is written in the background, read the next one and rest partitions
        read to their end. Once the next batch is full, just wait: librdkafka's queue behind
        it is bounded too. Should the write take long (retries), pause fetching and poll
        now and then, to stay in the group. A stop request or a revocation of the batch's
        partitions sets `abandon`, which cuts the sink's retries short."""
        full_since: float | None = None
        while not write.done():
            if self._stop.is_set() or self.revoked:
                abandon.set()
            wanted = self._cfg.batch_size - len(self._pending)
            if wanted > 0:
                timeout = self._rests.timeout(WRITING_POLL)
            else:
                # Pausing discards what librdkafka has fetched ahead: only for long waits.
                full_since = full_since or self._clock()
                wait_for([write], timeout=POLL_SLICE)
                if self._clock() - full_since < FULL_PATIENCE:
                    continue
                if not self._paused:
                    self._pause()
                timeout, wanted = 0, 1  # partitions assigned since the pause may deliver
            messages = self._poll(num_messages=wanted, timeout=timeout)
            self._add_pending(messages, self._clock())
            if not self._paused and (self._rests.resting or self._rests.probing):
                self._rests.tick()
        return write.result()

    def caught_up(self) -> bool:
        return not len(self._pending)

    # -- one batch -------------------------------------------------------------------------

    def _process(self, batch: list[Message]) -> None:
        """Store or dead-letter every message of `batch`, then commit its offsets; or, on a
        stop request or a revocation while the sink or Kafka is away, abandon it (or its
        revoked part) uncommitted, for a replay."""
        try:
            while batch:
                self._inflight = {PartitionKey.of(m) for m in batch}
                self.revoked = set()
                try:
                    self._batches.handle(batch, self)
                except Abandon as why:
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
        return [m for m in batch if PartitionKey.of(m) not in self.revoked]

    # -- committing while keeping the group membership -------------------------------------

    def _poll_while_committing(self) -> None:
        """Poll once, briefly, while a commit is awaited: it serves the commit's result and
        may bring messages beyond the next batch (which `Pending.take` leaves for the one
        after), but not without limit."""
        wanted = self._cfg.batch_size - len(self._pending)
        if wanted <= -self._cfg.batch_size and not self._paused:
            self._pause()
        messages = self._poll(num_messages=max(wanted, 1), timeout=0.005)
        self._add_pending(messages, self._clock())

    def _stopping(self) -> bool:
        return self._stop.is_set()  # `run` may be given its own stop event

    def _wait_to_commit(self, seconds: float) -> bool:
        """Wait between commit attempts, paused and polling; False on a stop request."""
        try:
            self.wait(seconds, revocable=False)
        except Abandon:
            return False
        return True
