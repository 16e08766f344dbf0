"""Turning validated events into the insert's typed columns, and errors into ours."""

from __future__ import annotations

import ipaddress

import pytest

from clickstream.events import EventType
from clickstream.sinks.clickhouse import writer
from clickstream.sinks.clickhouse.client import translate
from clickstream.sinks.clickhouse.errors import ClickHouseFailure, ClickHouseUnavailable
from clickstream.sinks.clickhouse.schema import EVENT_COLUMNS, NO_KAFKA
from tests.helpers import make_event


class TestRow:
    """One event as the insert sends it."""

    def test_values_follow_the_column_order_and_types(self):
        """UUIDs as integers, the time as epoch milliseconds, the address as an object."""
        event = make_event(EventType.COMMENT)
        values = dict(zip(writer.COLUMN_NAMES, writer.row(event.to_dict(), 2, 41), strict=True))
        assert values["event_id"] == event.event_id.int
        assert values["session_id"] == event.session_id.int
        assert values["timestamp"] == 1772366400123  # 2026-03-01T12:00:00.123Z
        assert values["ip"] == ipaddress.ip_address("203.0.113.7")
        assert values["comment_text"] == "Well written."
        assert (values["kafka_partition"], values["kafka_offset"]) == (2, 41)
        assert len(values) == len(EVENT_COLUMNS)

    def test_events_without_an_article_carry_nulls(self):
        """A login has no article: its article columns are NULL, not empty strings."""
        login = writer.row(make_event(EventType.LOGIN).to_dict(), 0, 0)
        values = dict(zip(writer.COLUMN_NAMES, login, strict=True))
        assert values["article_id"] is values["category"] is values["comment_text"] is None

    def test_session_seq_of_version_2_and_null_for_version_1(self):
        """The column holds a v2 event's number in its session, and NULL for a v1 event."""
        v2 = make_event(schema_version=2, session_seq=5).to_dict()
        v1 = make_event(schema_version=1).to_dict()
        for event, version, seq in ((v2, 2, 5), (v1, 1, None)):
            values = dict(zip(writer.COLUMN_NAMES, writer.row(event, 0, 0), strict=True))
            assert (values["schema_version"], values["session_seq"]) == (version, seq)

    @pytest.mark.parametrize(
        ("field", "value"),
        [("event_id", "not-a-uuid"), ("timestamp", "2026-03-01T12:00:00"), ("ip", "300.1.1.1")],
    )
    def test_a_value_that_does_not_fit_raises(self, field, value):
        """A bad id, a time without a zone or a bad address is refused before the insert."""
        event = make_event().to_dict() | {field: value}
        with pytest.raises(ValueError):  # noqa: PT011  (each field has its own message)
            writer.row(event, 0, 0)


class TestColumns:
    """A batch as columns."""

    def test_columns_are_the_rows_transposed(self):
        """Column i holds field i of every converted event, in batch order."""
        events = [make_event(), make_event(EventType.LIKE)]
        records = [writer.Record(e.to_json()) for e in events]
        columns, result = writer.to_columns(records)
        assert result.rejected == {}
        assert len(columns) == len(EVENT_COLUMNS)
        assert columns[1] == [e.event_id.int for e in events]
        assert columns[-2:] == [[NO_KAFKA, NO_KAFKA], [NO_KAFKA, NO_KAFKA]]

    def test_parsed_events_are_accepted_too(self):
        """A record may carry the already-parsed event instead of its JSON."""
        event = make_event()
        columns, _ = writer.to_columns([writer.Record(event.to_dict(), 1, 7)])
        assert columns[1] == [event.event_id.int]

    def test_bad_items_are_rejected_by_index(self):
        """Items that cannot be converted are named by index and left out; the rest stay."""
        good = make_event().to_json()
        records = [
            writer.Record(good),
            writer.Record(b"{not json"),
            writer.Record(good.replace(b'"event_type"', b'"kind"')),
        ]
        columns, result = writer.to_columns(records)
        assert sorted(result.rejected) == [1, 2]
        assert len(columns[0]) == 1

    def test_an_empty_batch_has_no_columns(self):
        """Nothing to insert: no columns, no rejects."""
        assert writer.to_columns([]) == ([], writer.BatchResult())


class TestTranslate:
    """clickhouse-connect's errors as the consumer must tell them apart."""

    @pytest.fixture(autouse=True)
    def _needs_the_client(self):
        pytest.importorskip("clickhouse_connect")

    def test_a_transport_failure_is_unavailable(self):
        """Connection refused or a timeout (OperationalError): retry later."""
        from clickhouse_connect.driver.exceptions import OperationalError  # noqa: PLC0415

        error = translate(OperationalError("Error executing HTTP request"), "inserting")
        assert isinstance(error, ClickHouseUnavailable)

    @pytest.mark.parametrize("code", [202, 241, 252, 159])
    def test_overload_codes_are_unavailable(self, code):
        """Too many parts, memory, concurrency or a timeout on the server: retry later."""
        from clickhouse_connect.driver.exceptions import DatabaseError  # noqa: PLC0415

        error = translate(DatabaseError("Code: x", code=code), "inserting")
        assert isinstance(error, ClickHouseUnavailable)

    @pytest.mark.parametrize("code", [60, 81, 53, 16, 497, 516])
    def test_schema_and_access_errors_are_failures(self, code):
        """Missing table or database, a type mismatch, no access: stop, do not retry."""
        from clickhouse_connect.driver.exceptions import DatabaseError  # noqa: PLC0415

        error = translate(DatabaseError("Code: y", code=code), "inserting")
        assert isinstance(error, ClickHouseFailure)

    def test_a_proxy_5xx_without_a_code_is_unavailable(self):
        """A load balancer's 502 carries no ClickHouse code: retry later."""
        from clickhouse_connect.driver.exceptions import DatabaseError  # noqa: PLC0415

        error = translate(DatabaseError("HTTP driver received HTTP status 502"), "x")
        assert isinstance(error, ClickHouseUnavailable)

    def test_the_message_is_one_line_without_the_url(self):
        """Users see one line; the request URL (with its parameters) is left out."""
        from clickhouse_connect.driver.exceptions import DatabaseError  # noqa: PLC0415

        raw = "Code: 60.\nDB::Exception: Unknown table (for url http://h:8123?query=...)"
        error = translate(DatabaseError(raw, code=60), "inserting 5 events")
        assert (
            error.message
            == "ClickHouse refused inserting 5 events: Code: 60. DB::Exception: Unknown table"
        )
        assert "\n" not in str(error)
