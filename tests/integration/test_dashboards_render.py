"""The saved visualizations against an index filled by produce + consume: every chart's
numbers equal the ones computed here, independently, from the produced events; the
`report` and `dashboards render` commands show the same numbers."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import struct
import subprocess
import sys
from collections import Counter, defaultdict
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from clickstream.cli import jobs
from clickstream.consume.loop import EventConsumer
from clickstream.dashboards import charts
from clickstream.events import Event
from clickstream.produce import publish
from clickstream.settings import Settings
from clickstream.simulate.config import SimulationConfig
from clickstream.simulate.simulator import Simulator
from clickstream.sinks.opensearch.sink import OpenSearchSink
from tests.fake_dashboards import serve_fake_dashboards

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
COUNT = 3000
CLI = shutil.which("clickstream") or str(Path(sys.executable).parent / "clickstream")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _fill(settings: Settings, seed: int) -> list[Event]:
    """Produce COUNT simulated events to Kafka and consume them into OpenSearch."""
    jobs.setup(settings)
    events = list(islice(Simulator(SimulationConfig(users=250, seed=seed, start=START)), COUNT))
    stats = publish.ProduceStats()
    publish.run(events, publish.KafkaSink(settings.kafka, settings.kafka.topic, stats), stats)
    assert stats.delivered == COUNT
    indexer = OpenSearchSink.from_settings(settings)
    consumed = EventConsumer(settings, indexer).run(until_idle=2.0)
    assert consumed.indexed == COUNT
    return events


@pytest.fixture
def events(settings) -> list[Event]:
    return _fill(settings, seed=11)


# -- the numbers, computed from the events without OpenSearch ---------------------------------


def _day_ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def _bucket(when: dt.datetime, interval: str) -> str:
    size = int(interval[:-1]) * _UNIT_SECONDS[interval[-1]] * 1000
    start = _day_ms(when) // size * size
    return dt.datetime.fromtimestamp(start / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _top(counts: Counter[str], rows: list[list[Any]], size: int = 10) -> None:
    """The rows are a top-`size` of `counts`: right values, and no larger value left out
    (ties at the cut may pick either key, as terms aggregations do)."""
    assert len(rows) == min(size, len(counts))
    for row in rows:
        assert row[1] == counts[row[0]], row
    assert [row[1] for row in rows] == sorted(counts.values(), reverse=True)[:size]


def assert_matches(report: dict[str, Any], events: list[Event]) -> None:
    """Every chart of `report` (as JSON) holds what `events` say, computed here."""
    by_id = {chart["id"]: chart for chart in report["charts"]}
    assert len(by_id) == 8

    (metric,) = by_id["clickstream-unique-users-sessions"]["rows"]
    users = {e.user_id for e in events}
    sessions = {e.session_id for e in events}
    assert metric == [len(users), len(sessions), len(events)]

    by_type = Counter(str(e.event_type) for e in events)
    assert dict(map(tuple, by_id["clickstream-events-by-type"]["rows"])) == dict(by_type)

    _top(Counter(e.user_id for e in events), by_id["clickstream-most-active-users"]["rows"])

    volume = by_id["clickstream-event-volume"]
    over_time = Counter(
        (_bucket(e.timestamp, volume["interval"]), str(e.event_type)) for e in events
    )
    assert {(r[0], r[1]): r[2] for r in volume["rows"]} == dict(over_time)
    assert len(volume["rows"]) == len(over_time)

    heat = Counter((e.category, str(e.device_type)) for e in events if e.category)
    rows = by_id["clickstream-device-by-category"]["rows"]
    assert {(r[0], r[1]): r[2] for r in rows} == dict(heat)

    for vis_id, kind in (
        ("clickstream-most-read", "page_view"),
        ("clickstream-most-liked", "like"),
        ("clickstream-most-commented", "comment"),
    ):
        chosen = [e for e in events if e.event_type == kind]
        counts = Counter(e.article_title for e in chosen)
        people: dict[str | None, set[str]] = defaultdict(set)
        for e in chosen:
            people[e.article_title].add(e.user_id)
        rows = by_id[vis_id]["rows"]
        _top(Counter({str(k): v for k, v in counts.items()}), [r[:2] for r in rows])
        for title, _count, distinct in rows:
            assert distinct == len(people[title]), (vis_id, title)


def _embedded(page: str) -> dict[str, Any]:
    found = re.search(
        r'<script type="application/json" id="clickstream-data">(.*?)</script>', page, re.S
    )
    assert found is not None
    data: dict[str, Any] = json.loads(found[1])
    return data


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# -- tests ------------------------------------------------------------------------------------


class TestChartsMatchTheEvents:
    def test_every_visualization(self, settings, events):
        """Each saved visualization's aggregation, run on the index, returns the numbers
        computed from the produced events."""
        report = charts.report_for(settings)
        assert report.time_range is not None
        assert report.time_range.start == min(e.timestamp for e in events)
        assert_matches(report.as_dict(), events)
        volume = next(c for c in report.charts if c.id == "clickstream-event-volume")
        assert len({row[0] for row in volume.rows}) > 10  # a real curve, not one bucket

    def test_since_limits_every_chart(self, settings, events):
        """With a time range only the events inside it are counted, in every chart."""
        since, until = START + dt.timedelta(minutes=20), START + dt.timedelta(minutes=80)
        report = charts.report_for(settings, since=since, now=until)
        inside = [e for e in events if since <= e.timestamp <= until]
        assert 0 < len(inside) < len(events)
        assert_matches(report.as_dict(), inside)


class TestCommands:
    def test_report_json_and_render(self, settings, events, settings_env, tmp_path):
        """`clickstream report --json` prints those numbers; `dashboards render --png`
        writes an offline HTML page embedding them and a PNG of the charts."""
        run = {"env": settings_env, "cwd": tmp_path, "capture_output": True, "timeout": 60}
        shown = subprocess.run([CLI, "report", "--json"], check=False, **run)
        assert shown.returncode == 0, shown.stderr
        assert_matches(json.loads(shown.stdout), events)

        terminal = subprocess.run([CLI, "report"], check=False, text=True, **run)
        assert terminal.returncode == 0, terminal.stderr
        assert f"{len(events):,}" in terminal.stderr
        assert "most commented articles" in terminal.stderr

        out = tmp_path / "out" / "report.html"
        drawn = subprocess.run(
            [CLI, "dashboards", "render", "--out", str(out), "--png"], check=False, **run
        )
        assert drawn.returncode == 0, drawn.stderr
        page = out.read_text(encoding="utf-8")
        assert_matches(_embedded(page), events)
        assert "<script src" not in page
        assert not re.search(r"(src|href)=\"https?:", page)  # nothing fetched: opens offline
        assert page.count("<svg") == 8
        image = out.with_suffix(".png").read_bytes()
        width, height = _png_size(image)
        assert width >= 1000
        assert height >= 1000
        assert len(image) > 50_000


class TestSetupImportsDashboards:
    def test_setup_imports_when_a_url_is_configured(self, make_settings):
        """`setup` with dashboards.url imports the saved objects, the index pattern titled
        for the configured prefix."""
        with serve_fake_dashboards() as fake:
            fake.answer = {"success": True, "successCount": 10}
            settings = make_settings(dashboards={"url": fake.url})
            changes = jobs.setup(settings)
        assert changes[-1].what == f"dashboards at {fake.url}"
        (seen,) = fake.seen
        assert seen.path == "/api/saved_objects/_import?overwrite=true"
        assert f'"title":"{settings.opensearch.index_pattern}"'.encode() in seen.body


@pytest.fixture(autouse=True)
def _quiet_logs():
    from clickstream import logs  # noqa: PLC0415

    logs.configure("warning")
