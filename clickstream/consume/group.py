"""The consumer's place in its group: the librdkafka consumer as the loop uses it.

It joins as a static member by default (`clickstream.consume.membership`), so that a
restart after a crash takes its partitions back at once, and leaves the group when it stops,
so that its partitions move at once. It polls with librdkafka's errors made ours: a broker
that goes away is an outage (waited out), a fatal error (another process fenced this one
out) stops it. It pauses and resumes everything assigned to it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from clickstream import kafka, logs
from clickstream.consume import membership, status
from clickstream.consume.idle import GroupOffsets
from clickstream.errors import KafkaFailure, MemberFenced
from clickstream.retry import OUTAGE_LOG_EVERY, Outage
from clickstream.settings import KafkaSettings, Settings

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
#: While Kafka is unreachable and nothing arrives, how often to ask whether it is back.
KAFKA_PROBE_EVERY = 2.0
#: How long a stopping consumer waits for its partitions to be revoked as it leaves.
LEAVE_GRACE = 5.0
#: A stopping consumer polls at least this long after unsubscribing: a rejoin under way (after
#: a commit refused for an old generation, say) clears the member id for a moment, and the
#: leave must not be taken for done before it is sent.
LEAVE_AT_LEAST = 1.0

#: Builds the Kafka consumer from the callbacks the group needs (`error_cb`, `on_commit`).
ConsumerFactory = Callable[..., Consumer]


def make_consumer(
    settings: KafkaSettings, *, instance_id: str | None = None, **callbacks: Any
) -> Consumer:
    """The librdkafka consumer of the configured group, with the loop's callbacks; a static
    member named `instance_id` if given (`kafka.extra` may name it instead)."""
    defaults = {**CONSUMER_DEFAULTS, "group.id": settings.group_id}
    if instance_id is not None:
        defaults[membership.INSTANCE_ID] = instance_id
    return Consumer(kafka.client_config(settings, defaults, **callbacks))


class GroupMember:
    """One consumer of `source` in the configured group."""

    def __init__(
        self,
        settings: Settings,
        source: str,
        *,
        on_commit: Callable[..., None],
        consumer: ConsumerFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kafka = settings.kafka
        self.source = source
        self.group = settings.kafka.group_id
        self._clock = clock
        self.outage = Outage("kafka", clock=clock)
        self.paused = False
        self._probed = 0.0
        self._warned: dict[int, float] = {}
        self._fatal: KafkaError | None = None
        #: This consumer's static member id, claimed for it unless `kafka.extra` names one
        #: or `consumer.static_membership` is off; None: a dynamic member.
        self._claim: membership.Claim | None = None
        self.instance_id = settings.kafka.extra.get(membership.INSTANCE_ID)
        if consumer is None:
            if self.instance_id is None and settings.consumer.static_membership:
                self._claim = membership.claim(self.group, cluster=settings.kafka.bootstrap_servers)
                self.instance_id = self._claim.instance_id
            instance = self.instance_id if self._claim is not None else None
            consumer = lambda **cb: make_consumer(settings.kafka, instance_id=instance, **cb)  # noqa: E731
        self.consumer = consumer(error_cb=self.on_error, on_commit=on_commit)

    def require_topics(self, setup: str = "clickstream setup") -> None:
        """Fail with a clear error, naming the `setup` command that creates them, unless the
        broker answers and both topics exist."""
        bootstrap = self._kafka.bootstrap_servers
        kafka.require_topic(self.consumer, bootstrap, self.source, setup=setup)
        kafka.require_topic(self.consumer, bootstrap, self._kafka.dlq_topic, setup=setup)

    def join(self, **rebalance: Callable[[Consumer, Any], None]) -> None:
        """Subscribe, with the loop's rebalance callbacks."""
        self.consumer.subscribe([self.source], **rebalance)
        log.info(
            "joining group",
            group=self.group,
            topic=self.source,
            instance=self.instance_id or "(dynamic member)",
        )

    # -- errors ----------------------------------------------------------------------------

    def on_error(self, error: KafkaError) -> None:
        """librdkafka's error callback (the dead-letter producer's too)."""
        if error.fatal():
            self._fatal = self._fatal or error  # raised by the loop, on its own thread
            return
        if error.code() in kafka.UNAVAILABLE_CODES:
            self.outage.failed(kafka.describe(error), bootstrap=self._kafka.bootstrap_servers)
            return
        now = self._clock()
        if now - self._warned.get(error.code(), -OUTAGE_LOG_EVERY) >= OUTAGE_LOG_EVERY:
            self._warned[error.code()] = now
            log.warning(
                "kafka client error",
                bootstrap=self._kafka.bootstrap_servers,
                error=kafka.describe(error),
            )

    def fatal(self, error: KafkaError) -> KafkaFailure:
        """The error a fatal librdkafka error (this one, or the first one seen) stops with."""
        self._fatal = self._fatal or error
        text = kafka.describe(self._fatal)
        if "fenced" in text.lower():
            return MemberFenced(
                f"another consumer joined group {self.group!r} with this consumer's "
                f"group.instance.id {self.instance_id!r}, and the broker fenced this one out: "
                f"{text}",
                hint="give each consumer its own kafka.extra group.instance.id, or leave it "
                "unset: each consumer then claims one of its own",
            )
        return KafkaFailure(f"fatal consumer error: {text}")

    # -- reading ---------------------------------------------------------------------------

    def poll(self, *, num_messages: int, timeout: float) -> list[Message]:
        """Up to `num_messages` messages (and events), waiting at most `timeout`."""
        try:
            messages = self.consumer.consume(num_messages=num_messages, timeout=timeout)
        except KafkaException as exc:
            if self._fatal is None:
                raise kafka.wrap(
                    exc, f"consuming {self.source!r}", self._kafka.bootstrap_servers
                ) from None
            messages = []
        if self._fatal is not None:
            raise self.fatal(self._fatal)
        return messages

    def probe(self, added: int, now: float) -> None:
        """During a Kafka outage: is the broker back? Messages say so; else ask, now and then."""
        if not added:
            if now - self._probed < KAFKA_PROBE_EVERY:
                return
            self._probed = now
            try:
                self.consumer.list_topics(self.source, timeout=1.0)
            except KafkaException:
                return
        self.outage.recovered()

    def offsets(self) -> GroupOffsets:
        """The group's committed offset and lag per partition of the topic read."""
        found = status.read_offsets(
            self.consumer, self._kafka.bootstrap_servers, self.source, subscribed=True
        )
        return {p.partition: (p.committed, p.lag) for p in found}

    # -- pausing ---------------------------------------------------------------------------

    def pause(self) -> None:
        """Stop fetching for every assigned partition (also ones assigned since last time)."""
        assigned = self.consumer.assignment()
        if assigned:
            with contextlib.suppress(KafkaException):
                self.consumer.pause(assigned)
            self.paused = True

    def resume(self) -> bool:
        """Fetch again for every assigned partition; whether they were paused."""
        if not self.paused:
            return False
        self.paused = False
        with contextlib.suppress(KafkaException):
            self.consumer.resume(self.consumer.assignment())
        return True

    # -- leaving ---------------------------------------------------------------------------

    def _still_a_member(self) -> bool:
        return bool(self.consumer.assignment() or self.consumer.memberid())

    def close(self) -> None:
        """Leave the group, so that its partitions go to the others at once, and let go of
        the member id. librdkafka's close alone does not leave the group for a static member
        (KIP-345: it keeps its place for its restart); unsubscribing first does. Only a crash
        keeps the partitions waiting, for the crashed consumer's restart."""
        left = False
        with contextlib.suppress(KafkaException, RuntimeError):  # already closed
            self.consumer.unsubscribe()
            # Polled until the member id is gone: librdkafka drops it once it has left (a
            # rebalance under way may delay that); nothing polled here is handled.
            started = self._clock()
            while self._clock() - started < LEAVE_GRACE and (
                self._still_a_member() or self._clock() - started < LEAVE_AT_LEAST
            ):
                self.consumer.poll(0.05)
            left = not self._still_a_member()
            log.info("left the group" if left else "could not leave the group in time",
                     group=self.group, instance=self.instance_id or "(dynamic member)")  # fmt: skip
            self.consumer.close()
        if self._claim is not None:
            self._claim.release(left=left)
