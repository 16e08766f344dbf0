"""The messages fetched and not yet handed to a batch, and the bound of a replay.

`dlq replay` reads only up to the end offsets it found when it started (`stop_at`,
partition -> end offset): messages at or past their partition's end are left alone, and
the run is over once every listed partition is read, and handled, up to there.
"""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka import Message

from clickstream.kafka import PartitionKey


class Pending:
    """Fetched messages waiting for the next batch, in the order they came."""

    def __init__(self, stop_at: Mapping[int, int] | None = None) -> None:
        self.messages: list[Message] = []
        #: When the oldest pending message came: the next batch's clock.
        self.started = 0.0
        self._stop_at = dict(stop_at) if stop_at is not None else None

    def __len__(self) -> int:
        return len(self.messages)

    def add(self, messages: list[Message], now: float) -> list[Message]:
        """Keep `messages` (within the replay bound, if any) for the next batch; those kept."""
        if self._stop_at is not None:
            messages = [msg for msg in messages if self._within_bound(msg)]
        if messages:
            if not self.messages:
                self.started = now
            self.messages.extend(messages)
        return messages

    def take(self, size: int, now: float) -> list[Message]:
        """The next batch: at most `size` of the pending messages, in order."""
        batch, self.messages = self.messages[:size], self.messages[size:]
        if self.messages:
            self.started = now
        return batch

    def drop(self, lost: set[PartitionKey]) -> int:
        """Forget the messages of partitions that are no longer ours; how many there were."""
        keep = [m for m in self.messages if PartitionKey.of(m) not in lost]
        dropped = len(self.messages) - len(keep)
        self.messages = keep
        return dropped

    def read_to_the_end(self, *, pending: bool = False) -> bool:
        """With a replay bound: whether every listed partition is read (and, unless
        `pending`, handled) up to its end offset. Without one, never."""
        if self._stop_at is None or (self.messages and not pending):
            return False
        return not self._stop_at

    def _within_bound(self, msg: Message) -> bool:
        """Whether `msg` comes before its partition's end offset; notes a partition's end."""
        assert self._stop_at is not None  # noqa: S101 - only called with a bound
        partition, offset = msg.partition() or 0, msg.offset() or 0
        end = self._stop_at.get(partition)
        if end is None or offset >= end:
            return False
        if offset + 1 >= end:
            del self._stop_at[partition]
        return True
