"""The sink contract against OpenSearch (the local search server)."""

from __future__ import annotations

import orjson
import pytest

from clickstream.events import Document
from clickstream.settings import Settings
from clickstream.sinks.opensearch.sink import OpenSearchSink
from tests.helpers import make_event, port_below_ephemeral_range
from tests.sink_contract import SinkContract


@pytest.fixture
def rejected_document() -> Document:
    """An event with a field the strict mapping does not know: OpenSearch refuses it."""
    doc = Document.of(make_event())
    source = orjson.loads(doc.source)
    source["unknown_field"] = 1
    return doc._replace(source=orjson.dumps(source))


@pytest.fixture
def sink(settings: Settings) -> OpenSearchSink:
    made = OpenSearchSink.from_settings(settings)
    made.setup()
    return made


@pytest.fixture
def unreachable(settings: Settings) -> OpenSearchSink:
    url = f"http://127.0.0.1:{port_below_ephemeral_range()}"
    search = settings.opensearch.model_copy(update={"url": url, "timeout": 2.0})
    return OpenSearchSink.from_settings(settings.model_copy(update={"opensearch": search}))


class TestOpenSearchSink(SinkContract):
    """OpenSearch keeps the contract."""
