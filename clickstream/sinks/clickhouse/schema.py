"""The ClickHouse schema as code: the raw events table and the real-time aggregates.

Every statement is idempotent (`IF NOT EXISTS`), so `setup` may run any number of times.
The aggregates are materialized views: ClickHouse runs their SELECT on every block
inserted into the events table and writes the result to their target table, an
AggregatingMergeTree whose rows merge by key in the background. Readers always merge at
query time too (`-Merge` combinators and `GROUP BY` the key, see `queries`), so an answer
never depends on whether a background merge has happened yet.

Each aggregate column holds an idempotent state: the set of event ids it counts
(`uniqExact`), the set of users or sessions, or a `min`/`max`. Inserting the same event
twice unions a set with itself, so a replay after a crash changes no figure, whatever the
boundaries of the replayed batches (see the package docstring for why not insert tokens).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from clickstream import events

#: ClickHouse identifiers we create: unquoted-safe names.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: The columns the writer sends, in order, with their ClickHouse types.
EVENT_COLUMNS: Final = (
    ("schema_version", "UInt8"),
    ("event_id", "UUID"),
    ("event_type", "LowCardinality(String)"),
    ("timestamp", "DateTime64(3, 'UTC')"),
    ("user_id", "String"),
    ("session_id", "UUID"),
    ("article_id", "Nullable(String)"),
    ("article_title", "Nullable(String)"),
    ("category", "LowCardinality(Nullable(String))"),
    ("device_type", "LowCardinality(String)"),
    ("user_agent", "LowCardinality(String)"),
    ("ip", "IPv6"),
    ("country", "LowCardinality(String)"),
    ("referrer", "Nullable(String)"),
    ("comment_text", "Nullable(String)"),
    # Since schema version 2; NULL for version 1 events, which do not carry it.
    ("session_seq", "Nullable(UInt16)"),
    ("kafka_partition", "Int32"),
    ("kafka_offset", "Int64"),
)
#: Columns added to the events table after it was first released, with the column they follow:
#: `setup` adds them to a table created before (`ADD COLUMN IF NOT EXISTS`).
ADDED_COLUMNS: Final = (("session_seq", "comment_text"),)
#: Where an event did not come from Kafka (a backfill, a test), its partition and offset.
NO_KAFKA: Final = events.NO_KAFKA
#: The events that react to an article, the last step of the session funnel.
REACTIONS: Final = ("like", "comment", "share")
#: Bucket widths of the aggregates.
ARTICLE_BUCKET_MINUTES: Final = 5


#: What makes a user agent a bot's, as an RE2 pattern for `match()`: the simulator's
#: `clickstream.simulate.site.BOT_PATTERN` (sinks do not import the simulator; a test
#: holds the two equal).
BOT_USER_AGENT: Final = "(?i)bot|crawl|spider|headless|python-requests|scrapy|curl/"


def quote_string(value: str) -> str:
    """`value` as a ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class Tables:
    """The names of everything the sink creates: one database, one prefix for its tables."""

    database: str = "clickstream"
    prefix: str = ""

    def __post_init__(self) -> None:
        for what, value in (("database", self.database), ("table prefix", self.prefix)):
            if not _IDENTIFIER.match(value) and not (what == "table prefix" and value == ""):
                raise ValueError(
                    f"{value!r} is not a ClickHouse {what} name: use letters, digits and '_', "
                    "not starting with a digit"
                )

    def _name(self, table: str) -> str:
        return f"{self.database}.{self.prefix}{table}"

    @property
    def events(self) -> str:
        """The raw events, one row per event (duplicates until merged away)."""
        return self._name("events")

    @property
    def events_1m(self) -> str:
        """Events per minute by type, category and device."""
        return self._name("events_1m")

    @property
    def audience_1m(self) -> str:
        """Distinct users and sessions per minute."""
        return self._name("audience_1m")

    @property
    def articles_5m(self) -> str:
        """Views, likes, comments and shares per article per 5 minutes."""
        return self._name("articles_5m")

    @property
    def sessions(self) -> str:
        """One row per session: when it started and which funnel steps it reached."""
        return self._name("sessions")

    @property
    def bots_1m(self) -> str:
        """Events and sessions per minute, and how many of them bots made."""
        return self._name("bots_1m")

    def aggregates(self) -> tuple[str, ...]:
        """The target tables of the materialized views."""
        return (self.events_1m, self.audience_1m, self.articles_5m, self.sessions, self.bots_1m)

    def view(self, target: str) -> str:
        """The materialized view that fills `target`."""
        return f"{target}_mv"


def _events_table(t: Tables) -> str:
    columns = ",\n    ".join(f"{name} {kind}" for name, kind in EVENT_COLUMNS)
    return f"""CREATE TABLE IF NOT EXISTS {t.events}
(
    {columns},
    is_bot Bool MATERIALIZED match(user_agent, {quote_string(BOT_USER_AGENT)}),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(timestamp)
ORDER BY (event_type, timestamp, event_id)"""


def _aggregate_table(name: str, columns: str, key: str, partition: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {name}
(
    {columns}
)
ENGINE = AggregatingMergeTree
PARTITION BY {partition}
ORDER BY ({key})"""


def _view(t: Tables, target: str, select: str) -> str:
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {t.view(target)} TO {target}\nAS {select}"


def _reaction_test() -> str:
    return f"event_type IN ({', '.join(quote_string(kind) for kind in REACTIONS)})"


def statements(t: Tables) -> list[str]:
    """The DDL that creates the schema, in order; each statement is idempotent."""
    minute = "minute DateTime('UTC')"
    event_ids = "AggregateFunction(uniqExact, UUID)"
    bucket = f"toStartOfInterval(timestamp, INTERVAL {ARTICLE_BUCKET_MINUTES} MINUTE)"
    kinds = dict(EVENT_COLUMNS)
    return [
        f"CREATE DATABASE IF NOT EXISTS {t.database}",
        _events_table(t),
        *(
            f"ALTER TABLE {t.events} ADD COLUMN IF NOT EXISTS {name} {kinds[name]} AFTER {after}"
            for name, after in ADDED_COLUMNS
        ),
        _aggregate_table(
            t.events_1m,
            f"{minute},\n    event_type LowCardinality(String),\n"
            "    category LowCardinality(String),\n    device_type LowCardinality(String),\n"
            f"    events {event_ids}",
            "minute, event_type, category, device_type",
            "toDate(minute)",
        ),
        _aggregate_table(
            t.audience_1m,
            f"{minute},\n    users AggregateFunction(uniqExact, String),\n"
            "    sessions AggregateFunction(uniqExact, UUID)",
            "minute",
            "toDate(minute)",
        ),
        _aggregate_table(
            t.articles_5m,
            "bucket DateTime('UTC'),\n    article_id String,\n"
            "    title SimpleAggregateFunction(anyLast, String),\n"
            "    category SimpleAggregateFunction(anyLast, String),\n"
            f"    views {event_ids},\n    likes {event_ids},\n"
            f"    comments {event_ids},\n    shares {event_ids}",
            "bucket, article_id",
            "toDate(bucket)",
        ),
        _aggregate_table(
            t.sessions,
            "day Date,\n    session_id UUID,\n"
            "    started SimpleAggregateFunction(min, DateTime64(3, 'UTC')),\n"
            "    user_id SimpleAggregateFunction(anyLast, String),\n"
            "    first_login SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),\n"
            "    first_view SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),\n"
            "    first_reaction SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))",
            "day, session_id",
            "day",
        ),
        _aggregate_table(
            t.bots_1m,
            f"{minute},\n    events {event_ids},\n    bot_events {event_ids},\n"
            "    sessions AggregateFunction(uniqExact, UUID),\n"
            "    bot_sessions AggregateFunction(uniqExact, UUID)",
            "minute",
            "toDate(minute)",
        ),
        _view(
            t,
            t.events_1m,
            "SELECT toStartOfMinute(timestamp) AS minute, event_type,\n"
            "    ifNull(category, '') AS category, device_type,\n"
            "    uniqExactState(event_id) AS events\n"
            f"FROM {t.events}\nGROUP BY minute, event_type, category, device_type",
        ),
        _view(
            t,
            t.audience_1m,
            "SELECT toStartOfMinute(timestamp) AS minute,\n"
            "    uniqExactState(user_id) AS users, uniqExactState(session_id) AS sessions\n"
            f"FROM {t.events}\nGROUP BY minute",
        ),
        _view(
            t,
            t.articles_5m,
            f"SELECT {bucket} AS bucket, assumeNotNull(article_id) AS article_id,\n"
            "    anyLast(ifNull(article_title, '')) AS title,\n"
            "    anyLast(ifNull(category, '')) AS category,\n"
            "    uniqExactStateIf(event_id, event_type = 'page_view') AS views,\n"
            "    uniqExactStateIf(event_id, event_type = 'like') AS likes,\n"
            "    uniqExactStateIf(event_id, event_type = 'comment') AS comments,\n"
            "    uniqExactStateIf(event_id, event_type = 'share') AS shares\n"
            f"FROM {t.events}\nWHERE article_id IS NOT NULL\nGROUP BY bucket, article_id",
        ),
        _view(
            t,
            t.sessions,
            # Each funnel step is the first time the session reached it; NULL where a block
            # has no such event, which `min` skips when blocks merge.
            "SELECT toDate(timestamp) AS day, session_id, min(timestamp) AS started,\n"
            "    anyLast(user_id) AS user_id,\n"
            "    min(if(event_type = 'login', timestamp, NULL)) AS first_login,\n"
            "    min(if(event_type = 'page_view', timestamp, NULL)) AS first_view,\n"
            f"    min(if({_reaction_test()}, timestamp, NULL)) AS first_reaction\n"
            f"FROM {t.events}\nGROUP BY day, session_id",
        ),
        _view(
            t,
            t.bots_1m,
            "SELECT toStartOfMinute(timestamp) AS minute,\n"
            "    uniqExactState(event_id) AS events,\n"
            "    uniqExactStateIf(event_id, is_bot) AS bot_events,\n"
            "    uniqExactState(session_id) AS sessions,\n"
            "    uniqExactStateIf(session_id, is_bot) AS bot_sessions\n"
            f"FROM {t.events}\nGROUP BY minute",
        ),
    ]
