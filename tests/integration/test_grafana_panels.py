"""Every Grafana panel's and alert rule's SQL, with the macros expanded as the ClickHouse
plugin expands them, against the local ClickHouse filled by the sink's writer; and the
offline report drawn from the same panels.

The schema is the user's default (database `clickstream`, no table prefix), in a server
of this module's own. Events are simulated over the last hour, as live traffic would be,
and stored with Kafka offsets of which some are missing: the messages a consumer would
have dead-lettered.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from clickstream.cli import summaries
from clickstream.dashboards import html
from clickstream.dashboards.grafana import board, macros, report
from clickstream.dashboards.model import Report, TimeRange
from clickstream.settings import ClickHouseSettings, Settings
from clickstream.simulate.config import SimulationConfig
from clickstream.simulate.simulator import Simulator
from clickstream.sinks.clickhouse import queries, schema
from clickstream.sinks.clickhouse.client import connect
from clickstream.sinks.clickhouse.writer import EventWriter, Record
from clickstream.stack.chserver import control
from tests.integration.test_clickhouse_server import Server

pytest.importorskip("clickhouse_connect")
pytest.importorskip("chdb")

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3
#: Every this many-th message is left out, as if dead-lettered.
DEAD_EVERY = 50


class Filled:
    """What the module's server holds."""

    def __init__(self, server: Server, now: dt.datetime, stored: int, dead: int) -> None:
        self.server, self.now, self.stored, self.dead = server, now, stored, dead
        # Ends a minute on: the last minute's inserts are inside, as in Grafana's "now".
        self.span = TimeRange(now - dt.timedelta(hours=2), now + dt.timedelta(minutes=1))


@pytest.fixture(scope="module")
def filled(tmp_path_factory, unavailable) -> Iterator[Filled]:
    """One server with the default schema and an hour of simulated traffic."""
    server = Server(tmp_path_factory.mktemp("grafana"), unavailable)
    server.start()
    try:
        client = connect("127.0.0.1", server.port)
        for statement in schema.statements(schema.Tables()):
            client.command(statement)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        config = SimulationConfig(seed=5, start=now - dt.timedelta(hours=1), end=now)
        messages = list(itertools.islice(Simulator(config).messages(), 6000))
        records = [
            Record(value, i % PARTITIONS, i // PARTITIONS)
            for i, (_key, value) in enumerate(messages)
            if i % DEAD_EVERY != DEAD_EVERY - 1
        ]
        result = EventWriter(client, schema.Tables()).write(records)
        assert not result.rejected
        client.close()
        yield Filled(server, now, result.stored, len(messages) - len(records))
    finally:
        control.stop(server.state_dir)


@pytest.fixture
def client(filled):
    client = connect("127.0.0.1", filled.server.port)
    yield client
    client.close()


@pytest.fixture(scope="module")
def dashboard():
    return board.read_dashboard()


@pytest.fixture(scope="module")
def panels(dashboard):
    return {p.title: p for p in board.panels(dashboard)}


def chart(client, filled, panels, dashboard, title: str, span: TimeRange | None = None):
    return report.run_panel(client, panels[title], span or filled.span, board.variables(dashboard))


class TestPanels:
    """Each panel's SQL runs and answers in the shape its panel type draws."""

    def test_every_panel_runs_and_has_rows(self, client, filled, panels, dashboard):
        """Every panel, with its macros and variables expanded, returns the columns its
        type expects (run_panel refuses others) and at least one row."""
        for title, panel in panels.items():
            drawn = report.run_panel(client, panel, filled.span, board.variables(dashboard))
            assert drawn.rows, title
            assert drawn.type == report.KINDS[panel.type]

    def test_an_empty_range_answers_without_error(self, client, filled, panels, dashboard):
        """A range with no events gives every panel an answer (empty, or zeros)."""
        past = TimeRange(filled.now - dt.timedelta(days=30), filled.now - dt.timedelta(days=29))
        drawn = [chart(client, filled, panels, dashboard, title, past) for title in panels]
        found = Report("ClickHouse", past, filled.now, drawn, source="clickhouse")
        assert "no events in this time range" in html.html_report(found)

    def test_totals_agree_with_the_aggregates(self, client, filled, panels, dashboard):
        """The stat's events, users and sessions are the distinct counts of what was
        stored, and the device pie adds up to the events."""
        stat = chart(client, filled, panels, dashboard, "Events, users and sessions")
        events, users, sessions = stat.rows[0]
        assert events == filled.stored
        raw = client.query(
            "SELECT uniqExact(user_id), uniqExact(session_id) FROM clickstream.events"
        ).result_rows[0]
        assert (users, sessions) == raw
        pie = chart(client, filled, panels, dashboard, "Events by device")
        assert sum(row[1] for row in pie.rows) == filled.stored

    def test_per_minute_series_match_the_queries(self, client, filled, panels, dashboard):
        """At a one-minute interval, users and sessions per minute are those of
        `queries.audience_per_minute`, and events per minute by type sum to the events."""
        aggregates = {a.name: a for a in queries.aggregates(schema.Tables())}
        params = queries.time_range(filled.span.start, filled.span.end)
        expected = client.query(
            aggregates["audience_per_minute"].from_view, parameters=params
        ).result_rows
        series = chart(client, filled, panels, dashboard, "Distinct users and sessions")
        assert series.interval == "1m"
        by_minute: dict[str, dict[str, int]] = {}
        for when, name, value in series.rows:
            by_minute.setdefault(when, {})[name] = value
        assert [
            (minute.strftime("%Y-%m-%dT%H:%M:%SZ"), users, sessions)
            for minute, users, sessions in expected
        ] == [(when, v["users"], v["sessions"]) for when, v in sorted(by_minute.items())]
        by_type = chart(client, filled, panels, dashboard, "Events per minute by type")
        assert sum(row[2] for row in by_type.rows) == pytest.approx(filled.stored)

    def test_a_wider_range_buckets_wider(self, client, filled, panels, dashboard):
        """Over a day, the interval is Grafana's 10 minutes and the events still add up."""
        day = TimeRange(filled.now - dt.timedelta(hours=23), filled.now + dt.timedelta(hours=1))
        series = chart(client, filled, panels, dashboard, "Events per minute by type", day)
        assert series.interval == "10m"
        assert sum(row[2] for row in series.rows) * 10 == pytest.approx(filled.stored)

    def test_funnel_matches_the_queries(self, client, filled, panels, dashboard):
        """The funnel's four steps are `queries.session_funnel`'s figures, in order."""
        (aggregate,) = (
            a for a in queries.aggregates(schema.Tables()) if a.name == "session_funnel"
        )
        params = queries.time_range(filled.span.start, filled.span.end)
        expected = client.query(aggregate.from_view, parameters=params).result_rows[0]
        funnel = chart(client, filled, panels, dashboard, "Session funnel")
        assert [row[0] for row in funnel.rows] == [
            "1 started",
            "2 logged in",
            "3 viewed an article",
            "4 reacted",
        ]
        assert tuple(row[1] for row in funnel.rows) == expected
        assert expected[0] > expected[3] > 0

    def test_top_articles_match_the_queries(self, client, filled, panels, dashboard):
        """The most viewed articles are `queries.top_articles`' first ten, by views."""
        params = {**queries.time_range(filled.span.start, filled.span.end), "limit": 10}
        expected = client.query(queries.top_articles(schema.Tables()), parameters=params)
        bars = chart(client, filled, panels, dashboard, "Most viewed articles")
        assert [row[1] for row in bars.rows] == [row[3] for row in expected.result_rows]


class TestPipelineHealth:
    """The pipeline-health panels see the sink's work and its dead letters."""

    def test_dead_letters_are_the_missing_offsets(self, client, filled, panels, dashboard):
        """The dead-letter series adds up to the messages left out, and so do the stat's
        skipped offsets and the partition table's."""
        assert filled.dead > 0
        series = chart(client, filled, panels, dashboard, "Dead letters per minute")
        assert sum(row[2] for row in series.rows) == filled.dead
        stat = chart(client, filled, panels, dashboard, "Sink now")
        names = [c.field for c in stat.columns]
        assert stat.rows[0][names.index("offsets_skipped")] == filled.dead
        assert stat.rows[0][names.index("rows_stored")] == filled.stored
        table = chart(client, filled, panels, dashboard, "Kafka partitions")
        names = [c.field for c in table.columns]
        assert [row[0] for row in table.rows] == [str(p) for p in range(PARTITIONS)]
        assert sum(row[names.index("offsets_skipped")] for row in table.rows) == filled.dead

    def test_rows_and_delay_by_partition(self, client, filled, panels, dashboard):
        """Rows stored per partition add up to the rows stored; the delay runs from
        seconds (the newest events) to about an hour (the oldest)."""
        rows = chart(client, filled, panels, dashboard, "Rows stored per minute by Kafka partition")
        assert {row[1] for row in rows.rows} == {f"partition {p}" for p in range(PARTITIONS)}
        assert sum(row[2] for row in rows.rows) == filled.stored
        delay = chart(client, filled, panels, dashboard, "Ingest delay")
        worst = max(row[2] for row in delay.rows if row[1] == "max_s")
        assert 1800 < worst < 3600 + 600


def _alert_rules():
    path = ROOT / "dashboards" / "grafana" / "provisioning" / "alerting" / "clickstream.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))["groups"][0]["rules"]


class TestAlertRules:
    """The alert rules' SQL, over their relative time range ending now."""

    def _value(self, client, rule, now: dt.datetime) -> float:
        (query,) = (q for q in rule["data"] if q["datasourceUid"] != "__expr__")
        window = query["relativeTimeRange"]
        ctx = macros.QueryContext(
            now - dt.timedelta(seconds=window["from"]),
            now - dt.timedelta(seconds=window["to"]),
            dt.timedelta(milliseconds=query["model"]["intervalMs"]),
        )
        result = client.query(macros.expand(query["model"]["rawSql"], ctx, {}))
        assert len(result.column_names) == 1
        (row,) = result.result_rows
        return float(row[0])

    def test_dead_letter_share(self, client, filled):
        """The dead-letter rule sees the share of offsets left out, above its threshold."""
        (rule,) = (r for r in _alert_rules() if r["uid"] == "clickstream-dead-letters")
        share = self._value(client, rule, filled.now + dt.timedelta(minutes=1))
        assert share == pytest.approx(100 * filled.dead / (filled.stored + filled.dead))
        (threshold,) = (q for q in rule["data"] if q["refId"] == rule["condition"])
        assert share > threshold["model"]["conditions"][0]["evaluator"]["params"][0]

    def test_ingest_delay(self, client, filled):
        """The delay rule sees a p99 of most of an hour (a backlog of an hour just
        stored), above its threshold; an hour later, with no inserts, it sees 0."""
        (rule,) = (r for r in _alert_rules() if r["uid"] == "clickstream-ingest-delay")
        assert self._value(client, rule, filled.now + dt.timedelta(minutes=1)) > 60
        assert self._value(client, rule, filled.now + dt.timedelta(hours=1)) == 0


class TestOfflineReport:
    """`report --from clickhouse` and `dashboards render --from clickhouse`."""

    def test_report_from_the_settings(self, filled, dashboard, tmp_path):
        """The report from the [clickhouse] settings has every panel, in the events' own
        time range, and draws to one HTML file and a terminal report."""
        settings = Settings(clickhouse=ClickHouseSettings(url=filled.server.url))
        found = report.report_for(settings)
        assert found.source == "clickhouse"
        assert [c.title for c in found.charts] == [p.title for p in board.panels(dashboard)]
        assert found.time_range is not None
        assert found.time_range.start <= filled.now - dt.timedelta(minutes=50)
        (written,) = html.write(found, tmp_path / "report.html")
        page = written.read_text(encoding="utf-8")
        for chart_ in found.charts:
            assert f'id="{chart_.id}"' in page
        assert "against ClickHouse" in page
        assert summaries.dashboard_report(found).renderables

    def test_an_unreachable_server_is_one_error(self, filled):
        """No ClickHouse at the URL: one ClickHouse error, not a traceback."""
        from clickstream.errors import ClickstreamError  # noqa: PLC0415

        settings = Settings(clickhouse=ClickHouseSettings(url="http://127.0.0.1:9", timeout=2))
        with pytest.raises(ClickstreamError, match="ClickHouse"):
            report.report_for(settings)
