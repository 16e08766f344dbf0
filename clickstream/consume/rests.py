"""Rests for partitions read to their end, so that reading an idle topic costs no CPU.

A Kafka broker holds an empty fetch open for `fetch.wait.max.ms` (500 ms by default), so
an idle consumer sends two fetches a second. A broker that answers an empty fetch at once
(some Kafka-compatible servers do) would instead have librdkafka fetch in a tight loop,
burning a core on each side while there is nothing to read. So a partition read to its end
is paused for a rest, then fetched again (a probe). If the probe finds the end again, the
partition rests again, each time twice as long up to `LONGEST`; a message ends the probe,
and so does `PROBE` passing with neither (a broker holding the fetch open: nothing to
guard against). The first message after a quiet spell so waits at most `LONGEST`, no longer
than it would in a broker's long poll.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from clickstream.kafka import PartitionKey

#: The first rest of a partition that reached its end, and the longest one.
FIRST = 0.05
LONGEST = 0.5
#: How long after a rest a partition counts as probed: an end found meanwhile rests it
#: longer than last time, after that it rests as if for the first time.
PROBE = 1.0
#: While partitions are probed, how long one poll may block: how long, at most, a broker
#: that answers at once is fetched in a loop before its answer is seen.
PROBE_POLL = 0.01


class PartitionRests:
    """The partitions of `consumer` that are resting or being probed after a rest."""

    def __init__(self, consumer: Consumer, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._consumer = consumer
        self._clock = clock
        #: Paused partitions: when their rest ends, and how long it was.
        self.resting: dict[PartitionKey, tuple[float, float]] = {}
        #: Partitions fetched again after a rest: until when, and the rest they had.
        self.probing: dict[PartitionKey, tuple[float, float]] = {}

    def reached_end(self, topic: str, partition: int) -> None:
        """`partition` is read to its end: it rests; longer than last time if this is the
        end of a probe (a broker may say so again after each rest)."""
        key = PartitionKey(topic, partition)
        probed = self.probing.pop(key, None)
        self._pause(key, FIRST if probed is None else min(2 * probed[1], LONGEST))

    def received(self, keys: Iterable[PartitionKey]) -> None:
        """Messages came from these partitions: a probe that brings something ends it."""
        for key in keys:
            self.probing.pop(key, None)

    def tick(self) -> None:
        """End the rests that are over (probe those partitions) and forget the probes that
        found neither the end nor a message in time."""
        now = self._clock()
        due = [key for key, (until, _) in self.resting.items() if until <= now]
        if due:
            with contextlib.suppress(KafkaException):
                self._consumer.resume([TopicPartition(t, p) for t, p in due])
            for key in due:
                _, rest = self.resting.pop(key)
                self.probing[key] = (now + PROBE, rest)
        for key in [key for key, (until, _) in self.probing.items() if until <= now]:
            del self.probing[key]

    def timeout(self, longest: float) -> float:
        """How long a poll may block: short while a probe runs, so that the end it finds is
        seen soon; else until the next rest ends."""
        if self.probing:
            longest = min(longest, PROBE_POLL)
        if not self.resting:
            return longest
        ends = min(until for until, _ in self.resting.values())
        return max(0.001, min(longest, ends - self._clock()))

    def forget(self, keys: Iterable[PartitionKey]) -> None:
        """These partitions are no longer ours (or were all resumed): no rest, no probe."""
        for key in keys:
            self.resting.pop(key, None)
            self.probing.pop(key, None)

    def clear(self) -> None:
        """Every partition was resumed."""
        self.resting.clear()
        self.probing.clear()

    def _pause(self, key: PartitionKey, rest: float) -> None:
        with contextlib.suppress(KafkaException):
            self._consumer.pause([TopicPartition(*key)])
            self.resting[key] = (self._clock() + rest, rest)
