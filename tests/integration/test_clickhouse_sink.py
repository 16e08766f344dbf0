"""The ClickHouse schema, writer and aggregates against the local server.

The exactly-once property: after any replay (the same batch again, or overlapping batches
with other boundaries) every aggregate equals the same figure recomputed from the distinct
raw events.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterator

import pytest

from clickstream.simulate.config import SimulationConfig
from clickstream.simulate.simulator import Simulator
from clickstream.sinks.clickhouse import queries, schema
from clickstream.sinks.clickhouse.client import connect
from clickstream.sinks.clickhouse.errors import ClickHouseFailure, ClickHouseUnavailable
from clickstream.sinks.clickhouse.writer import EventWriter, Record
from clickstream.stack.chserver import control
from tests.integration.test_clickhouse_server import Server

pytest.importorskip("clickhouse_connect")
pytest.importorskip("chdb")

START = dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC)
WHOLE_RANGE = queries.time_range(dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime.now(dt.UTC))


def simulated(count: int, seed: int = 1) -> list[Record]:
    """`count` simulated events from one backfill, as Kafka records on 3 partitions."""
    config = SimulationConfig(seed=seed, start=START, end=START + dt.timedelta(days=2))
    messages = itertools.islice(Simulator(config).messages(), count)
    return [Record(value, i % 3, i // 3) for i, (_key, value) in enumerate(messages)]


@pytest.fixture(scope="module")
def server(tmp_path_factory, unavailable) -> Iterator[Server]:
    """One server for the module's tests."""
    running = Server(tmp_path_factory.mktemp("chsink"), unavailable)
    running.start()
    yield running
    control.stop(running.state_dir)


@pytest.fixture
def client(server):
    client = connect("127.0.0.1", server.port)
    yield client
    client.close()


@pytest.fixture
def tables(client) -> Iterator[schema.Tables]:
    """The schema in a fresh database, dropped afterwards."""
    names = schema.Tables(database=f"test_{uuid.uuid4().hex}", prefix="cs_")
    for statement in schema.statements(names):
        client.command(statement)
    yield names
    client.command(f"DROP DATABASE IF EXISTS {names.database}")


def figures(client, tables: schema.Tables) -> dict[str, list[tuple[object, ...]]]:
    """Every aggregate as read from its view."""
    return {
        aggregate.name: client.query(aggregate.from_view, parameters=WHOLE_RANGE).result_rows
        for aggregate in queries.aggregates(tables)
    }


def assert_views_match_events(client, tables: schema.Tables) -> None:
    for aggregate in queries.aggregates(tables):
        from_view = client.query(aggregate.from_view, parameters=WHOLE_RANGE).result_rows
        from_events = client.query(aggregate.from_events, parameters=WHOLE_RANGE).result_rows
        assert from_view, f"{aggregate.name} is empty"
        assert from_view == from_events, aggregate.name


class TestSchema:
    """Creating the schema."""

    def test_creating_twice_is_harmless(self, client, tables):
        """Every statement may run again on an existing schema."""
        for statement in schema.statements(tables):
            client.command(statement)
        shown = client.query(
            "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
            parameters={"db": tables.database},
        ).result_rows
        assert len(shown) == 1 + 2 * len(tables.aggregates())


class TestWriter:
    """Inserting batches and the aggregates they feed."""

    def test_a_batch_feeds_every_aggregate(self, client, tables):
        """After one batch every aggregate equals its recomputation from the raw events."""
        records = simulated(3000)
        result = EventWriter(client, tables).write(records)
        assert (result.stored, result.rejected) == (3000, {})
        assert_views_match_events(client, tables)
        distinct = client.query(queries.distinct_events(tables), parameters=WHOLE_RANGE)
        assert distinct.result_rows == [(3000,)]

    def test_bots_are_counted(self, client, tables):
        """The bot share sees the simulator's bots (their user agents say so)."""
        EventWriter(client, tables).write(simulated(3000))
        bots = client.query(f"SELECT countIf(is_bot), count() FROM {tables.events}")  # noqa: S608
        bots = bots.result_rows
        assert 0 < bots[0][0] < bots[0][1]

    def test_the_same_batch_again_changes_nothing(self, client, tables):
        """Re-inserting a batch (a replay of it) leaves every aggregate as it was."""
        writer, records = EventWriter(client, tables), simulated(2000)
        writer.write(records)
        before = figures(client, tables)
        writer.write(records)
        assert figures(client, tables) == before
        assert_views_match_events(client, tables)

    def test_a_replay_with_other_batch_boundaries_changes_nothing(self, client, tables):
        """Overlapping batches with boundaries unlike the first run's leave every figure as
        one clean pass would have it."""
        records = simulated(4000)
        clean = schema.Tables(database=tables.database, prefix="clean_")
        for statement in schema.statements(clean):
            client.command(statement)
        EventWriter(client, clean).write(records)
        writer = EventWriter(client, tables)
        for start, end in ((0, 1500), (1000, 2600), (700, 3100), (2500, 4000), (3999, 4000)):
            writer.write(records[start:end])
        stored = client.query(f"SELECT count() FROM {tables.events}").result_rows  # noqa: S608
        assert stored[0][0] > len(records)  # the replays did insert duplicates
        assert figures(client, tables) == figures(client, clean)
        assert_views_match_events(client, tables)

    def test_ten_thousand_simulated_events(self, client, tables):
        """A large simulated batch, split as a consumer would, is stored exactly."""
        records, writer = simulated(12_000, seed=7), EventWriter(client, tables)
        for start in range(0, len(records), 5000):
            assert not writer.write(records[start : start + 5000]).rejected
        distinct = client.query(queries.distinct_events(tables), parameters=WHOLE_RANGE)
        assert distinct.result_rows == [(12_000,)]
        assert_views_match_events(client, tables)

    def test_a_batch_larger_than_one_block(self, client, tables):
        """A batch the client sends as several Native blocks is stored whole."""
        assert EventWriter(client, tables).write(simulated(20_000, seed=3)).stored == 20_000
        distinct = client.query(queries.distinct_events(tables), parameters=WHOLE_RANGE)
        assert distinct.result_rows == [(20_000,)]

    def test_an_event_that_does_not_fit_is_rejected_alone(self, client, tables):
        """One malformed item is rejected with its reason; the rest of the batch is stored."""
        records = simulated(10)
        value = records[4].value
        assert isinstance(value, bytes)
        records[4] = Record(value.replace(b'"ip":"', b'"ip":"x'), 0, 99)
        result = EventWriter(client, tables).write(records)
        assert result.stored == 9
        assert list(result.rejected) == [4]
        assert "does not fit" in result.rejected[4]

    def test_a_missing_table_is_a_failure(self, client):
        """A schema that was never created stops the consumer: retrying will not help."""
        missing = schema.Tables(database=f"absent_{uuid.uuid4().hex}")
        with pytest.raises(ClickHouseFailure, match="refused"):
            EventWriter(client, missing).write(simulated(5))

    def test_a_stopped_server_is_unavailable(self, tmp_path, unavailable):
        """With the server gone the batch is to be retried later, not dropped."""
        server = Server(tmp_path, unavailable)
        server.start()
        client = connect("127.0.0.1", server.port)
        control.stop(tmp_path)
        with pytest.raises(ClickHouseUnavailable, match="unavailable"):
            EventWriter(client, schema.Tables()).write(simulated(5))

    def test_connecting_to_nothing_is_unavailable(self):
        """No server at the address: ClickHouseUnavailable, in one line."""
        from tests.helpers import port_below_ephemeral_range  # noqa: PLC0415

        with pytest.raises(ClickHouseUnavailable) as caught:
            connect("127.0.0.1", port_below_ephemeral_range(), connect_timeout=2)
        assert "\n" not in str(caught.value)
