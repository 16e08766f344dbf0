"""The contract every `Sink` passes; a test module subclasses `SinkContract` and gives the
fixtures `sink` (a working sink, set up), `unreachable` (one whose store cannot be reached)
and `rejected_document` (a document the store refuses)."""

from __future__ import annotations

import pytest

from clickstream.events import Document
from clickstream.sinks.base import Sink, SinkUnavailable
from tests.helpers import make_event


def documents(count: int) -> list[Document]:
    return [Document.of(make_event()) for _ in range(count)]


class SinkContract:
    """What the consume loop relies on of a sink."""

    def test_write_returns_one_result_per_item(self, sink: Sink):
        """Every item of a batch is either stored or rejected: none is left unsaid."""
        result = sink.write(documents(5))
        assert result.stored + len(result.rejected) == 5
        assert result.stored == 5

    def test_a_replayed_batch_does_not_duplicate(self, sink: Sink):
        """Writing the same batch twice stores each document once (ids are event ids)."""
        batch = documents(4)
        before = sink.count()
        sink.write(batch)
        sink.write(batch)
        assert sink.count() == before + 4

    def test_a_rejected_item_carries_its_position_and_reason(
        self, sink: Sink, rejected_document: Document
    ):
        """A document the store refuses comes back with its place in the batch and why."""
        batch = [*documents(2), rejected_document, *documents(1)]
        result = sink.write(batch)
        assert result.stored == 3
        assert [r.position for r in result.rejected] == [2]
        assert result.rejected[0].reason

    def test_setup_is_idempotent(self, sink: Sink):
        """Setting up again changes nothing and keeps working."""
        sink.setup()
        assert not sink.setup().changed
        assert sink.write(documents(1)).stored == 1

    def test_an_unreachable_store_raises_sink_unavailable(self, unreachable: Sink):
        """A store that cannot be reached is said with `SinkUnavailable`: retry later."""
        with pytest.raises(SinkUnavailable):
            unreachable.write(documents(1), attempts=1)
        with pytest.raises(SinkUnavailable):
            unreachable.check()
