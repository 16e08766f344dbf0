"""The consume loop against a scripted Kafka consumer, an in-memory sink and a clock that
moves only when a poll blocks: batches, outages, rebalances, stops and partition ends."""

from __future__ import annotations

import threading
from typing import cast

import orjson
from confluent_kafka import Message

from clickstream.consume.loop import ConsumerFactory, EventConsumer
from clickstream.kafka import PartitionKey
from clickstream.settings import Settings
from tests.helpers import make_event, make_message
from tests.memory_sink import MemorySink
from tests.unit.consume.scripted import Clock, RecordingProducer, ScriptedConsumer, end_of

P0, P1 = PartitionKey("events", 0), PartitionKey("events", 1)


def events(partition: int, count: int) -> list[Message]:
    """`count` valid events at offsets 0, 1, ... of `partition`."""
    return [
        make_message(make_event().to_json(), partition=partition, offset=offset)
        for offset in range(count)
    ]


def orjson_id(message: Message) -> str:
    """The event id in `message`."""
    value = message.value()
    assert value is not None
    return str(orjson.loads(value)["event_id"])


def make(
    polls: list[list[Message]], sink: MemorySink, *, batch_size: int = 4
) -> tuple[EventConsumer, ScriptedConsumer, RecordingProducer]:
    clock = Clock()
    consumer = ScriptedConsumer(clock, polls)
    producer = RecordingProducer()
    settings = Settings(
        kafka={"topic": "events", "dlq_topic": "events.dlq"},
        consumer={"batch_size": batch_size, "retry_initial": 0.1, "retry_max": 1.0},
    )
    loop = EventConsumer(
        settings,
        sink,
        consumer=cast(ConsumerFactory, consumer.connect),  # a scripted stand-in
        dead_letter_client=producer.connect,
        clock=clock,
    )
    return loop, consumer, producer


class TestEventConsumer:
    def test_a_batch_is_stored_then_committed(self):
        """Every message of a batch is stored, and then its offsets are committed."""
        sink = MemorySink()
        messages = events(0, 4)
        loop, consumer, _ = make([messages], sink)
        stats = loop.run(until_idle=1.0)
        assert set(sink.documents) == {orjson_id(m) for m in messages}
        assert consumer.committed_offsets() == {P0: 4}
        assert (stats.consumed, stats.indexed, stats.dead_lettered) == (4, 4, 0)

    def test_a_rejected_item_goes_to_the_dead_letter_topic_with_its_reason(self):
        """An item the sink refuses is dead-lettered with the sink's reason, and counted."""
        messages = events(0, 4)
        refused = orjson_id(messages[2])
        sink = MemorySink(reject={refused: "mapper_parsing_exception: no"})
        loop, consumer, producer = make([messages], sink)
        stats = loop.run(until_idle=1.0)
        assert [s["value"] for s in producer.sent] == [messages[2].value()]
        headers = producer.sent[0]["headers"]
        assert headers["clickstream.error.reason"] == b"mapper_parsing_exception: no"
        assert headers["clickstream.error.kind"] == b"rejected_by_opensearch"
        assert (stats.indexed, stats.dead_lettered) == (3, 1)
        assert consumer.committed_offsets() == {P0: 4}

    def test_a_sink_outage_pauses_keeps_the_batch_and_retries_it(self):
        """While the sink is unavailable the partitions are paused and nothing is committed;
        once it is back the same batch is stored and committed, and consuming resumes."""
        sink = MemorySink(outages=3)
        messages = events(0, 4)
        loop, consumer, _ = make([messages], sink)
        seen: list[tuple[set[PartitionKey], int]] = []
        consumer.triggers.append(
            (lambda: sink.writes == 2, lambda c: seen.append((set(c.paused), len(c.commits))))
        )
        stats = loop.run(until_idle=1.0)
        assert seen == [({P0, P1}, 0)]
        assert sink.writes == 4
        assert len(sink.documents) == 4
        assert consumer.committed_offsets() == {P0: 4}
        assert stats.retried == 3
        assert not consumer.paused

    def test_revoked_partitions_of_the_in_flight_batch_are_not_committed(self):
        """A rebalance while the batch waits for the sink: the revoked partition's messages
        are left uncommitted for its next owner; the rest is stored and committed."""
        sink = MemorySink(outages=1)
        ours, theirs = events(0, 2), events(1, 2)
        loop, consumer, _ = make([[*ours, *theirs]], sink)
        consumer.triggers.append((lambda: sink.writes == 1, lambda c: c.revoke(P1)))
        stats = loop.run(until_idle=1.0)
        assert set(sink.documents) == {orjson_id(m) for m in ours}
        assert consumer.committed_offsets() == {P0: 2}
        assert stats.abandoned == 2

    def test_a_stop_request_abandons_the_in_flight_batch_uncommitted(self):
        """Stopping while the sink is away gives the batch up: nothing stored or committed."""
        sink = MemorySink(outages=1000)
        loop, consumer, _ = make([events(0, 4)], sink)
        stop = threading.Event()
        consumer.triggers.append((lambda: sink.writes >= 2, lambda _c: stop.set()))
        stats = loop.run(stop=stop)
        assert not sink.documents
        assert consumer.commits == []
        assert stats.abandoned == 4
        assert stats.consumed == 0

    def test_a_partition_read_to_its_end_rests(self):
        """A partition's end pauses it for a rest; the rest ends by itself (it is resumed)."""
        sink = MemorySink()
        loop, consumer, _ = make([[end_of("events", 0, 0)]], sink)
        loop.run(until_idle=1.0)
        assert consumer.ever_paused == [P0]
        assert not consumer.paused
