"""Schema versions 1 and 2 in one topic, consumed into both sinks; stores made for version 1
brought up to version 2 by `setup`."""

from __future__ import annotations

import datetime as dt
from itertools import islice
from typing import Any

import orjson
from opensearchpy.helpers import scan

from clickstream.cli import jobs
from clickstream.consume.loop import EventConsumer
from clickstream.events import Document
from clickstream.produce import publish
from clickstream.settings import Settings
from clickstream.simulate.config import SimulationConfig
from clickstream.simulate.simulator import Simulator
from clickstream.sinks.clickhouse.sink import ClickHouseSink
from clickstream.sinks.opensearch import client as opensearch
from clickstream.sinks.opensearch.sink import OpenSearchSink
from tests.helpers import make_event
from tests.integration.test_clickhouse_consume import ch_settings  # noqa: F401  (a fixture)

START = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)
PER_VERSION = 1_500


def produce_both_versions(settings: Settings) -> dict[str, dict[str, Any]]:
    """Publish PER_VERSION events of each version, interleaved, to one topic; return each
    event's source by id."""
    v1 = Simulator(SimulationConfig(users=200, seed=11, start=START, schema_version=1))
    v2 = Simulator(SimulationConfig(users=200, seed=12, start=START, schema_version=2))
    messages = [
        message
        for pair in zip(
            islice(v1.messages(), PER_VERSION), islice(v2.messages(), PER_VERSION), strict=True
        )
        for message in pair
    ]
    stats = publish.ProduceStats()
    publish.run(messages, publish.KafkaSink(settings.kafka, settings.kafka.topic, stats), stats)
    assert (stats.delivered, stats.failed) == (2 * PER_VERSION, 0)
    sources = {}
    for _, value in messages:
        event = orjson.loads(value)
        sources[event["event_id"]] = event
    assert {e.get("schema_version") for e in sources.values()} == {1, 2}
    return sources


#: The events table's columns as the event's JSON has them: the time in milliseconds (`%f`
#: writes microseconds), the address without the IPv4-mapped prefix of an IPv6 column.
_AS_JSON = """
SELECT toString(event_id), schema_version, event_type,
       substring(formatDateTime(timestamp, '%Y-%m-%dT%H:%i:%S.%f', 'UTC'), 1, 23) || 'Z',
       user_id,
       toString(session_id), article_id, article_title, category, device_type, user_agent,
       replaceRegexpOne(IPv6NumToString(ip), '^::ffff:', ''), country, referrer,
       comment_text, session_seq
FROM {table} FINAL
"""
_FIELDS = (
    "event_id", "schema_version", "event_type", "timestamp", "user_id", "session_id",
    "article_id", "article_title", "category", "device_type", "user_agent", "ip", "country",
    "referrer", "comment_text", "session_seq",
)  # fmt: skip


class TestBothVersionsInOneTopic:
    """Version 1 and version 2 events, side by side, each stored as it was sent."""

    def test_opensearch_stores_each_event_as_its_source(self, settings, opensearch_client):
        """Every event of either version is indexed once; its _source is its JSON."""
        jobs.setup(settings)
        sources = produce_both_versions(settings)
        sink = OpenSearchSink.from_settings(settings)
        stats = EventConsumer(settings, sink).run(until_idle=2.0)
        assert (stats.indexed, stats.dead_lettered) == (2 * PER_VERSION, 0)
        prefix = settings.opensearch.index_prefix
        opensearch_client.indices.refresh(index=f"{prefix}-*")
        hits = scan(opensearch_client, index=f"{prefix}-*")
        stored = {hit["_id"]: hit["_source"] for hit in hits}
        assert stored == sources

    def test_clickhouse_stores_each_event_as_its_source(self, ch_settings):  # noqa: F811
        """Every event of either version is one row; v1 rows have a NULL session_seq."""
        settings = ch_settings()
        jobs.setup(settings)
        sources = produce_both_versions(settings)
        sink = ClickHouseSink.from_settings(settings)
        stats = EventConsumer(settings, sink).run(until_idle=2.0)
        assert (stats.indexed, stats.dead_lettered) == (2 * PER_VERSION, 0)
        rows = sink.client.query(_AS_JSON.format(table=sink.tables.events)).result_rows
        sink.close()
        stored = {row[0]: dict(zip(_FIELDS, row, strict=True)) for row in rows}
        expected = {id_: {"session_seq": None, **event} for id_, event in sources.items()}
        assert stored == expected


class TestUpgradingAStoreOfVersion1:
    """`setup` on stores that an earlier release made for version 1 readies them for 2."""

    def test_todays_index_gains_the_new_field(self, settings, opensearch_client):
        """An index made by the version 1 template takes version 2 events after setup."""
        prefix = settings.opensearch.index_prefix
        old = opensearch.index_template(prefix)
        del old["template"]["mappings"]["properties"]["session_seq"]
        old["version"] = old["_meta"]["schema_version"] = 1
        opensearch_client.transport.perform_request("PUT", f"/_index_template/{prefix}", body=old)
        event = make_event(schema_version=2, session_seq=7)
        index = f"{prefix}-{event.day}"
        opensearch_client.indices.create(index=index)
        jobs.setup(settings)
        sink = OpenSearchSink.from_settings(settings)
        result = sink.write([Document.of(event)])
        assert (result.stored, result.rejected) == (1, [])
        stored = opensearch_client.get(index=index, id=str(event.event_id))["_source"]
        assert stored["session_seq"] == 7

    def test_the_events_table_gains_the_new_column(self, ch_settings):  # noqa: F811
        """A table without session_seq gets it from setup, and stores version 2 events."""
        sink = ClickHouseSink.from_settings(ch_settings())
        sink.setup()
        table = sink.tables.events
        sink.client.command(f"ALTER TABLE {table} DROP COLUMN session_seq")
        sink.setup()
        event = make_event(schema_version=2, session_seq=7)
        assert sink.write([Document.of(event)]).stored == 1
        rows = sink.client.query(f"SELECT session_seq FROM {table}").result_rows  # noqa: S608
        sink.close()
        assert rows == [(7,)]
