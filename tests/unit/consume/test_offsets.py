"""Which offsets the consumer commits, and when, with a scripted broker: no network."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from clickstream.consume.offsets import COMMIT_GRACE, Offsets, commit_offsets
from clickstream.kafka import PartitionKey
from clickstream.retry import Outage
from clickstream.settings import ConsumerSettings
from tests.helpers import make_message

TOPIC = "events"


class FakeKafka:
    """Records commits; answers each one, on a later poll, with the next scripted result
    (None: success; nothing scripted: no answer ever comes)."""

    def __init__(self, *answers: KafkaError | None) -> None:
        self.answers = list(answers)
        self.commits: list[dict[int, int]] = []
        self.offsets: Offsets | None = None
        self._unanswered: list[list[TopicPartition]] = []
        self.polls = 0

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert asynchronous
        self.commits.append({tp.partition: tp.offset for tp in offsets})
        self._unanswered.append(offsets)

    def poll(self) -> None:
        assert self.offsets is not None
        self.polls += 1
        assert self.polls < 10_000, "a commit was awaited without end"
        if self._unanswered and self.answers:
            self.offsets.on_commit(self.answers.pop(0), self._unanswered.pop(0))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_offsets(
    kafka: FakeKafka,
    clock: Clock | None = None,
    *,
    interval: float = 5.0,
    stopping: bool = False,
    on_poll: Any = None,
) -> tuple[Offsets, list[float]]:
    """Offsets over `kafka`; also the list of the waits it asked for."""
    clock = clock or Clock()
    waits: list[float] = []

    def poll() -> None:
        clock.now += 0.005
        if on_poll is not None:
            on_poll()
        kafka.poll()

    def wait(seconds: float) -> bool:  # as the consumer's: False at once when stopping
        if stopping:
            return False
        waits.append(seconds)
        clock.now += seconds
        return True

    offsets = Offsets(
        kafka,  # type: ignore[arg-type]
        ConsumerSettings(commit_interval=interval),
        Outage("kafka", clock=clock),
        poll=poll,
        wait=wait,
        stopping=lambda: stopping,
        clock=clock,
    )
    kafka.offsets = offsets
    return offsets, waits


def batch(*positions: tuple[int, int]) -> list[Any]:
    return [make_message(b"", partition=p, offset=o, topic=TOPIC) for p, o in positions]


class TestCommitOffsets:
    def test_one_past_last_per_partition(self):
        """The commit for a batch is one past the highest offset of each partition."""
        messages = batch((0, 5), (1, 9), (0, 7), (1, 3))
        offsets = {(tp.partition, tp.offset) for tp in commit_offsets(messages)}
        assert offsets == {(0, 8), (1, 10)}

    def test_empty_batch(self):
        """An empty batch commits nothing."""
        assert commit_offsets([]) == []


class TestWhen:
    def test_due_when_caught_up_or_once_the_interval_has_passed(self):
        """A caught-up consumer commits at once; one reading a backlog waits the interval."""
        clock = Clock()
        offsets, _ = make_offsets(FakeKafka(None), clock, interval=5.0)
        assert offsets.due(caught_up=True)
        assert not offsets.due(caught_up=False)
        clock.now += 5.0
        assert offsets.due(caught_up=False)
        offsets.commit()
        assert not offsets.due(caught_up=False)

    def test_an_interval_of_zero_commits_every_batch(self):
        """`commit_interval = 0`: always due."""
        offsets, _ = make_offsets(FakeKafka(), interval=0.0)
        assert offsets.due(caught_up=False)


class TestCommit:
    def test_commits_what_was_handled_once(self):
        """Handled batches are committed together, one past their last offsets, once."""
        kafka = FakeKafka(None)
        offsets, _ = make_offsets(kafka)
        offsets.handled(batch((0, 3), (1, 0)), revoked=set())
        offsets.handled(batch((0, 4), (0, 5)), revoked=set())
        offsets.commit()
        offsets.commit()
        assert kafka.commits == [{0: 6, 1: 1}]

    def test_nothing_handled_nothing_committed(self):
        """No batch handled since the last commit: no request."""
        kafka = FakeKafka()
        offsets, _ = make_offsets(kafka)
        offsets.commit()
        assert kafka.commits == []

    def test_partitions_revoked_during_the_batch_are_left_to_their_next_owner(self):
        """A batch whose partition was revoked while it was indexed commits the others."""
        kafka = FakeKafka(None)
        offsets, _ = make_offsets(kafka)
        offsets.handled(batch((0, 3), (1, 7)), revoked={PartitionKey(TOPIC, 1)})
        offsets.commit()
        assert kafka.commits == [{0: 4}]

    def test_a_revocation_forgets_its_partitions_offsets(self):
        """Offsets of revoked partitions are dropped (their next owner replays them)."""
        kafka = FakeKafka(None)
        offsets, _ = make_offsets(kafka)
        offsets.handled(batch((0, 3), (1, 7)), revoked=set())
        assert offsets.revoked({PartitionKey(TOPIC, 1), PartitionKey(TOPIC, 2)}) == [(TOPIC, 1)]
        offsets.commit()
        assert kafka.commits == [{0: 4}]

    def test_an_unreachable_coordinator_is_waited_out(self):
        """A retriable commit error is retried after a backoff until the commit succeeds."""
        down = KafkaError(KafkaError._TRANSPORT, "broker down")
        kafka = FakeKafka(down, down, None)
        offsets, waits = make_offsets(kafka)
        offsets.handled(batch((0, 1)), revoked=set())
        offsets.commit()
        assert kafka.commits == [{0: 2}] * 3
        assert len(waits) == 2
        assert all(w > 0 for w in waits)
        offsets.commit()
        assert len(kafka.commits) == 3  # committed: nothing left

    def test_a_failed_commit_is_tried_again_with_the_next(self):
        """A commit that fails for good keeps its offsets for the next commit."""
        fenced = KafkaError(KafkaError.ILLEGAL_GENERATION, "rebalanced")
        kafka = FakeKafka(fenced, None)
        offsets, waits = make_offsets(kafka)
        offsets.handled(batch((0, 1)), revoked=set())
        offsets.commit()
        offsets.handled(batch((1, 4)), revoked=set())
        offsets.commit()
        assert kafka.commits == [{0: 2}, {0: 2, 1: 5}]
        assert waits == []

    def test_a_revocation_while_waiting_gives_the_commit_up(self):
        """A commit never answered is given up when partitions are revoked meanwhile."""
        kafka = FakeKafka()
        polls = []

        def revoke_on_third_poll() -> None:
            polls.append(1)
            if len(polls) == 3:
                offsets.revoked({PartitionKey(TOPIC, 0)})

        offsets, _ = make_offsets(kafka, on_poll=revoke_on_third_poll)
        offsets.handled(batch((0, 1), (1, 1)), revoked=set())
        offsets.commit()
        assert len(polls) == 3
        assert kafka.commits == [{0: 2, 1: 2}]

    def test_a_stopping_consumer_waits_a_grace_period_at_most(self):
        """Stopping, a commit never answered is given up after `COMMIT_GRACE`."""
        clock = Clock()
        kafka = FakeKafka()
        offsets, _ = make_offsets(kafka, clock, stopping=True)
        offsets.handled(batch((0, 1)), revoked=set())
        started = clock.now
        offsets.commit()
        assert COMMIT_GRACE <= clock.now - started < COMMIT_GRACE + 0.1
