"""A panel's SQL as Grafana sends it to ClickHouse: variables, then the plugin's macros.

Grafana (the browser) first replaces the dashboard's template variables in `rawSql`
(`${database}`, `$prefix`, `[[name]]`; a single value goes in as it is, unquoted); the
ClickHouse data source plugin (its backend, through grafana/sqlds) then expands its `$__`
macros with the query's time range and interval. `expand` does both, the way
grafana-clickhouse-datasource 4.3 does (`pkg/macros/macros.go`):

    $__timeFilter(c)     c >= toDateTime(<from s>) AND c <= toDateTime(<to s>)
    $__timeFilter_ms(c)  the same with fromUnixTimestamp64Milli(<ms>)
    $__fromTime          toDateTime(<from s>)      ($__fromTime_ms: fromUnixTimestamp64Milli)
    $__toTime            toDateTime(<to s>)        ($__toTime_ms likewise)
    $__dateFilter(c)     c >= toDate('<from day>') AND c <= toDate('<to day>')
    $__dateTimeFilter(d, t), $__dt(d, t)   both filters, on a date and a time column
    $__timeInterval(c)   toStartOfInterval(toDateTime(c), INTERVAL <interval s> second)
    $__timeInterval_ms(c) toStartOfInterval(toDateTime64(c, 3), INTERVAL <ms> millisecond)
    $__interval_s        the interval in whole seconds (at least 1)

Arguments are found as sqlds finds them: balanced parentheses, split at top-level commas,
trimmed. A macro the plugin does not define is an error here (Grafana would send it to
ClickHouse as it is, and ClickHouse would refuse it).

The interval is Grafana's (`rangeutil.calculateInterval`): the range divided by the
panel's `maxDataPoints`, rounded to a "nice" step, and at least the panel's `interval`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from clickstream.errors import ConfigError

#: The steps `rangeutil.roundInterval` rounds to, as (below this many ms, use this many ms).
_NICE_STEPS_MS: tuple[tuple[int, int], ...] = (
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1500, 1000),
    (3500, 2000),
    (7500, 5000),
    (12500, 10000),
    (17500, 15000),
    (25000, 20000),
    (45000, 30000),
    (90000, 60000),
    (210000, 120000),
    (450000, 300000),
    (750000, 600000),
    (1050000, 900000),
    (1500000, 1200000),
    (2700000, 1800000),
    (5400000, 3600000),
    (9000000, 7200000),
    (16200000, 10800000),
    (32400000, 21600000),
    (86400000, 43200000),
    (604800000, 86400000),
    (1814400000, 604800000),
    (3628800000, 2592000000),
)
_YEAR_MS = 31536000000
#: Grafana's interval units (`describeInterval`), in milliseconds.
_UNIT_MS = {
    "y": _YEAR_MS,
    "M": 2592000000,
    "w": 604800000,
    "d": 86400000,
    "h": 3600000,
    "m": 60000,
    "s": 1000,
    "ms": 1,
}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|M|y)$")
_MACRO = re.compile(r"\$__(\w+)")
#: `$name`, `${name}` (also `${name:format}`), `[[name]]`: Grafana's variable syntaxes.
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")


def round_interval(ms: float) -> int:
    """Grafana's `roundInterval`: `ms` rounded to a step such as 1s, 30s, 1m, 5m or 1h."""
    for below, step in _NICE_STEPS_MS:
        if ms < below:
            return step
    return _YEAR_MS


def parse_interval(text: str) -> int:
    """A Grafana interval string (`30s`, `1m`, `2h`, bare seconds) in milliseconds."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return int(text) * 1000
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"{text!r} is not a Grafana interval such as 30s, 1m or 1h")
    return round(float(match[1]) * _UNIT_MS[match[2]])


def format_interval(ms: int) -> str:
    """`ms` as Grafana writes an interval (`secondsToHms`): `500ms`, `30s`, `5m`, `2h`, `1d`."""
    for unit in ("y", "w", "d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def calculate_interval(
    start: dt.datetime, end: dt.datetime, max_data_points: int, min_interval: str | None
) -> dt.timedelta:
    """The interval Grafana gives a panel's query over `[start, end]`."""
    span_ms = (end - start).total_seconds() * 1000
    ms = round_interval(span_ms / max(max_data_points, 1))
    low = parse_interval(min_interval) if min_interval else 1
    return dt.timedelta(milliseconds=max(ms, low))


@dataclass(frozen=True)
class QueryContext:
    """What the plugin expands macros with: the time range and the interval."""

    start: dt.datetime
    end: dt.datetime
    interval: dt.timedelta

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("the query's time range needs aware datetimes (UTC)")


def _seconds(when: dt.datetime) -> str:
    return f"toDateTime({math.floor(when.timestamp())})"


def _millis(when: dt.datetime) -> str:
    return f"fromUnixTimestamp64Milli({math.floor(when.timestamp() * 1000)})"


def _day(when: dt.datetime) -> str:
    return f"toDate('{when.astimezone(dt.UTC):%Y-%m-%d}')"


def _between(column: str, low: str, high: str) -> str:
    return f"{column} >= {low} AND {column} <= {high}"


def _interval_seconds(ctx: QueryContext) -> int:
    return int(max(ctx.interval.total_seconds(), 1))


def _interval_ms(ctx: QueryContext) -> int:
    return int(max(ctx.interval.total_seconds() * 1000, 1))


_Macro = Callable[[QueryContext, list[str]], str]
#: Each macro: how many arguments it takes, and its expansion.
MACROS: dict[str, tuple[int, _Macro]] = {
    "fromTime": (0, lambda c, _: _seconds(c.start)),
    "toTime": (0, lambda c, _: _seconds(c.end)),
    "fromTime_ms": (0, lambda c, _: _millis(c.start)),
    "toTime_ms": (0, lambda c, _: _millis(c.end)),
    "timeFilter": (1, lambda c, a: _between(a[0], _seconds(c.start), _seconds(c.end))),
    "timeFilter_ms": (1, lambda c, a: _between(a[0], _millis(c.start), _millis(c.end))),
    "dateFilter": (1, lambda c, a: _between(a[0], _day(c.start), _day(c.end))),
    "dateTimeFilter": (
        2,
        lambda c, a: (
            f"({_between(a[0], _day(c.start), _day(c.end))}) AND "
            f"({_between(a[1], _seconds(c.start), _seconds(c.end))})"
        ),
    ),
    "timeInterval": (
        1,
        lambda c, a: (
            f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {_interval_seconds(c)} second)"
        ),
    ),
    "timeInterval_ms": (
        1,
        lambda c, a: (
            f"toStartOfInterval(toDateTime64({a[0]}, 3), INTERVAL {_interval_ms(c)} millisecond)"
        ),
    ),
    "interval_s": (0, lambda c, _: str(_interval_seconds(c))),
}
MACROS["dt"] = MACROS["dateTimeFilter"]


def _arguments(text: str, at: int) -> tuple[list[str], int]:
    """The bracketed, comma-separated arguments starting at `text[at]`, if any, and where
    they end (sqlds `parseArgs`)."""
    if not text.startswith("(", at):
        return [], at
    depth, current, args = 0, list[str](), list[str]()
    for i in range(at, len(text)):
        char = text[i]
        if char == "(":
            depth += 1
            if depth == 1:
                continue
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append("".join(current).strip())
                return ([] if args == [""] else args), i + 1
        elif char == "," and depth == 1:
            args.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    raise ConfigError(f"a macro's arguments have no closing bracket: {text[at : at + 40]!r}")


def expand_macros(sql: str, ctx: QueryContext) -> str:
    """`sql` with every `$__` macro expanded as the ClickHouse plugin expands it."""
    out, pos = [], 0
    for match in _MACRO.finditer(sql):
        if match.start() < pos:
            continue  # inside the arguments of a macro already expanded
        name = match[1]
        if name not in MACROS:
            raise ConfigError(f"$__{name} is not a macro of the ClickHouse data source")
        arity, expansion = MACROS[name]
        args, end = _arguments(sql, match.end())
        if len(args) != arity:
            raise ConfigError(f"$__{name} takes {arity} argument(s), not {len(args)}")
        # A macro's arguments may hold macros of their own: expand them first.
        args = [expand_macros(a, ctx) for a in args]
        out.append(sql[pos : match.start()])
        out.append(expansion(ctx, args))
        pos = end
    out.append(sql[pos:])
    return "".join(out)


def substitute_variables(sql: str, variables: Mapping[str, str]) -> str:
    """`sql` with the dashboard's template variables replaced by their values, unquoted, as
    the plugin's `applyTemplateVariables` does for a single value; `$__` names and
    variables not in `variables` stay as they are."""

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[3]
        return variables.get(name, match[0])

    return _VARIABLE.sub(value, sql)


def expand(sql: str, ctx: QueryContext, variables: Mapping[str, str]) -> str:
    """The SQL Grafana's ClickHouse data source runs for a panel query `sql`."""
    return expand_macros(substitute_variables(sql, variables), ctx)
