"""The OpenSearch module against a real search server: template, bulk indexing, rejections."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import orjson
import pytest
from opensearchpy import OpenSearch

from clickstream.events import Event, EventType
from clickstream.settings import ConsumerSettings, OpenSearchSettings
from clickstream.sinks.opensearch.bulk import BulkIndexer
from clickstream.sinks.opensearch.client import count, ensure_template, make_client, summary
from tests.helpers import make_event

pytestmark = pytest.mark.integration

DAY1 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DAY2 = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
TYPES = list(EventType)


@pytest.fixture
def client(opensearch_url: str) -> Iterator[OpenSearch]:
    """Our own client for the session's server, the way `clickstream` builds it."""
    client = make_client(OpenSearchSettings(url=opensearch_url, timeout=60))
    yield client
    client.close()


@pytest.fixture
def bulk(client: OpenSearch, index_prefix: str) -> BulkIndexer:
    """A bulk indexer for this test's prefix, with its template installed."""
    ensure_template(client, index_prefix)
    retry = ConsumerSettings(retry_initial=0.05, retry_max=0.5, retry_attempts=4)
    return BulkIndexer(client, index_prefix, retry)


def two_days(n: int) -> list[Event]:
    """`n` events of every type, half in the last minute of DAY1, half just after midnight."""
    events = []
    for i in range(n):
        start = DAY2 - dt.timedelta(minutes=1) if i < n // 2 else DAY2
        timestamp = start + dt.timedelta(milliseconds=59_999 * (i % (n // 2)) // (n // 2 - 1))
        events.append(make_event(TYPES[i % len(TYPES)], timestamp=timestamp, user_id=f"u{i % 7}"))
    return events


def daily_indices(client: OpenSearch, prefix: str) -> dict[str, int]:
    """Each `<prefix>-*` index with its document count."""
    client.indices.refresh(index=f"{prefix}-*")
    rows = client.cat.indices(index=f"{prefix}-*", format="json")
    return {row["index"]: int(row["docs.count"]) for row in rows}


class TestTemplate:
    def test_ensure_template_is_idempotent(self, client: OpenSearch, index_prefix: str):
        """The first call installs the template, the second finds it up to date."""
        assert ensure_template(client, index_prefix) is True
        assert ensure_template(client, index_prefix) is False

    def test_new_daily_index_takes_the_template_mapping(self, client, bulk, index_prefix):
        """A daily index created by a bulk request has our strict mapping."""
        bulk.index([make_event(timestamp=DAY1)])
        mapping = client.indices.get_mapping(index=f"{index_prefix}-2026.03.01")
        mappings = mapping[f"{index_prefix}-2026.03.01"]["mappings"]
        assert mappings["dynamic"] == "strict"
        assert mappings["properties"]["ip"] == {"type": "ip"}


class TestBulkIndexing:
    def test_thousand_events_over_two_days(self, client, bulk, index_prefix):
        """1,000 events straddling midnight land, all of them, in two daily indices."""
        result = bulk.index(two_days(1000))
        assert (result.indexed, result.rejected, result.retries) == (1000, [], 0)
        assert count(client, index_prefix) == 1000
        assert daily_indices(client, index_prefix) == {
            f"{index_prefix}-2026.03.01": 500,
            f"{index_prefix}-2026.03.02": 500,
        }

    def test_reindexing_the_same_events_adds_nothing(self, client, bulk, index_prefix):
        """A replayed batch overwrites itself by `_id`, so the count stays 1,000."""
        events = two_days(1000)
        bulk.index(events)
        again = bulk.index([(e, e.to_json()) for e in events])
        assert again.indexed == 1000
        assert count(client, index_prefix) == 1000

    def test_summary_counts_what_was_indexed(self, client, bulk, index_prefix):
        """The demo's summary adds up to what was indexed, by type and by user."""
        bulk.index(two_days(600))
        result = summary(client, index_prefix)
        assert result["total"] == 600
        assert result["by_event_type"] == {t.value: 100 for t in TYPES}
        assert sum(result["top_users"].values()) == 600


class TestRejections:
    def test_mapping_rejects_bad_documents_and_keeps_the_good(self, client, bulk, index_prefix):
        """Documents the mapping refuses are reported with OpenSearch's reason, the rest land."""
        events = two_days(10)
        bad_ip = {**events[3].to_dict(), "ip": "not-an-ip"}
        bad_time = {**events[6].to_dict(), "timestamp": "yesterday"}
        unknown = {**events[8].to_dict(), "mood": "happy"}
        items: list[Event | tuple[Event, bytes]] = list(events)
        items[3] = (events[3], orjson.dumps(bad_ip))
        items[6] = (events[6], orjson.dumps(bad_time))
        items[8] = (events[8], orjson.dumps(unknown))

        result = bulk.index(items)

        assert result.indexed == 7
        assert [(r.position, r.item, r.status) for r in result.rejected] == [
            (3, items[3], 400),
            (6, items[6], 400),
            (8, items[8], 400),
        ]
        ip, timestamp, field = (r.reason for r in result.rejected)
        assert ip.startswith("mapper_parsing_exception: ")
        assert "[ip]" in ip
        assert "[timestamp]" in timestamp
        assert field.startswith("strict_dynamic_mapping_exception: ")
        assert count(client, index_prefix) == 7
