"""The saved visualizations computed without Dashboards: their aggregations run against
OpenSearch and the answer is flattened into rows, as OpenSearch Dashboards does before it
draws. `search_body` and `tabify` are pure; `compute` is the one place that asks OpenSearch.

A chart's rows have one column per bucket aggregation (in nesting order) then one per
metric: `["page_view", 1234]` for events by type, `["2026-01-01T08:00:00Z", "like", 17]`
for the volume over time. The terminal report, `--json` and the HTML report all show
these rows, so the numbers are the same everywhere.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import AuthorizationException

from clickstream.dashboards import saved_objects
from clickstream.dashboards.model import Chart, Column, Report, TimeRange, iso
from clickstream.dashboards.saved_objects import Visualization
from clickstream.errors import ConfigError
from clickstream.settings import Settings
from clickstream.sinks.opensearch import client as opensearch

#: Aggregations the offline renderer understands, by role.
METRIC_TYPES = frozenset({"count", "cardinality"})
BUCKET_TYPES = frozenset({"terms", "date_histogram"})
#: `auto` picks the smallest of these that gives at most this many buckets.
AUTO_TARGET_BUCKETS = 60
AUTO_INTERVALS: tuple[tuple[str, float], ...] = (
    ("100ms", 0.1),
    ("500ms", 0.5),
    ("1s", 1),
    ("10s", 10),
    ("30s", 30),
    ("1m", 60),
    ("5m", 300),
    ("10m", 600),
    ("30m", 1800),
    ("1h", 3600),
    ("3h", 3 * 3600),
    ("12h", 12 * 3600),
    ("1d", 86400),
    ("7d", 7 * 86400),
    ("30d", 30 * 86400),
)
#: The interval units of the visualize editor, as fixed OpenSearch intervals.
_UNIT_INTERVALS = {"s": "1s", "m": "1m", "h": "1h", "d": "1d", "w": "7d"}
_CALENDAR = {"M": "1M", "y": "1y"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(value: str, now: dt.datetime) -> dt.datetime:
    """`--since`: a duration back from `now` (`90s`, `15m`, `1h`, `2d`, `1w`) or a time."""
    match = _DURATION.match(value)
    if match:
        try:
            return now - dt.timedelta(seconds=float(match[1]) * _SECONDS[match[2]])
        except OverflowError:
            raise ConfigError(
                f"--since {value!r} reaches back before year 1; use a shorter duration"
            ) from None
    try:
        start = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {value!r} is neither a duration (30m, 1h, 2d, 1w) nor an ISO 8601 time"
        ) from None
    return start if start.tzinfo else start.replace(tzinfo=dt.UTC)


def auto_interval(span_seconds: float) -> str:
    """The interval `auto` stands for: at most `AUTO_TARGET_BUCKETS` buckets over the span."""
    for name, seconds in AUTO_INTERVALS:
        if span_seconds / seconds <= AUTO_TARGET_BUCKETS:
            return name
    return AUTO_INTERVALS[-1][0]


def interval_of(agg: Mapping[str, Any], time_range: TimeRange | None) -> str:
    """The OpenSearch interval of a `date_histogram` agg (`auto`, a unit, or custom `2h`)."""
    value = str(agg["params"].get("interval", "auto"))
    if value == "auto":
        return auto_interval(time_range.seconds if time_range else 0.0)
    if value == "custom":
        value = str(agg["params"].get("customInterval", "1h"))
    return _UNIT_INTERVALS.get(value, _CALENDAR.get(value, value))


def _label(agg: Mapping[str, Any]) -> str:
    params = agg.get("params", {})
    if params.get("customLabel"):
        return str(params["customLabel"])
    defaults = {
        "count": "Count",
        "cardinality": f"Unique count of {params.get('field')}",
        "terms": str(params.get("field")),
        "date_histogram": str(params.get("field")),
    }
    return defaults.get(agg["type"], str(agg["type"]))


def split_aggs(vis: Visualization) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The visualization's bucket aggs (in nesting order) and metric aggs, checked."""
    buckets, metrics = [], []
    for agg in vis.aggs:
        if agg["type"] in BUCKET_TYPES:
            buckets.append(agg)
        elif agg["type"] in METRIC_TYPES:
            metrics.append(agg)
        else:
            raise ConfigError(
                f"visualization {vis.id}: aggregation {agg['type']!r} cannot be rendered offline"
            )
    if not metrics:
        raise ConfigError(f"visualization {vis.id} has no metric")
    return buckets, metrics


def columns(vis: Visualization) -> list[Column]:
    buckets, metrics = split_aggs(vis)
    return [
        Column(
            id=str(a["id"]),
            label=_label(a),
            role=role,
            agg=a["type"],
            schema=str(a.get("schema", "")),
            field=a.get("params", {}).get("field"),
        )
        for role, group in (("bucket", buckets), ("metric", metrics))
        for a in group
    ]


def _metric_dsl(agg: Mapping[str, Any]) -> dict[str, Any]:
    return {"cardinality": {"field": agg["params"]["field"]}}


def _bucket_dsl(
    agg: Mapping[str, Any], metrics: Sequence[Mapping[str, Any]], time_range: TimeRange | None
) -> dict[str, Any]:
    params = agg["params"]
    if agg["type"] == "date_histogram":
        interval = interval_of(agg, time_range)
        key = "calendar_interval" if interval in _CALENDAR.values() else "fixed_interval"
        return {
            "date_histogram": {
                "field": params["field"],
                key: interval,
                "time_zone": "UTC",
                "min_doc_count": int(params.get("min_doc_count", 1)),
            }
        }
    order_by = str(params.get("orderBy", "_count"))
    direction = str(params.get("order", "desc"))
    by_id = {str(m["id"]): m for m in metrics}
    if order_by == "_key":
        order = {"_key": direction}
    elif order_by in by_id and by_id[order_by]["type"] != "count":
        order = {order_by: direction}
    else:
        order = {"_count": direction}
    return {"terms": {"field": params["field"], "size": int(params.get("size", 5)), "order": order}}


def search_body(
    vis: Visualization, time_range: TimeRange | None, time_field: str = "timestamp"
) -> dict[str, Any]:
    """The `_search` body Dashboards would send for `vis` over `time_range` (pure)."""
    buckets, metrics = split_aggs(vis)
    sub = {str(m["id"]): _metric_dsl(m) for m in metrics if m["type"] != "count"}
    # Metrics sit at every level: the deepest gives the values, outer ones can order terms.
    aggs: dict[str, Any] = dict(sub)
    for agg in reversed(buckets):
        node = _bucket_dsl(agg, metrics, time_range)
        if aggs:
            node["aggs"] = aggs
        aggs = {str(agg["id"]): node, **sub}
    must: list[dict[str, Any]] = [f.query for f in vis.filters if not f.negate]
    must_not = [f.query for f in vis.filters if f.negate]
    if time_range is not None:
        must.insert(
            0,
            {
                "range": {
                    time_field: {
                        "gte": _iso_ms(time_range.start),
                        "lte": _iso_ms(time_range.end),
                        "format": "strict_date_optional_time",
                    }
                }
            },
        )
    query: dict[str, Any] = {"bool": {"filter": must}}
    if must_not:
        query["bool"]["must_not"] = must_not
    body: dict[str, Any] = {"size": 0, "track_total_hits": True, "query": query}
    if aggs:
        body["aggs"] = aggs
    return body


def _iso_ms(value: dt.datetime) -> str:
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _key(agg: Mapping[str, Any], bucket: Mapping[str, Any]) -> Any:
    if agg["type"] == "date_histogram":
        when = dt.datetime.fromtimestamp(int(bucket["key"]) / 1000, tz=dt.UTC)
        return _iso_ms(when) if when.microsecond else iso(when)
    return bucket["key"]


def _metric(agg: Mapping[str, Any], node: Mapping[str, Any], total: int | None) -> int | float:
    if agg["type"] == "count":
        return int(node["doc_count"]) if "doc_count" in node else int(total or 0)
    value = node.get(str(agg["id"]), {}).get("value")
    return 0 if value is None else value


def tabify(vis: Visualization, response: Mapping[str, Any]) -> list[list[Any]]:
    """Flatten a `_search` answer into rows: bucket keys, then metric values (pure)."""
    buckets, metrics = split_aggs(vis)
    total = int(response.get("hits", {}).get("total", {}).get("value", 0))
    rows: list[list[Any]] = []

    def walk(node: Mapping[str, Any], depth: int, keys: list[Any]) -> None:
        if depth == len(buckets):
            rows.append(keys + [_metric(m, node, total) for m in metrics])
            return
        agg = buckets[depth]
        for bucket in node.get(str(agg["id"]), {}).get("buckets", []):
            walk(bucket, depth + 1, [*keys, _key(agg, bucket)])

    walk(response.get("aggregations", {}), 0, [])
    return rows


def chart(
    vis: Visualization,
    response: Mapping[str, Any],
    time_range: TimeRange | None,
    grid: tuple[int, int, int, int] | None = None,
) -> Chart:
    """A visualization's chart data from its `_search` answer (pure)."""
    histograms = [a for a in vis.aggs if a["type"] == "date_histogram"]
    return Chart(
        id=vis.id,
        title=vis.title,
        description=vis.description,
        type=vis.type,
        columns=columns(vis),
        rows=tabify(vis, response),
        interval=interval_of(histograms[0], time_range) if histograms else None,
        grid=grid,
    )


def _search(client: OpenSearch, pattern: str, body: Mapping[str, Any], what: str) -> Any:
    with opensearch.translate_errors(what, client):
        return client.search(index=pattern, body=body)


def data_range(client: OpenSearch, pattern: str, time_field: str) -> TimeRange | None:
    """The first and last event time in `pattern`, or None if it holds no events."""
    body = {
        "size": 0,
        "aggs": {"first": {"min": {"field": time_field}}, "last": {"max": {"field": time_field}}},
    }
    found = _search(client, pattern, body, f"reading the time range of {pattern}")
    aggs = found.get("aggregations", {})
    first, last = aggs.get("first", {}).get("value"), aggs.get("last", {}).get("value")
    if first is None or last is None:
        return None
    return TimeRange(
        dt.datetime.fromtimestamp(first / 1000, tz=dt.UTC),
        dt.datetime.fromtimestamp(last / 1000, tz=dt.UTC),
    )


def compute(
    client: OpenSearch,
    pattern: str,
    visualizations: Sequence[Visualization],
    *,
    since: dt.datetime | None = None,
    now: dt.datetime | None = None,
    time_field: str = "timestamp",
    grids: Mapping[str, tuple[int, int, int, int]] | None = None,
) -> Report:
    """Run every visualization's aggregation over `pattern` (from `since` to `now`, or over
    all the data) and return the charts."""
    now = now or dt.datetime.now(dt.UTC)
    # Read-after-write: show what was just indexed. A read-only user may not refresh; the
    # index then refreshes itself within a second.
    with (
        opensearch.translate_errors(f"refreshing {pattern}", client),
        contextlib.suppress(AuthorizationException),
    ):
        client.indices.refresh(index=pattern, allow_no_indices=True, ignore_unavailable=True)
    time_range = TimeRange(since, now) if since else data_range(client, pattern, time_field)
    charts = []
    for vis in visualizations:
        body = search_body(vis, time_range, time_field)
        response = _search(client, pattern, body, f"computing {vis.title!r}")
        charts.append(chart(vis, response, time_range, (grids or {}).get(vis.id)))
    return Report(pattern=pattern, time_range=time_range, generated_at=now, charts=charts)


def report_for(
    settings: Settings,
    *,
    path: Path | None = None,
    since: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Report:
    """The saved dashboard's charts computed over the configured index pattern."""
    objects = saved_objects.read_objects(path)
    visualizations = saved_objects.dashboard_visualizations(objects)
    if not visualizations:
        raise ConfigError("the saved objects hold no visualization to compute")
    field = saved_objects.time_field(objects, visualizations[0].index_pattern_id)
    client = opensearch.make_client(settings.opensearch)
    return compute(
        client,
        settings.opensearch.index_pattern,
        visualizations,
        since=since,
        now=now,
        time_field=field,
        grids=saved_objects.panel_grids(objects),
    )
