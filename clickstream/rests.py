"""Rests for partitions read to their end, so that reading an idle topic costs no CPU.

A Kafka broker holds an empty fetch open for `fetch.wait.max.ms` (500 ms by default), so
an idle consumer sends two fetches a second. A broker that answers an empty fetch at once
(some Kafka-compatible servers do) would instead have librdkafka fetch in a tight loop,
burning a core on each side while there is nothing to read. So a partition read to its end
is paused for a rest; then it is fetched again for a short probe; if the probe brings
nothing, it rests again, each time twice as long up to `LONGEST`. The first message after a
quiet spell so waits at most `LONGEST`, no longer than it would in a broker's long poll.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition

#: The first rest of a partition that reached its end, and the longest one.
FIRST = 0.05
LONGEST = 0.5
#: How long a rested partition is fetched before, nothing having come, it rests again.
PROBE = 0.005

Key = tuple[str, int]


class Rests:
    """The partitions of `consumer` that are resting or being probed after a rest."""

    def __init__(self, consumer: Consumer, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._consumer = consumer
        self._clock = clock
        #: Paused partitions: when their rest ends, and how long it was.
        self.resting: dict[Key, tuple[float, float]] = {}
        #: Partitions fetched again after a rest: until when, and the rest they had.
        self.probing: dict[Key, tuple[float, float]] = {}

    def reached_end(self, topic: str, partition: int) -> None:
        """`partition` is read to its end: it rests; longer than last time if this is the
        end of a probe (a broker may say so again after each rest)."""
        key = (topic, partition)
        probed = self.probing.pop(key, None)
        self._pause(key, FIRST if probed is None else min(2 * probed[1], LONGEST))

    def received(self, keys: Iterable[Key]) -> None:
        """Messages came from these partitions: a probe that brings something ends it."""
        for key in keys:
            self.probing.pop(key, None)

    def tick(self) -> None:
        """End the rests that are over (probe those partitions) and the probes that are over
        (nothing came: rest again, longer)."""
        now = self._clock()
        due = [key for key, (until, _) in self.resting.items() if until <= now]
        if due:
            with contextlib.suppress(KafkaException):
                self._consumer.resume([TopicPartition(t, p) for t, p in due])
            for key in due:
                _, rest = self.resting.pop(key)
                self.probing[key] = (now + PROBE, rest)
        idle = [key for key, (until, _) in self.probing.items() if until <= now]
        for key in idle:
            _, rest = self.probing.pop(key)
            self._pause(key, min(2 * rest, LONGEST))

    def timeout(self, longest: float) -> float:
        """How long a poll may block so that the next rest or probe ends on time."""
        ends = [until for until, _ in (*self.resting.values(), *self.probing.values())]
        if not ends:
            return longest
        return max(0.001, min(longest, min(ends) - self._clock()))

    def forget(self, keys: Iterable[Key]) -> None:
        """These partitions are no longer ours (or were all resumed): no rest, no probe."""
        for key in keys:
            self.resting.pop(key, None)
            self.probing.pop(key, None)

    def clear(self) -> None:
        """Every partition was resumed."""
        self.resting.clear()
        self.probing.clear()

    def _pause(self, key: Key, rest: float) -> None:
        with contextlib.suppress(KafkaException):
            self._consumer.pause([TopicPartition(*key)])
            self.resting[key] = (self._clock() + rest, rest)
