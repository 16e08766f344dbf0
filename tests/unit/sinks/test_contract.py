"""The sink contract, against the in-memory sink the consume loop's unit tests use.
(`tests/integration/test_sink_contract.py` runs it against OpenSearch.)"""

from __future__ import annotations

import pytest

from clickstream.events import Document
from tests.helpers import make_event
from tests.memory_sink import MemorySink
from tests.sink_contract import SinkContract


@pytest.fixture
def rejected_document() -> Document:
    return Document.of(make_event())


@pytest.fixture
def sink(rejected_document: Document) -> MemorySink:
    made = MemorySink(reject={rejected_document.event_id: "refused: a test says so"})
    made.setup()
    return made


@pytest.fixture
def unreachable() -> MemorySink:
    made = MemorySink()
    made.reachable = False
    return made


class TestMemorySink(SinkContract):
    """The in-memory sink keeps the contract."""
