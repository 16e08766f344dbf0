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
    """Returns the scripted `polls` in order, one per `consume` call, then nothing (the clock
    moves on by the poll's timeout). `triggers` run before a poll once their condition
    holds: that is how a test revokes partitions or stops the run at a given moment."""

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
    _on_revoke: Callable[[Any, list[TopicPartition]], None] | None = None

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
        self.assigned = {PartitionKey(topics[0], p) for p in range(self.partitions)}

    def revoke(self, *keys: PartitionKey) -> None:
        """Take partitions away, as a rebalance does."""
        assert self._on_revoke is not None
        self._on_revoke(self, [TopicPartition(*key) for key in keys])
        self.assigned -= set(keys)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        for answered in self._unanswered:
            self.callbacks["on_commit"](None, answered)
        self._unanswered.clear()
        for condition, action in list(self.triggers):
            if condition():
                self.triggers.remove((condition, action))
                action(self)
        if self.polls:
            return self.polls.pop(0)
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
            self.paused.discard(PartitionKey(tp.topic, tp.partition))

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append(offsets)
        self._unanswered.append(offsets)

    def committed_offsets(self) -> dict[PartitionKey, int]:
        """The last offset committed per partition."""
        out: dict[PartitionKey, int] = {}
        for offsets in self.commits:
            for tp in offsets:
                out[PartitionKey(tp.topic, tp.partition)] = tp.offset
        return out

    def close(self) -> None:
        """Leaves the group: nothing to do here."""


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
