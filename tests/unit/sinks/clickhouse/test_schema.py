"""The ClickHouse DDL and the aggregate queries, as text."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from clickstream.simulate.site import BOT_PATTERN
from clickstream.sinks.clickhouse import queries, schema


class TestTables:
    """Names of the database and tables."""

    def test_prefix_and_database_name_every_table(self):
        """Every table is `database.prefix + name`."""
        names = schema.Tables(database="analytics", prefix="cs_")
        assert names.events == "analytics.cs_events"
        assert all(t.startswith("analytics.cs_") for t in names.aggregates())
        assert names.view(names.events_1m) == "analytics.cs_events_1m_mv"

    @pytest.mark.parametrize(
        ("database", "prefix"),
        [("", ""), ("1db", ""), ("db;drop", ""), ("db", "x-"), ("db", "a b")],
    )
    def test_names_that_are_not_identifiers_are_refused(self, database, prefix):
        """A name that would need quoting (or could inject SQL) is refused at once."""
        with pytest.raises(ValueError, match="not a ClickHouse"):
            schema.Tables(database=database, prefix=prefix)


class TestStatements:
    """The DDL."""

    def test_every_statement_is_idempotent(self):
        """Each statement creates or adds only if missing, so setup can run again."""
        for statement in schema.statements(schema.Tables()):
            assert re.match(
                r"(CREATE (DATABASE|TABLE|MATERIALIZED VIEW)|ALTER TABLE \S+ ADD COLUMN) "
                "IF NOT EXISTS ",
                statement,
            )

    def test_columns_added_later_are_added_to_older_tables(self):
        """A table made before session_seq existed gains it, where the new table has it."""
        statements = schema.statements(schema.Tables())
        assert "session_seq Nullable(UInt16)" in statements[1]
        assert statements[2] == (
            "ALTER TABLE clickstream.events ADD COLUMN IF NOT EXISTS session_seq "
            "Nullable(UInt16) AFTER comment_text"
        )

    def test_the_database_comes_first_and_views_after_their_tables(self):
        """Order matters: a view's source and target must exist when it is created."""
        statements = schema.statements(schema.Tables())
        assert statements[0].startswith("CREATE DATABASE")
        first_view = next(i for i, s in enumerate(statements) if "MATERIALIZED VIEW" in s)
        assert all("MATERIALIZED VIEW" in s for s in statements[first_view:])
        assert sum("MATERIALIZED VIEW" in s for s in statements) == 5

    def test_events_table_is_typed_partitioned_and_deduplicating(self):
        """The raw table: DateTime64 in UTC, LowCardinality enums, daily partitions, and a
        sorting key that ends in event_id, so duplicates of an event merge away."""
        ddl = schema.statements(schema.Tables())[1]
        assert "timestamp DateTime64(3, 'UTC')" in ddl
        for column in ("event_type", "device_type", "country"):
            assert f"{column} LowCardinality(String)" in ddl
        assert "category LowCardinality(Nullable(String))" in ddl
        assert "event_id UUID" in ddl
        assert "session_id UUID" in ddl
        assert "ENGINE = ReplacingMergeTree" in ddl
        assert "PARTITION BY toDate(timestamp)" in ddl
        assert "ORDER BY (event_type, timestamp, event_id)" in ddl
        assert "ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)" in ddl

    def test_aggregates_hold_idempotent_states_only(self):
        """No sum or count of rows in a view: a replayed event would be counted twice."""
        views = [s for s in schema.statements(schema.Tables()) if "MATERIALIZED VIEW" in s]
        for view in views:
            assert not re.search(r"\b(count|sum|avg)(State|If)?\(", view), view

    def test_bot_test_is_the_simulators_pattern(self):
        """ClickHouse calls a user agent a bot exactly when the simulator's pattern does."""
        assert BOT_PATTERN.flags & re.IGNORECASE
        assert "(?i)" + BOT_PATTERN.pattern == schema.BOT_USER_AGENT
        ddl = schema.statements(schema.Tables())[1]
        assert schema.quote_string(schema.BOT_USER_AGENT) in ddl

    def test_quote_string_escapes(self):
        """Quotes and backslashes in a literal are escaped."""
        assert schema.quote_string("a'b\\c") == "'a\\'b\\\\c'"


class TestQueries:
    """The queries that read the aggregates."""

    def test_view_and_events_queries_take_the_time_range(self):
        """Both forms of every aggregate are bounded by the start and end parameters."""
        for aggregate in queries.aggregates(schema.Tables()):
            for sql in (aggregate.from_view, aggregate.from_events):
                assert queries.START in sql, aggregate.name
                assert queries.END in sql, aggregate.name

    def test_events_form_counts_distinct_events(self):
        """The recomputation counts event ids, never rows."""
        for aggregate in queries.aggregates(schema.Tables()):
            assert "count()" not in aggregate.from_events or aggregate.name == "session_funnel"

    def test_time_range_wants_aware_datetimes(self):
        """A naive datetime is refused rather than taken as local time."""
        with pytest.raises(ValueError, match="aware"):
            queries.time_range(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2))
        aware = queries.time_range(
            dt.datetime(2026, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
        )
        assert aware["start"] == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
