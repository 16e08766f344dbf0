"""What happened, for people: summaries of stack, setup, produce, consume and the index."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table

if TYPE_CHECKING:
    from clickstream.consumer import ConsumeStats
    from clickstream.opensearch import Summary
    from clickstream.pipeline import Change
    from clickstream.producer import ProduceStats
    from clickstream.stack import StackStatus

BAR_WIDTH = 30


def stack_status(status: StackStatus, *, started: bool | None = None) -> str:
    """One line per service: running or not, where, and its pid."""
    lines = []
    for service in (status.kafka, status.opensearch):
        mark = "[green]running[/]" if service.running else "[yellow]stopped[/]"
        pid = f" (pid {service.pid})" if service.pid else ""
        detail = f" - {service.detail}" if service.detail else ""
        lines.append(f"  {service.name:<11} {mark} at {service.address}{pid}{detail}")
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
        table.add_row(key, f"{count:,}", "█" * width)
    return table


def index_summary(summary: Summary, pattern: str) -> Group:
    """What OpenSearch now holds: totals by type, category, device and the top users."""
    title = Table(show_header=False, box=None)
    title.add_row(f"[bold]{summary['total']:,} events in {pattern}[/]")
    return Group(
        title,
        bars("by event type", summary["by_event_type"]),
        bars("by category", summary["by_category"]),
        bars("by device", summary["by_device_type"]),
        bars("top users", summary["top_users"]),
    )
