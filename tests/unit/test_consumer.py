"""Consumer logic that needs no broker: commit offsets."""

from __future__ import annotations

from confluent_kafka import Message

from clickstream.consumer import commit_offsets


def message(value: bytes | None, partition: int = 0, offset: int = 0) -> Message:
    return Message(topic="events", partition=partition, offset=offset, key=b"k", value=value)


class TestCommitOffsets:
    def test_one_past_last_per_partition(self):
        """The commit for a batch is one past the highest offset of each partition."""
        batch = [message(b"", 0, 5), message(b"", 1, 9), message(b"", 0, 7), message(b"", 1, 3)]
        offsets = {(tp.partition, tp.offset) for tp in commit_offsets(batch)}
        assert offsets == {(0, 8), (1, 10)}

    def test_empty_batch(self):
        """An empty batch commits nothing."""
        assert commit_offsets([]) == []
