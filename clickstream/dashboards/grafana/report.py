"""The Grafana dashboard's panels computed without Grafana: each panel's SQL, expanded as
Grafana would expand it for the report's time range, runs against ClickHouse, and its
answer becomes a `model.Chart` shaped for the panel type.

Panel types and what their query returns (the tests hold every panel to it):

    timeseries  a time column, then numbers (wide) or one text column and one number
                (long: one series per text value); drawn as lines
    heatmap     a time column, one text column (the rows), one number
    barchart    one text column, one number per bar
    piechart    one text column, one number per slice
    stat        one row of numbers
    table       anything; text and time columns label the row, numbers are its values
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clickstream.dashboards.grafana import board as boards
from clickstream.dashboards.grafana import macros
from clickstream.dashboards.grafana.board import Panel
from clickstream.dashboards.model import Chart, Column, Report, TimeRange, iso
from clickstream.errors import ConfigError
from clickstream.sinks.clickhouse.client import connect, translate
from clickstream.sinks.clickhouse.schema import Tables
from clickstream.sinks.clickhouse.sink import client_options

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from clickstream.settings import ClickHouseSettings, Settings

#: The drawing (and terminal table) each Grafana panel type gets: `html.DRAWERS`' names.
KINDS = {
    "timeseries": "line",
    "heatmap": "heatmap",
    "barchart": "histogram",
    "piechart": "pie",
    "stat": "metric",
    "table": "table",
}
#: Without `maxDataPoints`, Grafana uses the panel's width in pixels; the report, this.
DEFAULT_DATA_POINTS = 100
_NUMBER = ("Int", "UInt", "Float", "Decimal", "Bool")
_TIME = ("DateTime", "Date")


def _role(type_name: str) -> str:
    """`number`, `time` or `text`, from a ClickHouse column type's base name."""
    if type_name.startswith(_NUMBER):
        return "number"
    return "time" if type_name.startswith(_TIME) else "text"


def _cell(value: Any) -> Any:
    """A value from ClickHouse as the report's rows hold it (JSON-ready)."""
    if isinstance(value, dt.datetime):
        return iso(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _column(index: int, name: str, role: str, kind: str) -> Column:
    label = name.replace("_", " ")
    return Column(id=str(index), label=label, role=role, agg=kind, schema="", field=name)


def _series(
    panel: Panel, names: Sequence[str], roles: Sequence[str], rows: Sequence[Sequence[Any]]
) -> tuple[list[Column], list[list[Any]]]:
    """Time-series rows as `[time, series, value]`, long or wide alike (wide columns melt
    into one series each, named after the column)."""
    times = [i for i, r in enumerate(roles) if r == "time"]
    labels = [i for i, r in enumerate(roles) if r == "text"]
    values = [i for i, r in enumerate(roles) if r == "number"]
    if len(times) != 1 or not values:
        raise ConfigError(
            f"panel {panel.id} ({panel.title!r}): a {panel.type} query returns one time "
            f"column and numbers, not {list(zip(names, roles, strict=True))}"
        )
    t = times[0]
    out = []
    for row in rows:
        label = " ".join(str(row[i]) for i in labels)
        for v in values:
            name = (
                label if label and len(values) == 1 else " ".join(filter(None, (label, names[v])))
            )
            out.append([_cell(row[t]), name, _cell(row[v])])
    series = names[labels[0]] if labels and len(values) == 1 else "series"
    value = names[values[0]] if len(values) == 1 else "value"
    columns = [
        _column(0, names[t], "bucket", "time"),
        _column(1, series, "bucket", "series"),
        _column(2, value, "metric", "value"),
    ]
    return columns, out


def shape(
    panel: Panel, names: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]]
) -> tuple[list[Column], list[list[Any]]]:
    """The chart columns and rows of `panel` from its query's answer (pure)."""
    if not names and not rows:
        return [], []  # an empty answer over HTTP carries no columns: nothing to draw
    roles = [_role(t) for t in types]
    if panel.type in ("timeseries", "heatmap"):
        return _series(panel, names, roles, rows)
    if panel.type in ("barchart", "piechart") and (
        len(names) != 2 or roles[0] == "number" or roles[1] != "number"
    ):
        raise ConfigError(
            f"panel {panel.id} ({panel.title!r}): a {panel.type} query returns a label "
            f"column and a number, not {list(zip(names, roles, strict=True))}"
        )
    if panel.type == "stat" and any(r != "number" for r in roles):
        raise ConfigError(f"panel {panel.id} ({panel.title!r}): a stat query returns numbers")
    columns = [
        _column(i, name, "metric" if role == "number" else "bucket", role)
        for i, (name, role) in enumerate(zip(names, roles, strict=True))
    ]
    return columns, [[_cell(v) for v in row] for row in rows]


def context(panel: Panel, span: TimeRange) -> macros.QueryContext:
    """The time range and interval Grafana would query `panel` with over `span`."""
    interval = macros.calculate_interval(
        span.start, span.end, panel.max_data_points or DEFAULT_DATA_POINTS, panel.min_interval
    )
    return macros.QueryContext(span.start, span.end, interval)


def run_panel(client: Client, panel: Panel, span: TimeRange, variables: Mapping[str, str]) -> Chart:
    """`panel`'s query over `span` against ClickHouse, as a chart."""
    if panel.type not in KINDS:
        raise ConfigError(
            f"panel {panel.id} ({panel.title!r}): type {panel.type!r} cannot be drawn offline"
        )
    ctx = context(panel, span)
    sql = macros.expand(panel.sql, ctx, variables)
    try:
        result = client.query(sql)
    except Exception as exc:  # noqa: BLE001  (every clickhouse-connect error is translated)
        raise translate(exc, f"computing {panel.title!r}") from None
    types = [str(t.base_type) for t in result.column_types]
    columns, rows = shape(panel, list(result.column_names), types, result.result_rows)
    x, y, w, h = panel.grid
    return Chart(
        id=f"panel-{panel.id}",
        title=panel.title,
        description=panel.description,
        type=KINDS[panel.type],
        columns=columns,
        rows=rows,
        interval=macros.format_interval(int(ctx.interval.total_seconds() * 1000))
        if panel.type in ("timeseries", "heatmap")
        else None,
        # Grafana's grid has 24 columns, the report's 48 (as OpenSearch Dashboards').
        grid=(2 * x, y, 2 * w, h),
    )


def data_range(client: Client, tables: Tables) -> TimeRange | None:
    """The first and last minute of events in the aggregates, or None if there are none."""
    sql = f"SELECT count(), min(minute), max(minute) FROM {tables.events_1m}"  # noqa: S608
    try:
        count, first, last = client.query(sql).result_rows[0]
    except Exception as exc:  # noqa: BLE001  (every clickhouse-connect error is translated)
        raise translate(exc, f"reading the time range of {tables.events_1m}") from None
    if not count:
        return None
    first, last = (v if v.tzinfo else v.replace(tzinfo=dt.UTC) for v in (first, last))
    return TimeRange(first, last + dt.timedelta(seconds=59))


def compute(
    client: Client,
    panels: Sequence[Panel],
    variables: Mapping[str, str],
    *,
    tables: Tables,
    since: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Report:
    """Every panel over `since` to `now`, or over the events' own time range."""
    now = now or dt.datetime.now(dt.UTC)
    span = TimeRange(since, now) if since else data_range(client, tables)
    charts = [] if span is None else [run_panel(client, p, span, variables) for p in panels]
    return Report(
        pattern=f"ClickHouse {tables.database}.{tables.prefix}*",
        time_range=span,
        generated_at=now,
        charts=charts,
        source="clickhouse",
    )


def make_client(settings: ClickHouseSettings) -> Client:
    """A client for the `[clickhouse]` settings' server, made as the sink makes its own."""
    return connect(**client_options(settings))


def report_for(
    settings: Settings,
    *,
    path: Path | None = None,
    since: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Report:
    """The Grafana dashboard's panels computed over the configured ClickHouse tables."""
    board = boards.read_dashboard(path)
    found = boards.panels(board)
    if not found:
        raise ConfigError("the Grafana dashboard has no panel that queries ClickHouse")
    section = settings.clickhouse
    tables = Tables(database=section.database, prefix=section.table_prefix)
    variables = {
        **boards.variables(board),
        "database": tables.database,
        "prefix": tables.prefix,
    }
    client = make_client(section)
    try:
        return compute(client, found, variables, tables=tables, since=since, now=now)
    finally:
        client.close()
