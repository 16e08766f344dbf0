"""A scripted stand-in for librdkafka's consumer and producer, and a clock that moves only
when they block: the consume loop runs against them in milliseconds, without a broker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from confluent_kafka import KafkaError, Message, TopicPartition

from clickstream.kafka import PartitionKey


class Clock:
    """Monotonic time that passes only when a poll blocks."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def end_of(topic: str, partition: int, offset: int) -> Message:
    """The event librdkafka returns when a partition is read to its end."""
    return Message(
        topic=topic, partition=partition, offset=offset, error=KafkaError(KafkaError._PARTITION_EOF)
    )


@dataclass
class ScriptedConsumer:
    """Returns the scripted `polls` in order, one per `consume` call; then, as librdkafka
    does, the end of each assigned partition that is not paused (once per end reached),
    then nothing (the clock moves on by the poll's timeout). The group assigns every
    partition at `assign_at` on the clock (None: never). `triggers` run before a poll once
    their condition holds: that is how a test revokes partitions or stops the run."""

    clock: Clock
    polls: list[list[Message]]
    partitions: int = 2
    topics: tuple[str, ...] = ("events", "events.dlq")
    triggers: list[tuple[Callable[[], bool], Callable[[ScriptedConsumer], None]]] = field(
        default_factory=list
    )
    assigned: set[PartitionKey] = field(default_factory=set)
    paused: set[PartitionKey] = field(default_factory=set)
    ever_paused: list[PartitionKey] = field(default_factory=list)
    commits: list[list[TopicPartition]] = field(default_factory=list)
    callbacks: dict[str, Any] = field(default_factory=dict)
    _unanswered: list[list[TopicPartition]] = field(default_factory=list)
    assign_at: float | None = 0.0
    left: bool = False
    #: The partitions the group assigns to this consumer (None: all of them).
    owned: tuple[int, ...] | None = None
    #: The end offset of partitions, for `get_watermark_offsets` (0 if not named).
    ends: dict[PartitionKey, int] = field(default_factory=dict)
    _on_revoke: Callable[[Any, list[TopicPartition]], None] | None = None
    _on_assign: Callable[[Any, list[TopicPartition]], None] | None = None
    _topic: str = ""
    _ends_said: set[PartitionKey] = field(default_factory=set)
    _assigned_once: bool = False

    def connect(self, **callbacks: Any) -> ScriptedConsumer:
        """The loop's consumer factory: keeps its callbacks, returns this consumer."""
        self.callbacks = callbacks
        return self

    def list_topics(self, topic: str | None = None, timeout: float = 0) -> Any:
        parts = dict.fromkeys(range(self.partitions))
        found = {name: SimpleNamespace(error=None, partitions=parts) for name in self.topics}
        return SimpleNamespace(topics=found)

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self._on_revoke = callbacks["on_revoke"]
        self._on_assign = callbacks["on_assign"]
        self._topic = topics[0]

    def _maybe_assign(self) -> None:
        """The first rebalance completes once the clock reaches `assign_at`."""
        if self.assign_at is None or self.clock.now < self.assign_at or self._assigned_once:
            return
        self._assigned_once = True
        owned = range(self.partitions) if self.owned is None else self.owned
        self.assigned = {PartitionKey(self._topic, p) for p in owned}
        assert self._on_assign is not None
        self._on_assign(self, [TopicPartition(*key) for key in sorted(self.assigned)])

    def revoke(self, *keys: PartitionKey) -> None:
        """Take partitions away, as a rebalance does: revoked, then the rest assigned."""
        assert self._on_revoke is not None
        assert self._on_assign is not None
        self._on_revoke(self, [TopicPartition(*key) for key in keys])
        self.assigned -= set(keys)
        self._on_assign(self, [TopicPartition(*key) for key in sorted(self.assigned)])

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        for answered in self._unanswered:
            self.callbacks["on_commit"](None, answered)
        self._unanswered.clear()
        self._maybe_assign()
        if not self._assigned_once:  # nothing to read before the first assignment
            self.clock.now += max(timeout, 0.001)
            return []
        for condition, action in list(self.triggers):
            if condition():
                self.triggers.remove((condition, action))
                action(self)
        if self.polls:
            batch = self.polls.pop(0)
            self._ends_said -= {PartitionKey.of(m) for m in batch if m.error() is None}
            return batch
        ends = sorted(self.assigned - self.paused - self._ends_said)
        if ends:
            self._ends_said |= set(ends)
            return [end_of(key.topic, key.partition, 0) for key in ends]
        self.clock.now += max(timeout, 0.001)
        return []

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(*key) for key in sorted(self.assigned)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            key = PartitionKey(tp.topic, tp.partition)
            self.paused.add(key)
            self.ever_paused.append(key)

    def resume(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            key = PartitionKey(tp.topic, tp.partition)
            self.paused.discard(key)
            self._ends_said.discard(key)  # fetched again, its end is said again

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append(offsets)
        self._unanswered.append(offsets)

    def committed(
        self, partitions: list[TopicPartition], timeout: float = 0
    ) -> list[TopicPartition]:
        """The group's committed offsets, as the broker would say (-1001: none)."""
        done = self.committed_offsets()
        return [
            TopicPartition(
                tp.topic, tp.partition, done.get(PartitionKey(tp.topic, tp.partition), -1001)
            )
            for tp in partitions
        ]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = 0
    ) -> tuple[int, int]:
        """Low and end offset: `ends` says the end of each partition (0 if not named)."""
        return 0, self.ends.get(PartitionKey(partition.topic, partition.partition), 0)

    def committed_offsets(self) -> dict[PartitionKey, int]:
        """The last offset committed per partition."""
        out: dict[PartitionKey, int] = {}
        for offsets in self.commits:
            for tp in offsets:
                out[PartitionKey(tp.topic, tp.partition)] = tp.offset
        return out

    def unsubscribe(self) -> None:
        """Leaves the group: every partition is revoked."""
        if self._on_revoke is not None and self.assigned:
            self._on_revoke(self, [TopicPartition(*key) for key in sorted(self.assigned)])
        self.assigned = set()
        self.left = True

    def memberid(self) -> str | None:
        """The member id the group gave this consumer; None once it has left."""
        return None if self.left or not self._assigned_once else "scripted-member"

    def poll(self, timeout: float = -1) -> None:
        """Serves callbacks; the loop uses it only while leaving."""
        self.clock.now += max(timeout, 0.001)

    def close(self) -> None:
        """Closes the client: nothing to do here."""


@dataclass
class RecordingProducer:
    """A dead-letter producer's client that delivers everything at once."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    _delivering: list[Callable[[KafkaError | None, Any], None]] = field(default_factory=list)

    def connect(self, **_callbacks: Any) -> RecordingProducer:
        return self

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Any = None,
        on_delivery: Any = None,
    ) -> None:
        self.sent.append({"topic": topic, "value": value, "headers": dict(headers or [])})
        self._delivering.append(on_delivery)

    def flush(self, timeout: float) -> int:
        for deliver in self._delivering:
            deliver(None, None)
        self._delivering.clear()
        return 0
