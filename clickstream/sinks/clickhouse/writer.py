"""Writing a batch of events: one columnar insert of typed columns, never row by row.

The consumer hands over what it read from Kafka, already validated by
`clickstream.events.check_json`: each message's JSON with its partition and offset. The
writer turns them into columns (UUIDs as integers, times as epoch milliseconds, addresses
as `ipaddress` objects) and sends them in one `client.insert(..., column_oriented=True)`,
so the batch is one block on the server and one pass through each materialized view.

An event that cannot be converted (rare: they were validated) is rejected with its reason
and left out of the insert; the rest are stored. A failed insert fails the whole batch
with `ClickHouseUnavailable` (retry it) or `ClickHouseFailure` (stop: schema or types).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from clickstream.sinks.clickhouse.client import translate
from clickstream.sinks.clickhouse.schema import EVENT_COLUMNS, NO_KAFKA, Tables

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MILLISECOND = dt.timedelta(milliseconds=1)
COLUMN_NAMES = tuple(name for name, _ in EVENT_COLUMNS)
COLUMN_TYPES = tuple(kind for _, kind in EVENT_COLUMNS)


class Record(NamedTuple):
    """One Kafka message's event: its JSON (or the parsed object) and where it was read."""

    value: bytes | Mapping[str, Any]
    partition: int = NO_KAFKA
    offset: int = NO_KAFKA


@dataclass
class BatchResult:
    """What became of a batch: how many rows were stored, and each rejected item's reason."""

    stored: int = 0
    rejected: dict[int, str] = field(default_factory=dict)  # index in the batch -> reason


def _uuid(value: Any) -> int:
    text = str(value)
    digits = text.replace("-", "")
    if len(digits) != 32:
        raise ValueError(f"{text!r} is not a UUID")
    return int(digits, 16)


def _millis(value: Any) -> int:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, dt.datetime) or moment.tzinfo is None:
        raise ValueError(f"timestamp {value!r} is not an aware ISO 8601 time")
    return (moment - _EPOCH) // _MILLISECOND


def row(event: Mapping[str, Any], partition: int, offset: int) -> tuple[Any, ...]:
    """The event's values in `EVENT_COLUMNS` order, typed as the insert sends them.

    Raises `ValueError` (or `KeyError`, `TypeError`) for a value that does not fit its column.
    """
    return (
        int(event.get("schema_version", 1)),
        _uuid(event["event_id"]),
        str(event["event_type"]),
        _millis(event["timestamp"]),
        str(event["user_id"]),
        _uuid(event["session_id"]),
        event.get("article_id"),
        event.get("article_title"),
        event.get("category"),
        str(event["device_type"]),
        str(event["user_agent"]),
        ipaddress.ip_address(event["ip"]),
        str(event["country"]),
        event.get("referrer"),
        event.get("comment_text"),
        event.get("session_seq"),
        partition,
        offset,
    )


def to_columns(records: Sequence[Record]) -> tuple[list[list[Any]], BatchResult]:
    """The batch as columns, and the items that could not be converted (with reasons)."""
    result = BatchResult()
    rows: list[tuple[Any, ...]] = []
    for index, record in enumerate(records):
        try:
            event = orjson.loads(record.value) if isinstance(record.value, bytes) else record.value
            rows.append(row(event, record.partition, record.offset))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            result.rejected[index] = f"does not fit the events table: {type(exc).__name__}: {exc}"
    columns = [list(column) for column in zip(*rows, strict=True)] if rows else []
    return columns, result


class EventWriter:
    """Inserts batches of events into the raw events table of `tables`."""

    def __init__(self, client: Client, tables: Tables) -> None:
        self._client = client
        self._tables = tables

    def write(self, records: Sequence[Record]) -> BatchResult:
        """Store `records` with one insert; raises `ClickHouseUnavailable` (retry later) or
        `ClickHouseFailure` (the batch or the schema is wrong) if the insert fails."""
        columns, result = to_columns(records)
        if not columns:
            return result
        try:
            self._client.insert(
                self._tables.events,
                columns,
                column_names=COLUMN_NAMES,
                column_type_names=COLUMN_TYPES,
                column_oriented=True,
            )
        except Exception as exc:  # noqa: BLE001  (translated: retryable or not)
            raise translate(exc, f"an insert of {len(columns[0])} events") from None
        # Not the summary's written_rows: a server counts the views' rows in it too.
        result.stored = len(columns[0])
        return result
