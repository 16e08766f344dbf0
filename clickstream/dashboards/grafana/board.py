"""The Grafana dashboard as data: its panels, their SQL and the defaults of its variables.

`clickstream.json` here is the one definition: Grafana provisions it (the compose file
mounts this very file) and the offline report reads it. Each panel that shows data has
one target in the ClickHouse data source's SQL query model (`editorType: sql`, `rawSql`,
`format` 0 for time series, 1 for a table).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickstream.errors import ConfigError

DEFAULT_FILE = Path(__file__).resolve().parent / "clickstream.json"
PLUGIN = "grafana-clickhouse-datasource"
#: The query model's `format` values (grafana/sqlds): how the plugin shapes the answer.
TIME_SERIES, TABLE = 0, 1


@dataclass(frozen=True)
class Panel:
    """One panel that shows data: where it sits, how it draws, and its query."""

    id: int
    type: str
    title: str
    description: str
    grid: tuple[int, int, int, int]  # x, y, w, h on Grafana's 24-column grid
    sql: str
    format: int
    #: The panel's minimum interval (`interval`, e.g. "1m") and `maxDataPoints`: with the
    #: time range they give the interval of `$__timeInterval` and `$__interval_s`.
    min_interval: str | None = None
    max_data_points: int | None = None


def read_dashboard(path: Path | None = None) -> dict[str, Any]:
    """The dashboard JSON at `path` (default: the one shipped with clickstream)."""
    path = path or DEFAULT_FILE
    try:
        board = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the Grafana dashboard {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not a Grafana dashboard's JSON: {exc}") from None
    if not isinstance(board, dict) or not isinstance(board.get("panels"), list):
        raise ConfigError(f"{path} is not a Grafana dashboard: it has no list of panels")
    return board


def _all_panels(board: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too, in the dashboard's order."""
    out = []
    for panel in board.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []) if panel.get("type") == "row" else [])
    return out


def panels(board: Mapping[str, Any]) -> list[Panel]:
    """The panels that query ClickHouse (rows and text panels are left out), checked."""
    found = []
    for raw in _all_panels(board):
        if raw.get("type") == "row" or not raw.get("targets"):
            continue
        name = f"panel {raw.get('id')} ({raw.get('title', '')!r})"
        targets = [t for t in raw["targets"] if not t.get("hide")]
        if len(targets) != 1:
            raise ConfigError(f"{name}: the offline report draws panels with exactly one query")
        target = targets[0]
        if target.get("editorType") != "sql" or not str(target.get("rawSql", "")).strip():
            raise ConfigError(f"{name}: its query is not SQL (editorType sql with rawSql)")
        grid = raw.get("gridPos", {})
        points = raw.get("maxDataPoints")
        found.append(
            Panel(
                id=int(raw["id"]),
                type=str(raw["type"]),
                title=str(raw.get("title", "")),
                description=str(raw.get("description", "")),
                grid=(int(grid["x"]), int(grid["y"]), int(grid["w"]), int(grid["h"])),
                sql=str(target["rawSql"]),
                format=int(target.get("format", TABLE)),
                min_interval=raw.get("interval"),
                max_data_points=None if points is None else int(points),
            )
        )
    return found


def variables(board: Mapping[str, Any]) -> dict[str, str]:
    """Each template variable's current (default) value, by name."""
    out = {}
    for variable in board.get("templating", {}).get("list", []):
        current = variable.get("current", {}).get("value", variable.get("query", ""))
        out[str(variable["name"])] = "" if current is None else str(current)
    return out
