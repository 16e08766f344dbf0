"""ClickHouse as a `Sink`: the schema is its setup, one columnar insert per batch its write.

A batch becomes one `INSERT` of typed columns (`clickstream.sinks.clickhouse.writer`), so
the server sees one block and each materialized view one pass. Exactly once in effect: the
raw table deduplicates by its sorting key and every aggregate is an idempotent state
(see the package docstring), so a replayed batch, with any boundaries, changes no figure.

An insert the server is too busy for (overload, limits, its own timeouts) is retried here,
waiting with the consumer's `wait`, up to the consumer's `retry_attempts`; one that still
fails, or a server that cannot be reached at all, raises `ClickHouseUnavailable`, a
`SinkUnavailable` (the consumer pauses, says so, and retries the batch later). A refusal
about the store (a missing table, a type the table does not take, a permission) raises
`ClickHouseRefused`, a `SinkRefused`: the consumer stops and commits nothing. An event
that does not fit a column (rare: they were validated) is rejected alone, with its reason.

The connection is opened on first use, not when the sink is built, so that building one
(for `status`, for each worker) costs nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from clickstream import logs
from clickstream.events import Document
from clickstream.retry import backoff_delay
from clickstream.settings import ClickHouseSettings, ConsumerSettings, Settings
from clickstream.sinks.base import Rejection, SetupResult, Wait, WriteResult
from clickstream.sinks.clickhouse import queries, schema
from clickstream.sinks.clickhouse.client import SETUP_HINT, connect, translate
from clickstream.sinks.clickhouse.errors import (
    ClickHouseBusy,
    ClickHouseFailure,
    ClickHouseUnavailable,
    TablesMissing,
)
from clickstream.sinks.clickhouse.writer import EventWriter, Record

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logs.get("clickhouse")

#: Most seconds to wait for a TCP connection (the whole request has `clickhouse.timeout`).
CONNECT_TIMEOUT = 10.0


def client_options(cfg: ClickHouseSettings) -> dict[str, Any]:
    """`connect` keyword arguments for the server `cfg` describes."""
    parts = urlsplit(cfg.url)
    secure = parts.scheme == "https"
    options: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or (8443 if secure else 8123),
        "username": cfg.username or "default",
        "password": "" if cfg.password is None else cfg.password.get_secret_value(),
        "secure": secure,
        "connect_timeout": min(CONNECT_TIMEOUT, cfg.timeout),
        "send_receive_timeout": cfg.timeout,
        # One client is used from the consumer's writing thread and its main thread: no
        # server session, whose lock would make concurrent requests fail.
        "autogenerate_session_id": False,
    }
    if secure:
        options["verify"] = cfg.verify_certs
        if cfg.ca_file is not None:
            options["ca_cert"] = str(cfg.ca_file)
    return options


@dataclass(frozen=True)
class Overview:
    """What ClickHouse holds, in short: distinct events, distinct users, top categories."""

    events: int
    users: int
    categories: dict[str, int]


class ClickHouseSink:
    """Writes batches to the raw events table of one ClickHouse database; the server's
    materialized views keep the aggregates."""

    name = "clickhouse"

    def __init__(
        self,
        cfg: ClickHouseSettings,
        retry: ConsumerSettings | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self.tables = schema.Tables(database=cfg.database, prefix=cfg.table_prefix)
        self.location = self.tables.events
        self.retry = retry or ConsumerSettings()
        self._rng = rng or random.Random()
        self._client: Client | None = None
        self._writer: EventWriter | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ClickHouseSink:
        """The sink the settings describe (no request is made yet)."""
        return cls(settings.clickhouse, settings.consumer)

    @property
    def client(self) -> Client:
        """The connection, opened on first use; raises `ClickHouseUnavailable` if nothing
        answers."""
        if self._client is None:
            self._client = connect(**client_options(self.cfg))
        return self._client

    @property
    def writer(self) -> EventWriter:
        """The batch writer over `client`."""
        if self._writer is None:
            self._writer = EventWriter(self.client, self.tables)
        return self._writer

    def _query(self, sql: str, doing: str, **parameters: object) -> list[tuple[object, ...]]:
        try:
            rows = self.client.query(sql, parameters=parameters).result_rows
        except (ClickHouseFailure, ClickHouseUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001  (every clickhouse-connect error is translated)
            raise translate(exc, doing) from None
        return [tuple(row) for row in rows]

    def _existing(self) -> set[str]:
        """Which of the schema's tables (by full name) the server has."""
        rows = self._query(
            "SELECT name FROM system.tables WHERE database = {db:String}",
            f"listing the tables of {self.tables.database}",
            db=self.tables.database,
        )
        return {f"{self.tables.database}.{row[0]}" for row in rows}

    def _wanted(self) -> set[str]:
        t = self.tables
        return {t.events, *t.aggregates(), *(t.view(target) for target in t.aggregates())}

    def setup(self) -> SetupResult:
        missing = self._wanted() - self._existing()
        for statement in schema.statements(self.tables):
            try:
                self.client.command(statement)
            except Exception as exc:  # noqa: BLE001  (translated)
                raise translate(exc, f"creating the tables of {self.tables.database}") from None
        what = f"clickhouse tables {self.tables.database}.{self.tables.prefix}*"
        views = len(self.tables.aggregates())
        detail = f"raw events and {views} aggregates with their views"
        return SetupResult(what, bool(missing), detail)

    def check(self) -> None:
        missing = self._wanted() - self._existing()
        if missing:
            raise TablesMissing(
                f"ClickHouse at {self.cfg.url} has no table {min(missing)}", hint=SETUP_HINT
            )

    def write(
        self, batch: Sequence[Document], *, wait: Wait | None = None, attempts: int | None = None
    ) -> WriteResult:
        records = [Record(doc.source, doc.partition, doc.offset) for doc in batch]
        sleep = wait or time.sleep
        most = attempts or self.retry.retry_attempts
        attempt = 0
        while True:
            attempt += 1
            try:
                result = self.writer.write(records)
                break
            except ClickHouseBusy as exc:
                # Unreachable is not retried here: the consumer pauses and says so at once.
                if attempt >= most:
                    raise ClickHouseUnavailable(
                        f"{exc.message} (after {attempt} attempts)", hint=exc.hint
                    ) from None
                delay = backoff_delay(
                    attempt, self.retry.retry_initial, self.retry.retry_max, self._rng
                )
                log.warning("insert failed; retrying", attempt=attempt, delay=round(delay, 3))
                sleep(delay)
        return WriteResult(
            stored=result.stored,
            rejected=[Rejection(position, reason) for position, reason in result.rejected.items()],
            retries=attempt - 1,
        )

    def count(self) -> int:
        rows = self._query(
            f"SELECT uniqExact(event_id) FROM {self.tables.events}",  # noqa: S608  (our names)
            f"counting the events in {self.tables.events}",
        )
        return int(str(rows[0][0]))

    def overview(self, top: int = 5) -> Overview:
        """Distinct events and users, and the `top` categories by events, from the views."""
        sql = queries.overview(self.tables)
        events = self._query(sql["events"], f"counting the events in {self.tables.events}")
        users = self._query(sql["users"], f"reading {self.tables.audience_1m}")
        categories = self._query(sql["categories"], f"reading {self.tables.events_1m}", limit=top)
        return Overview(
            events=int(str(events[0][0])),
            users=int(str(users[0][0])),
            categories={str(name): int(str(count)) for name, count in categories},
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = self._writer = None


def open_sink(settings: Settings) -> ClickHouseSink:
    """A `SinkFactory`: the ClickHouse sink of `settings`."""
    return ClickHouseSink.from_settings(settings)
