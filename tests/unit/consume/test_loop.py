"""The consume loop against a scripted Kafka consumer, an in-memory sink and a clock that
moves only when a poll blocks: batches, outages, rebalances, stops and partition ends."""

from __future__ import annotations

import threading
from typing import cast

import orjson
import pytest
from confluent_kafka import KafkaError, Message, TopicPartition
from structlog.testing import capture_logs

from clickstream.consume.loop import ConsumerFactory, EventConsumer
from clickstream.errors import GroupStalled, MemberFenced
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
        assert headers["clickstream.error.kind"] == b"rejected_by_memory"
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

        def after_the_commit(c: ScriptedConsumer) -> None:  # the poll after the batch is done
            c.triggers.append((lambda: True, lambda c: seen.append((set(c.paused), 1))))

        consumer.triggers.append((lambda: len(consumer.commits) == 1, after_the_commit))
        stats = loop.run(until_idle=1.0)
        assert seen == [({P0, P1}, 0), (set(), 1)]  # paused in the outage, resumed after
        assert sink.writes == 4
        assert len(sink.documents) == 4
        assert consumer.committed_offsets() == {P0: 4}
        assert stats.retried == 3

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
        assert consumer.ever_paused[0] == P0
        # resumed when its rest was over, it found its end again and rested again
        assert consumer.ever_paused.count(P0) >= 2


class TestUntilIdle:
    """`--until-idle` counts only time caught up, and never calls reading nothing a success
    while the group has lag that nobody reads."""

    def test_time_before_the_assignment_does_not_count(self):
        """A group that assigns partitions only after 25 s: the run still reads them all."""
        loop, consumer, _ = make([events(0, 3)], MemorySink())
        consumer.assign_at = 25.0
        stats = loop.run(until_idle=10.0)
        assert stats.consumed == 3
        assert consumer.committed_offsets() == {P0: 3}

    def test_waiting_for_partitions_is_said_every_ten_seconds(self):
        """While no partition is assigned, the consumer says so every 10 s, with its group."""
        loop, consumer, _ = make([], MemorySink())
        consumer.assign_at = 35.0
        with capture_logs() as logged:
            loop.run(until_idle=1.0)
        waits = [e for e in logged if e["event"] == "waiting for partitions"]
        assert [e["seconds"] // 10 for e in waits] == [1, 2, 3]
        assert {e["group"] for e in waits} == {"clickstream-indexer"}

    def test_no_assignment_at_all_fails(self):
        """A group that never assigns partitions: the run fails, it does not report success."""
        loop, consumer, _ = make([], MemorySink())
        consumer.assign_at = None
        with pytest.raises(GroupStalled, match="no partitions of 'events' were assigned"):
            loop.run(until_idle=5.0)

    def test_reading_nothing_while_others_hold_unread_partitions_fails(self):
        """Assigned nothing to read while partition 1 has lag nobody reduces: not a success."""
        loop, consumer, _ = make([], MemorySink())
        consumer.owned, consumer.ends = (0,), {P1: 100}
        with pytest.raises(GroupStalled, match=r"partitions \[1\] of 'events' have 100 messages"):
            loop.run(until_idle=5.0)

    def test_reading_nothing_while_another_member_reads_is_fine(self):
        """Partition 1's lag shrinks meanwhile (another member reads it): the run succeeds."""
        loop, consumer, _ = make([], MemorySink())
        consumer.owned, consumer.ends = (0,), {P1: 100}
        start = consumer.clock.now
        consumer.triggers.append(
            (
                lambda: consumer.clock.now - start > 2.0,
                lambda c: c.commits.append([TopicPartition("events", 1, 60)]),
            )
        )
        assert loop.run(until_idle=5.0).consumed == 0

    def test_a_stop_request_ends_the_wait(self):
        """Waiting for partitions, a stop request ends the run without an error."""
        loop, consumer, _ = make([], MemorySink())
        consumer.assign_at = None
        stop = threading.Event()
        consumer.triggers.append((lambda: True, lambda _c: stop.set()))
        consumer.assign_at = 0.0  # triggers run once assigned
        assert loop.run(until_idle=5.0, stop=stop).consumed == 0


class TestFencing:
    """Two consumers with one static id: the one fenced out stops with a clear error."""

    def test_a_fenced_consumer_stops(self):
        """The broker's fatal 'fenced' error stops the loop with MemberFenced (exit 2)."""
        loop, consumer, _ = make([events(0, 2)], MemorySink())
        fenced = KafkaError(
            KafkaError._FATAL,
            "Fatal error: Broker: Static consumer fenced by other consumer with same "
            "group.instance.id",
            fatal=True,
        )
        consumer.triggers.append((lambda: True, lambda c: c.callbacks["error_cb"](fenced)))
        with pytest.raises(MemberFenced, match="another consumer joined group") as caught:
            loop.run(until_idle=5.0)
        assert caught.value.exit_code == 2


class TestLeaving:
    """A stopping consumer leaves its group, so its partitions go to the others at once."""

    def test_a_finished_run_unsubscribes_before_closing(self):
        """After the last commit the consumer unsubscribes (a static member then leaves too)."""
        loop, consumer, _ = make([events(0, 2)], MemorySink())
        loop.run(until_idle=1.0)
        assert consumer.left
        assert consumer.committed_offsets() == {P0: 2}  # committed before leaving
