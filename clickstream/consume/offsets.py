"""The offsets a consumer has earned, and committing them while the broker comes and goes.

A batch's offsets are noted once every message of it is indexed or dead-lettered. While a
backlog is read they are committed at most every `consumer.commit_interval` seconds (each
commit is a write on the broker and a round trip the batch loop waits for); a consumer that
has caught up, or stops, commits at once. A crash replays what was not committed, over the
same documents: nothing is lost, nothing is duplicated.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from clickstream import kafka, logs
from clickstream.kafka import PartitionKey
from clickstream.retry import Outage, backoff_delay
from clickstream.settings import ConsumerSettings

log = logs.get("consumer")

#: How long a stopping consumer still waits for its last commit to be confirmed.
COMMIT_GRACE = 5.0


def commit_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """The offsets to commit after `messages`: one past the last of each partition."""
    last: dict[PartitionKey, int] = {}
    for msg in messages:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is None or partition is None or offset is None:
            continue  # not a fetched message (an error event): nothing to commit
        key = PartitionKey(topic, partition)
        last[key] = max(last.get(key, -1), offset)
    return [
        TopicPartition(topic, part, offset + 1) for (topic, part), offset in sorted(last.items())
    ]


class Offsets:
    """The offsets of the batches handled and not yet committed, and their commits.

    Commits are asynchronous and awaited while the consumer keeps polling (`poll`: once,
    briefly), so that it stays in its group and sees rebalances and stop requests: a
    synchronous commit would block without limit while the broker is away. `wait` waits
    between attempts, polling too, and says False when a stop was requested meanwhile.
    """

    def __init__(
        self,
        consumer: Consumer,
        cfg: ConsumerSettings,
        outage: Outage,
        *,
        poll: Callable[[], None],
        wait: Callable[[float], bool],
        stopping: Callable[[], bool],
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._cfg = cfg
        self._outage = outage
        self._poll = poll
        self._wait = wait
        self._stopping = stopping
        self._rng = rng or random.Random()
        self._clock = clock
        self._done: dict[PartitionKey, int] = {}  # partition -> the next offset to read
        self._results: list[KafkaError | None] = []
        self._committed_at = clock()
        self._revocations = 0  # how many times partitions were taken from us

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's commit callback."""
        failed = next((tp.error for tp in partitions if tp.error is not None), None)
        self._results.append(error or failed)

    def handled(self, batch: Sequence[Message], revoked: set[PartitionKey]) -> None:
        """Every message of `batch` is indexed or dead-lettered: note its offsets, except
        for `revoked` partitions, which their next owner reads again and commits."""
        for tp in commit_offsets(batch):
            key = PartitionKey(tp.topic, tp.partition)
            if key not in revoked:
                self._done[key] = max(self._done.get(key, 0), tp.offset)

    def revoked(self, lost: set[PartitionKey]) -> list[PartitionKey]:
        """Partitions were taken from us: forget their offsets (committing now could block
        the rebalance while the broker is away; their next owner replays at most an
        interval's worth, over the same documents); the partitions whose offsets those were.
        A commit being awaited is given up."""
        self._revocations += 1
        unsaid = sorted(key for key in lost if key in self._done)
        for key in unsaid:
            del self._done[key]
        return unsaid

    def due(self, *, caught_up: bool) -> bool:
        """Whether to commit now: the consumer has caught up, or the interval has passed."""
        return caught_up or self._clock() - self._committed_at >= self._cfg.commit_interval

    def commit(self) -> None:
        """Commit the offsets noted so far, waiting out an unreachable coordinator unless
        partitions are revoked or a stop is requested meanwhile."""
        self._committed_at = self._clock()
        offsets = [TopicPartition(t, p, offset) for (t, p), offset in sorted(self._done.items())]
        if not offsets:
            return
        attempt, revocations = 0, self._revocations
        while True:
            self._results.clear()
            try:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:
                error: KafkaError | None = exc.args[0] if exc.args else None
            else:
                error = self._await(revocations)
            if error is None:
                self._outage.recovered()
                for tp in offsets:
                    key = PartitionKey(tp.topic, tp.partition)
                    if self._done.get(key) == tp.offset:
                        del self._done[key]
                return
            if error.code() in kafka.COMMIT_RETRIABLE_CODES and self._revocations == revocations:
                self._outage.failed(f"commit: {kafka.describe(error)}")
                attempt += 1
                delay = backoff_delay(
                    attempt, self._cfg.retry_initial, self._cfg.retry_max, self._rng
                )
                if self._wait(delay) and self._revocations == revocations:
                    continue
            # A rebalance came first (or we are stopping): what is not committed is replayed
            # by the partitions' next owner, over the same documents (same ids). Nothing is lost.
            log.warning(
                "commit failed; it is tried again with the next one, and what a crash "
                "would replay meanwhile overwrites the same documents",
                error=kafka.describe(error),
            )
            return

    def _await(self, revocations: int) -> KafkaError | None:
        """The result of the commit in flight, polling meanwhile; given up when partitions
        are revoked (`revocations` is how many times they were before) or a stopping
        consumer has waited `COMMIT_GRACE`."""
        stopping_since: float | None = None
        while not self._results:
            now = self._clock()
            if self._stopping() and stopping_since is None:
                stopping_since = now
            if self._revocations != revocations or (
                stopping_since is not None and now - stopping_since > COMMIT_GRACE
            ):
                return KafkaError(KafkaError._TIMED_OUT, "commit not confirmed", retriable=False)
            self._poll()
        return self._results[0]
