"""A batch the sink refuses for the store's sake stops the consumer, uncommitted and not
dead-lettered."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from clickstream.errors import SinkRefused
from clickstream.events import Document
from clickstream.sinks.base import Wait, WriteResult
from tests.helpers import make_message
from tests.memory_sink import MemorySink
from tests.unit.consume.test_loop import P0, events, make


class RefusingSink(MemorySink):
    """Stores the first `good` writes, then refuses every write as a store would whose
    index is blocked."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.good = good

    def write(
        self, batch: Sequence[Document], *, wait: Wait | None = None, attempts: int | None = None
    ) -> WriteResult:
        if self.writes >= self.good:
            self.writes += 1
            raise SinkRefused("index is read-only")
        return super().write(batch, wait=wait, attempts=attempts)


class TestRefusedBatch:
    """`SinkRefused` from the sink: stop, commit nothing of the batch, dead-letter nothing."""

    def test_a_refused_batch_stops_the_consumer_uncommitted(self):
        """The refusal reaches the caller; the batch's invalid message is not dead-lettered;
        the batch before it is committed (though its commit was not due yet), the refused
        one is not."""
        first = events(0, 4)
        second = [
            *[make_message(m.value(), offset=4 + i) for i, m in enumerate(events(0, 3))],
            make_message(b"not json", offset=7),
        ]
        sink = RefusingSink(good=1)
        loop, consumer, producer = make([first + second], sink)  # one poll: not caught up
        with pytest.raises(SinkRefused, match="read-only"):
            loop.run(until_idle=1.0)
        assert producer.sent == []
        assert consumer.committed_offsets() == {P0: 4}
        assert loop.stats.consumed == 4
        assert loop.stats.dead_lettered == 0
