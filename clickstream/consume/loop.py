"""The consume loop: poll, assemble batches, pause and resume, rebalances, stop and idle.

Its place in the group (joining, polling, pausing, leaving) is
`clickstream.consume.group`'s; `--until-idle` counts only time caught up
(`clickstream.consume.idle`). A batch is handed to
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

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from clickstream import logs
from clickstream.consume.batch import Abandon, BatchHandler, ConsumeStats
from clickstream.consume.group import ConsumerFactory, GroupMember, make_consumer
from clickstream.consume.idle import CaughtUp, UntilIdle
from clickstream.consume.offsets import Offsets
from clickstream.consume.pending import Pending
from clickstream.consume.rests import PartitionRests
from clickstream.deadletters import producer as dead_letters
from clickstream.kafka import PartitionKey
from clickstream.settings import Settings
from clickstream.sinks.base import Sink, WriteResult

__all__ = ["ConsumeStats", "ConsumerFactory", "EventConsumer", "make_consumer"]

log = logs.get("consumer")

#: How long one poll may block, so that stop requests are seen promptly.
POLL_SLICE = 0.2
#: While a batch is being written, how long one poll for the next batch may block: how
#: late, at most, the end of the write is noticed.
WRITING_POLL = 0.005
#: While a batch is being written and the next one is full, how long to wait without
#: polling before pausing the partitions and polling again (so that the group keeps us).
FULL_PATIENCE = 5.0
#: Builds the dead-letter producer's client from its `error_cb`.
ProducerFactory = Callable[..., dead_letters.KafkaProducer]


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
        self._inflight: set[PartitionKey] = set()
        self.revoked: set[PartitionKey] = set()
        self._track_idle = False
        self._stop = threading.Event()
        self.member = GroupMember(
            settings, self._source, on_commit=self._on_commit, consumer=consumer, clock=clock
        )
        self.kafka_outage = self.member.outage
        self._consumer = self.member.consumer
        self.caught_up_since = CaughtUp(self.member.group, clock)
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
            produce(error_cb=self.member.on_error),
            self._kafka.dlq_topic,
            self.kafka_outage,
            clock=clock,
        )
        self._sink = sink
        self._batches = BatchHandler(
            sink, letters, self._offsets, self._cfg, self.stats, on_batch=on_batch, clock=clock
        )
        self.sink_outage = self._batches.sink_outage

    # -- Kafka callbacks -------------------------------------------------------------------

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
        pending, cfg, member = self._pending, self._cfg, self.member
        # Kafka first, then the store: a broker that is down or topics never set up say so
        # before a store that `clickstream setup` has not prepared either.
        named = "" if cfg.sink == "opensearch" else f" --sink {cfg.sink}"
        member.require_topics(f"clickstream setup{named}")
        self._sink.check()
        member.join(on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke)
        self._track_idle = until_idle is not None
        idle = self.caught_up_since
        finish = UntilIdle(
            idle,
            until_idle or 0.0,
            topic=self._source,
            group=member.group,
            consumed=lambda: self.stats.consumed,
            read_offsets=member.offsets,
        )
        try:
            while not stop.is_set() and not pending.read_to_the_end():
                # At least one: messages that came while a batch was written may fill this one.
                wanted = max(cfg.batch_size - len(pending), 1)
                messages = member.poll(num_messages=wanted, timeout=self._rests.timeout(POLL_SLICE))
                now = self._clock()
                added = self._add_pending(messages, now)
                if self._rests.resting or self._rests.probing:
                    self._rests.tick()
                if self.kafka_outage.active:
                    member.probe(added, now)
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

    def close(self) -> None:
        """Leave the group: its partitions go to the others at once."""
        self.member.close()
        self._batches.close()

    def _on_event(self, msg: Message) -> None:
        """Handle what `consume` returned that is not a message: an error or an event."""
        error = msg.error()
        if error is None:
            return
        if error.code() == KafkaError._PARTITION_EOF:
            topic, partition = msg.topic(), msg.partition()
            if topic is not None and partition is not None:
                self.caught_up_since.reached_end(PartitionKey(topic, partition))
                if not self.member.paused:
                    self._rests.reached_end(topic, partition)
            return
        if error.fatal():
            raise self.member.fatal(error)
        self.member.on_error(error)

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

    def _resume(self) -> None:
        if self.member.resume():
            self._rests.clear()

    def wait(self, seconds: float, *, revocable: bool = True) -> None:
        """Wait `seconds` with consumption paused, still polling: the group keeps us, and
        rebalances and stop requests are seen. Raises `Abandon` on a stop request or, if
        `revocable`, when partitions of the in-flight batch were revoked."""
        deadline = self._clock() + seconds
        while True:
            self.member.pause()
            if self._stop.is_set():
                raise Abandon("stop requested")
            if revocable and self.revoked:
                raise Abandon("partitions revoked")
            left = deadline - self._clock()
            if left <= 0:
                return
            messages = self.member.poll(
                num_messages=self._cfg.batch_size, timeout=min(left, POLL_SLICE)
            )
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
                if not self.member.paused:
                    self.member.pause()
                timeout, wanted = 0, 1  # partitions assigned since the pause may deliver
            messages = self.member.poll(num_messages=wanted, timeout=timeout)
            self._add_pending(messages, self._clock())
            if not self.member.paused and (self._rests.resting or self._rests.probing):
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
        if wanted <= -self._cfg.batch_size and not self.member.paused:
            self.member.pause()
        messages = self.member.poll(num_messages=max(wanted, 1), timeout=0.005)
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
