"""Rests of partitions read to their end, against a recording stand-in for the consumer."""

from __future__ import annotations

import pytest
from confluent_kafka import TopicPartition

from clickstream.consume import rests
from clickstream.consume.rests import PartitionRests
from clickstream.kafka import PartitionKey


class Recorder:
    """Records pause and resume calls as (action, [(topic, partition), ...])."""

    def __init__(self):
        self.calls: list[tuple[str, list[tuple[str, int]]]] = []

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("pause", [(tp.topic, tp.partition) for tp in partitions]))

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("resume", [(tp.topic, tp.partition) for tp in partitions]))


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[PartitionRests, Recorder, Clock]:
    consumer, clock = Recorder(), Clock()
    return PartitionRests(consumer, clock=clock), consumer, clock  # type: ignore[arg-type]


class TestPartitionRests:
    def test_end_pauses_then_probes_then_rests_longer(self):
        """A partition at its end rests, is fetched again after the rest, and if it is still
        at its end rests twice as long, up to the longest rest."""
        r, consumer, clock = make()
        r.reached_end("t", 0)
        assert consumer.calls == [("pause", [("t", 0)])]
        clock.now += rests.FIRST / 2
        r.tick()
        assert len(consumer.calls) == 1  # not yet
        clock.now += rests.FIRST
        r.tick()
        assert consumer.calls[-1] == ("resume", [("t", 0)])
        assert ("t", 0) in r.probing
        r.reached_end("t", 0)
        assert consumer.calls[-1] == ("pause", [("t", 0)])
        assert r.resting[PartitionKey("t", 0)] == (clock.now + 2 * rests.FIRST, 2 * rests.FIRST)
        for _ in range(10):
            clock.now += rests.LONGEST
            r.tick()
            r.reached_end("t", 0)
        assert r.resting[PartitionKey("t", 0)][1] == rests.LONGEST

    def test_a_probe_that_finds_nothing_is_forgotten(self):
        """A broker that holds the fetch open: after the probe time the partition is
        simply being read, and its next end is a first one."""
        r, consumer, clock = make()
        r.reached_end("t", 1)
        clock.now += rests.FIRST
        r.tick()
        clock.now += rests.PROBE
        r.tick()
        assert consumer.calls[-1] == ("resume", [("t", 1)])
        assert not r.probing
        assert not r.resting
        r.reached_end("t", 1)
        assert r.resting[PartitionKey("t", 1)][1] == rests.FIRST

    def test_a_message_ends_the_probe(self):
        """Once a probed partition delivers, it is fetched normally again."""
        r, consumer, clock = make()
        r.reached_end("t", 2)
        clock.now += rests.FIRST
        r.tick()
        r.received([PartitionKey("t", 2)])
        clock.now += 10 * rests.PROBE
        r.tick()
        assert consumer.calls[-1] == ("resume", [("t", 2)])
        assert not r.resting
        assert not r.probing

    def test_poll_timeout_ends_on_the_next_deadline(self):
        """A poll blocks no longer than the next rest's end (at least 1 ms), and only
        briefly while a probe runs."""
        r, _, clock = make()
        assert r.timeout(0.2) == 0.2
        r.reached_end("t", 0)
        assert r.timeout(0.2) == pytest.approx(rests.FIRST)
        clock.now += 1.0
        assert r.timeout(0.2) == 0.001
        r.tick()
        assert r.timeout(0.2) == rests.PROBE_POLL

    def test_forget_and_clear(self):
        """Revoked partitions, or all after a global resume, have no rest left."""
        r, _, clock = make()
        r.reached_end("t", 0)
        r.reached_end("t", 1)
        clock.now += rests.FIRST
        r.tick()
        r.reached_end("t", 2)
        r.forget([PartitionKey("t", 0)])
        assert set(r.probing) == {("t", 1)}
        assert set(r.resting) == {("t", 2)}
        r.clear()
        assert not r.probing
        assert not r.resting
