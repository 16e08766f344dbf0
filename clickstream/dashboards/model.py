"""What a report is, whichever store computed it: charts of rows over one time range.

OpenSearch (`charts`, from the saved visualizations) and ClickHouse (`grafana`, from the
Grafana dashboard's panel SQL) both produce a `Report`; `html` draws it and the terminal
report prints it, so the numbers are the same everywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TimeRange:
    """The closed time range a report covers, in UTC."""

    start: dt.datetime
    end: dt.datetime

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)


@dataclass(frozen=True)
class Column:
    """One column of a chart's rows: a bucket key or a metric value."""

    id: str
    label: str
    role: str
    agg: str
    schema: str
    field: str | None


@dataclass(frozen=True)
class Chart:
    """A visualization's numbers: its columns and rows, ready to draw or print."""

    id: str
    title: str
    description: str
    type: str
    columns: list[Column]
    rows: list[list[Any]]
    interval: str | None = None
    grid: tuple[int, int, int, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "type": self.type,
            "columns": [c.__dict__ for c in self.columns],
            "rows": self.rows,
            "interval": self.interval,
        }


@dataclass(frozen=True)
class Report:
    """Every chart of the dashboard over one time range of one store: an OpenSearch index
    pattern (`source` "opensearch") or ClickHouse tables (`source` "clickhouse")."""

    pattern: str
    time_range: TimeRange | None
    generated_at: dt.datetime
    charts: list[Chart] = field(default_factory=list)
    source: str = "opensearch"

    def as_dict(self) -> dict[str, Any]:
        span = self.time_range
        return {
            "source": self.source,
            "index_pattern": self.pattern,
            "generated_at": iso(self.generated_at),
            "time_range": {"from": iso(span.start), "to": iso(span.end)} if span else None,
            "charts": [c.as_dict() for c in self.charts],
        }


def iso(value: dt.datetime) -> str:
    """`value` in UTC as ISO 8601 to the second, `Z` for UTC."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
