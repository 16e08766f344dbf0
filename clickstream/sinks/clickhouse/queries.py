"""The queries that read the aggregates: for Grafana's panels and the offline report.

Each `Aggregate` has two queries with the same columns and order: `from_view` reads the
materialized view's table, merging its states; `from_events` computes the same figures
from the raw events, counting distinct event ids (`uniqExact(event_id)`), so duplicates
that the raw table still holds count once. The two must always agree; the tests hold
them to it after replays, and so can an operator (`verify` in a later command).

Every query takes a half-open time range `[start, end)` as the parameters
`{start:DateTime64(3, 'UTC')}` and `{end:...}` (see `time_range`), applied to the bucket
(minute, 5 minutes) or, for the funnel, to the session's start.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from clickstream.sinks.clickhouse.schema import ARTICLE_BUCKET_MINUTES, REACTIONS, Tables

START = "{start:DateTime64(3, 'UTC')}"
END = "{end:DateTime64(3, 'UTC')}"


def time_range(start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """The query parameters of the range `[start, end)` (aware datetimes)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the time range needs aware datetimes (UTC)")
    return {"start": start.astimezone(dt.UTC), "end": end.astimezone(dt.UTC)}


@dataclass(frozen=True)
class Aggregate:
    """One real-time aggregate: how to read it, and how to recompute it from raw events."""

    name: str
    description: str
    from_view: str
    from_events: str


def _in_range(column: str) -> str:
    return f"{column} >= {START} AND {column} < {END}"


def _events_per_minute(t: Tables) -> Aggregate:
    keys = "minute, event_type, category, device_type"
    return Aggregate(
        "events_per_minute",
        "events per minute by type, category and device",
        f"SELECT {keys}, uniqExactMerge(events) AS events\nFROM {t.events_1m}\n"
        f"WHERE {_in_range('minute')}\nGROUP BY {keys}\nORDER BY {keys}",
        "SELECT toStartOfMinute(timestamp) AS minute, event_type,\n"
        "    ifNull(category, '') AS category, device_type, uniqExact(event_id) AS events\n"
        f"FROM {t.events}\nWHERE {_in_range('minute')}\nGROUP BY {keys}\nORDER BY {keys}",
    )


def _audience_per_minute(t: Tables) -> Aggregate:
    return Aggregate(
        "audience_per_minute",
        "distinct users and sessions per minute",
        "SELECT minute, uniqExactMerge(users) AS users, uniqExactMerge(sessions) AS sessions\n"
        f"FROM {t.audience_1m}\nWHERE {_in_range('minute')}\nGROUP BY minute\nORDER BY minute",
        "SELECT toStartOfMinute(timestamp) AS minute,\n"
        "    uniqExact(user_id) AS users, uniqExact(session_id) AS sessions\n"
        f"FROM {t.events}\nWHERE {_in_range('minute')}\nGROUP BY minute\nORDER BY minute",
    )


def _article_popularity(t: Tables) -> Aggregate:
    kinds = {"views": "page_view", "likes": "like", "comments": "comment", "shares": "share"}
    merged = ",\n    ".join(f"uniqExactMerge({name}) AS {name}" for name in kinds)
    counted = ",\n    ".join(
        f"uniqExactIf(event_id, event_type = '{kind}') AS {name}" for name, kind in kinds.items()
    )
    keys = "bucket, article_id"
    return Aggregate(
        "article_popularity",
        f"views, likes, comments and shares per article per {ARTICLE_BUCKET_MINUTES} minutes",
        f"SELECT {keys}, anyLast(title) AS title, anyLast(category) AS category,\n"
        f"    {merged}\nFROM {t.articles_5m}\nWHERE {_in_range('bucket')}\n"
        f"GROUP BY {keys}\nORDER BY {keys}",
        f"SELECT toStartOfInterval(timestamp, INTERVAL {ARTICLE_BUCKET_MINUTES} MINUTE)\n"
        "    AS bucket,\n"
        "    assumeNotNull(article_id) AS article_id,\n"
        "    anyLast(ifNull(article_title, '')) AS title,\n"
        "    anyLast(ifNull(category, '')) AS category,\n"
        f"    {counted}\nFROM {t.events}\n"
        f"WHERE article_id IS NOT NULL AND {_in_range('bucket')}\n"
        f"GROUP BY {keys}\nORDER BY {keys}",
    )


_FUNNEL_STEPS = (
    "count() AS sessions,\n"
    "    countIf(first_login IS NOT NULL) AS logged_in,\n"
    "    countIf(first_view >= first_login) AS viewed,\n"
    "    countIf(first_view >= first_login AND first_reaction >= first_view) AS reacted"
)


def _session_funnel(t: Tables) -> Aggregate:
    # No partition pruning by day: a session that began before the range keeps a row on
    # each day it ran, and its start is the least of them.
    reacted = ", ".join(f"'{kind}'" for kind in REACTIONS)
    return Aggregate(
        "session_funnel",
        "sessions started in the range that logged in, then viewed, then reacted",
        f"SELECT {_FUNNEL_STEPS}\nFROM (\n"  # noqa: S608  (names checked by Tables)
        "    SELECT session_id, min(started) AS started, min(first_login) AS first_login,\n"
        "        min(first_view) AS first_view, min(first_reaction) AS first_reaction\n"
        f"    FROM {t.sessions}\n    GROUP BY session_id\n)\nWHERE {_in_range('started')}",
        f"SELECT {_FUNNEL_STEPS}\nFROM (\n"  # noqa: S608  (names checked by Tables)
        "    SELECT session_id, min(timestamp) AS started,\n"
        "        min(if(event_type = 'login', timestamp, NULL)) AS first_login,\n"
        "        min(if(event_type = 'page_view', timestamp, NULL)) AS first_view,\n"
        f"        min(if(event_type IN ({reacted}), timestamp, NULL)) AS first_reaction\n"
        f"    FROM {t.events}\n    GROUP BY session_id\n)\nWHERE {_in_range('started')}",
    )


def _bot_share(t: Tables) -> Aggregate:
    return Aggregate(
        "bot_share",
        "events and sessions per minute, and those of bots",
        "SELECT minute, uniqExactMerge(events) AS events, uniqExactMerge(bot_events) AS "
        "bot_events,\n    uniqExactMerge(sessions) AS sessions, "
        "uniqExactMerge(bot_sessions) AS bot_sessions\n"
        f"FROM {t.bots_1m}\nWHERE {_in_range('minute')}\nGROUP BY minute\nORDER BY minute",
        "SELECT toStartOfMinute(timestamp) AS minute, uniqExact(event_id) AS events,\n"
        "    uniqExactIf(event_id, is_bot) AS bot_events,\n"
        "    uniqExact(session_id) AS sessions, uniqExactIf(session_id, is_bot) AS bot_sessions\n"
        f"FROM {t.events}\nWHERE {_in_range('minute')}\nGROUP BY minute\nORDER BY minute",
    )


def aggregates(t: Tables) -> tuple[Aggregate, ...]:
    """Every real-time aggregate of the schema `t`."""
    return (
        _events_per_minute(t),
        _audience_per_minute(t),
        _article_popularity(t),
        _session_funnel(t),
        _bot_share(t),
    )


def top_articles(t: Tables) -> str:
    """The most viewed articles in the range, with their reactions; `{limit:UInt32}` rows."""
    return (
        "SELECT article_id, anyLast(title) AS title, anyLast(category) AS category,\n"
        "    uniqExactMerge(views) AS views, uniqExactMerge(likes) AS likes,\n"
        "    uniqExactMerge(comments) AS comments, uniqExactMerge(shares) AS shares\n"
        f"FROM {t.articles_5m}\nWHERE {_in_range('bucket')}\nGROUP BY article_id\n"
        "ORDER BY views DESC, article_id\nLIMIT {limit:UInt32}"
    )


def distinct_events(t: Tables) -> str:
    """How many distinct events the raw table holds in the range (by event time)."""
    return f"SELECT uniqExact(event_id) FROM {t.events} WHERE {_in_range('timestamp')}"  # noqa: S608


def ingest_latency(t: Tables) -> str:
    """Per minute of arrival: events stored and the delay from event time to storage (s).

    For the pipeline-health panel. A replayed event counts again here: this is about the
    pipeline's work, not the site's traffic."""
    return (
        "SELECT toStartOfMinute(ingested_at) AS minute, count() AS stored,\n"
        "    quantile(0.5)(dateDiff('millisecond', timestamp, ingested_at)) / 1000 AS p50_s,\n"
        "    quantile(0.99)(dateDiff('millisecond', timestamp, ingested_at)) / 1000 AS p99_s\n"
        f"FROM {t.events}\nWHERE {_in_range('ingested_at')}\nGROUP BY minute\nORDER BY minute"
    )


def overview(t: Tables) -> dict[str, str]:
    """What a short summary shows, all time: `events` (distinct events in the raw table),
    `users` (distinct users, from the audience view) and `categories` (distinct events per
    category from the events view, most first, `{limit:UInt32}` rows)."""
    return {
        "events": f"SELECT uniqExact(event_id) FROM {t.events}",  # noqa: S608
        "users": f"SELECT uniqExactMerge(users) FROM {t.audience_1m}",  # noqa: S608
        "categories": (
            "SELECT category, uniqExactMerge(events) AS events\n"
            f"FROM {t.events_1m}\nWHERE category != ''\nGROUP BY category\n"
            "ORDER BY events DESC, category\nLIMIT {limit:UInt32}"
        ),
    }
