"""Where consumption stands: per partition the group's committed offset, the end and the lag;
the documents in the store (the index, or the ClickHouse table); the messages in the
dead-letter topic."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from clickstream import kafka
from clickstream.settings import KafkaSettings, Settings
from clickstream.sinks.base import Sink

#: librdkafka's "no committed offset" (OFFSET_INVALID).
NO_OFFSET = -1001


@dataclass(frozen=True)
class PartitionStatus:
    """One partition: first and end offset, the group's committed offset (None if it has
    none yet) and how many messages the group still has to read."""

    partition: int
    low: int
    end: int
    committed: int | None
    lag: int


@dataclass(frozen=True)
class Status:
    """What `clickstream status` shows."""

    topic: str
    group: str
    partitions: list[PartitionStatus]
    index_pattern: str
    documents: int
    dlq_topic: str
    dead_letters: int
    #: The store (`Sink.name`); `index_pattern` is where in it the events are.
    sink: str = "opensearch"

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lag": self.lag}


def _reader(settings: KafkaSettings, group: str) -> Consumer:
    """A consumer that never joins the group: it only reads offsets and watermarks."""
    return Consumer(
        kafka.client_config(
            settings,
            {"group.id": group, "enable.auto.commit": False},
            error_cb=lambda _error: None,  # failures surface as exceptions below
        )
    )


def offsets(settings: KafkaSettings, topic: str, group: str) -> list[PartitionStatus]:
    """Low, end and committed offset and the lag of `group` for each partition of `topic`."""
    reader = _reader(settings, group)
    try:
        return read_offsets(reader, settings.bootstrap_servers, topic)
    finally:
        with contextlib.suppress(KafkaException, RuntimeError):
            reader.close()


def read_offsets(
    client: Any, bootstrap: str, topic: str, *, subscribed: bool = False
) -> list[PartitionStatus]:
    """`offsets`, read through a consumer of the group (`subscribed`, if it reads)."""
    count = kafka.require_topic(client, bootstrap, topic, subscribed=subscribed)
    wanted = [TopicPartition(topic, p) for p in range(count)]
    try:
        committed = {
            tp.partition: tp.offset
            for tp in client.committed(wanted, timeout=kafka.CONNECT_TIMEOUT)
        }
        marks = {
            tp.partition: client.get_watermark_offsets(tp, timeout=kafka.CONNECT_TIMEOUT)
            for tp in wanted
        }
    except KafkaException as exc:
        raise kafka.wrap(exc, f"reading offsets of {topic!r}", bootstrap) from None
    out = []
    for partition in range(count):
        low, end = marks[partition]
        done = committed.get(partition, NO_OFFSET)
        position = done if done >= 0 else low
        out.append(
            PartitionStatus(
                partition=partition,
                low=low,
                end=end,
                committed=done if done >= 0 else None,
                lag=max(end - max(position, low), 0),
            )
        )
    return out


def collect(settings: Settings, sink: Sink) -> Status:
    """The status of the configured topic, group and dead-letter topic, and of `sink`."""
    k = settings.kafka
    partitions = offsets(k, k.topic, k.group_id)
    dlq = offsets(k, k.dlq_topic, k.group_id)
    documents = sink.count()
    return Status(
        topic=k.topic,
        group=k.group_id,
        partitions=partitions,
        index_pattern=sink.location,
        documents=documents,
        dlq_topic=k.dlq_topic,
        dead_letters=sum(p.end - p.low for p in dlq),
        sink=sink.name,
    )


def render(status: Status) -> str:
    """The status for people: a small table and three totals."""
    lines = [
        f"topic {status.topic}, group {status.group}",
        f"  {'partition':>9}  {'committed':>12}  {'end':>12}  {'lag':>10}",
    ]
    for p in status.partitions:
        committed = "-" if p.committed is None else f"{p.committed:,}"
        lines.append(f"  {p.partition:>9}  {committed:>12}  {p.end:>12,}  {p.lag:>10,}")
    lines += [
        f"  {'total':>9}  {'':>12}  {sum(p.end for p in status.partitions):>12,}"
        f"  {status.lag:>10,}",
        (
            f"documents in {status.index_pattern}: {status.documents:,}"
            if status.sink == "opensearch"
            else f"events in {status.sink} {status.index_pattern}: {status.documents:,}"
        ),
        f"messages in dead-letter topic {status.dlq_topic}: {status.dead_letters:,}",
    ]
    return "\n".join(lines)
