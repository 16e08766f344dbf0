"""Consumer logic that needs no broker: commit offsets."""

from __future__ import annotations

from clickstream.consumer import commit_offsets
from tests.helpers import make_message


class TestCommitOffsets:
    def test_one_past_last_per_partition(self):
        """The commit for a batch is one past the highest offset of each partition."""
        batch = [
            make_message(b"", partition=partition, offset=offset)
            for partition, offset in [(0, 5), (1, 9), (0, 7), (1, 3)]
        ]
        offsets = {(tp.partition, tp.offset) for tp in commit_offsets(batch)}
        assert offsets == {(0, 8), (1, 10)}

    def test_empty_batch(self):
        """An empty batch commits nothing."""
        assert commit_offsets([]) == []
