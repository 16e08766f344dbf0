"""What happened, for people: summaries of stack, setup, produce, consume and the index."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from clickstream.printable import printable

if TYPE_CHECKING:
    from clickstream.cli.jobs import Change
    from clickstream.consume.loop import ConsumeStats
    from clickstream.dashboards.model import Chart, Report
    from clickstream.produce.publish import ProduceStats
    from clickstream.sinks.clickhouse.sink import Overview
    from clickstream.sinks.opensearch.client import Summary
    from clickstream.stack.local import StackStatus

BAR_WIDTH = 30


def shown(value: object) -> Text:
    """A value from the data (a user id, a title, a server's reason) as plain text: no rich
    markup is read in it, and no character of it acts on the terminal."""
    return Text(printable(str(value)))


def stack_status(status: StackStatus, *, started: bool | None = None) -> str:
    """One line per service: running or not, where, and its pid."""
    lines = [f"  {line}" for line in status.render().splitlines()]
    if started is False:
        lines.append("  already running; nothing started")
    return "\n".join(lines)


def setup_lines(changes: Sequence[Change]) -> str:
    """What setup created, and what it found already in place."""
    lines = [
        f"  {'[green]created[/]' if c.changed else 'exists '}  {c.what} ({c.detail})"
        for c in changes
    ]
    if not any(c.changed for c in changes):
        lines.append("  everything was already in place; nothing changed")
    return "\n".join(lines)


def produce_summary(stats: ProduceStats, where: str) -> str:
    """Produced, delivered, failed and the rate, in one line."""
    line = (
        f"produced {stats.produced:,} events to {where}: {stats.delivered:,} delivered, "
        f"{stats.failed:,} failed in {stats.elapsed:.1f}s ({stats.rate:,.0f} events/s)"
    )
    if stats.in_flight:
        line += f"; [red]{stats.in_flight:,} not confirmed[/]"
    if stats.interrupted:
        line += " [yellow](interrupted)[/]"
    if stats.first_error:
        line += f"\n  first delivery error: {stats.first_error}"
    return line


def consume_summary(stats: ConsumeStats) -> str:
    """Consumed, indexed, dead-lettered, retried and the rate, in one line."""
    return (
        f"consumed {stats.consumed:,} messages: {stats.indexed:,} indexed, "
        f"{stats.dead_lettered:,} dead-lettered, {stats.retried:,} bulk retries, "
        f"in {stats.elapsed:.1f}s ({stats.rate:,.0f} events/s)"
    )


def bars(title: str, counts: Mapping[str, int]) -> Table:
    """A small table of counts with proportional bars."""
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column("key", style="bold")
    table.add_column("count", justify="right")
    table.add_column("bar", style="cyan")
    top = max(counts.values(), default=0)
    for key, count in counts.items():
        width = round(BAR_WIDTH * count / top) if top else 0
        table.add_row(shown(key), f"{count:,}", "█" * width)
    return table


def index_summary(summary: Summary, pattern: str) -> Group:
    """What OpenSearch now holds: totals by type, category, device and the top users."""
    title = Table(show_header=False, box=None)
    title.add_row(f"[bold]{summary['total']:,} events in {escape(printable(pattern))}[/]")
    return Group(
        title,
        bars("by event type", summary["by_event_type"]),
        bars("by category", summary["by_category"]),
        bars("by device", summary["by_device_type"]),
        bars("top users", summary["top_users"]),
    )


def clickhouse_overview(overview: Overview, table: str) -> Group:
    """What ClickHouse now holds: distinct events and users, and the top categories, read
    from the materialized views' aggregates."""
    title = Table(show_header=False, box=None)
    title.add_row(
        f"[bold]{overview.events:,} events from {overview.users:,} users in "
        f"{escape(printable(table))}[/] (ClickHouse)"
    )
    return Group(title, bars("top categories", overview.categories))


SPARKS = "▁▂▃▄▅▆▇█"


def _number(value: object) -> Text:
    if isinstance(value, float) and not value.is_integer():
        return Text(f"{value:,.1f}")
    return Text(f"{int(value):,}") if isinstance(value, int | float) else shown(value)


def _chart_table(chart: Chart) -> Table:
    """One saved visualization's numbers as a terminal table, shaped by its type."""
    title = f"[bold]{escape(printable(chart.title.removeprefix('Clickstream: ')))}[/]"
    rows = chart.rows
    if chart.type in ("pie", "horizontal_bar", "histogram") and len(chart.columns) == 2:
        return bars(title, {str(r[0]): int(r[1]) for r in rows})
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    if chart.type in ("line", "area") and len(chart.columns) == 3:
        times = sorted({r[0] for r in rows})
        series: dict[str, dict[str, int]] = {}
        for when, name, value in rows:
            series.setdefault(str(name), {})[when] = int(value)
        start = str(times[0]).replace("T", " ").removesuffix(":00Z") if times else ""
        table.add_column(chart.columns[1].label, style="bold")
        table.add_column("total", justify="right")
        table.add_column("peak", justify="right")
        table.add_column(f"per {chart.interval} from {start} (scaled to each peak)", style="cyan")
        for name, points in sorted(series.items(), key=lambda kv: -sum(kv[1].values())):
            peak = max(points.values(), default=0) or 1
            spark = "".join(
                SPARKS[round((len(SPARKS) - 1) * points[t] / peak)] if points.get(t) else " "
                for t in times
            )
            table.add_row(shown(name), f"{sum(points.values()):,}", f"{peak:,}", spark)
        return table
    if chart.type == "heatmap" and len(chart.columns) == 3:
        xs = list(dict.fromkeys(str(r[0]) for r in rows))
        ys = list(dict.fromkeys(str(r[1]) for r in rows))
        cells = {(str(r[0]), str(r[1])): r[2] for r in rows}
        table.add_column(f"{chart.columns[0].label} / {chart.columns[1].label}", style="bold")
        for y in ys:
            table.add_column(shown(y), justify="right")
        for x in xs:
            table.add_row(shown(x), *(_number(cells.get((x, y), 0)) for y in ys))
        return table
    if chart.type == "metric" and rows:
        for column in chart.columns:
            table.add_column(column.label, justify="right")
        table.add_row(*(Text.assemble(_number(v), style="bold") for v in rows[0]))
        return table
    table.add_column("#", justify="right", style="dim")
    for column in chart.columns:
        table.add_column(column.label, justify="right" if column.role == "metric" else "left")
    for n, row in enumerate(rows, 1):
        table.add_row(str(n), *(_number(v) for v in row))
    return table


def dashboard_report(report: Report) -> Group:
    """The dashboard's charts in the terminal: the same numbers as the HTML report."""
    span = report.time_range
    when = f"{span.start:%Y-%m-%d %H:%M} to {span.end:%Y-%m-%d %H:%M} UTC" if span else "no events"
    parts: list[Table] = []
    for chart in report.charts:
        parts.append(_chart_table(chart))
    header = Table(show_header=False, box=None)
    header.add_row(f"[bold]{escape(printable(report.pattern))}[/], {when}")
    return Group(header, *(Group(p, "") for p in parts))
