"""Drawing charts offline: the HTML report is self-contained and embeds exactly the numbers it
draws; the PNG is a real image; the terminal report shows the same numbers."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import struct
import sys
from typing import Any

import pytest
from rich.console import Console

from clickstream.cli.summaries import dashboard_report
from clickstream.dashboards import charts, html, model, saved_objects
from clickstream.errors import ClickstreamError, ConfigError

NDJSON = saved_objects.DEFAULT_FILE
T0 = dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC)
ROWS = {
    "clickstream-unique-users-sessions": [[12, 30, 400]],
    "clickstream-events-by-type": [["page_view", 250], ["login", 30], ["like", 20]],
    "clickstream-most-active-users": [["user-000001", 40], ["user-000002", 31]],
    "clickstream-event-volume": [
        ["2026-01-01T08:00:00Z", "page_view", 100],
        ["2026-01-01T08:00:00Z", "login", 10],
        ["2026-01-01T08:10:00Z", "page_view", 150],
        ["2026-01-01T08:20:00Z", "login", 20],
    ],
    "clickstream-device-by-category": [["tech", "mobile", 50], ["tech", "desktop", 20]],
    "clickstream-most-read": [["<script>alert(1)</script> & more", 9, 4]],
    "clickstream-most-liked": [["A headline", 3, 2]],
    "clickstream-most-commented": [],
}


@pytest.fixture(scope="module")
def report() -> model.Report:
    objects = saved_objects.read_objects(NDJSON)
    grids = saved_objects.panel_grids(objects)
    built = []
    for vis in saved_objects.dashboard_visualizations(objects):
        chart = charts.chart(vis, {"hits": {"total": {"value": 0}}}, None, grids[vis.id])
        built.append(
            model.Chart(**{**chart.__dict__, "rows": ROWS[vis.id], "interval": chart.interval})
        )
    span = model.TimeRange(T0, T0 + dt.timedelta(minutes=30))
    return model.Report("clickstream-events-*", span, T0 + dt.timedelta(hours=1), built)


def _embedded(page: str) -> dict[str, Any]:
    found = re.search(
        r'<script type="application/json" id="clickstream-data">(.*?)</script>', page, re.S
    )
    assert found is not None
    data: dict[str, Any] = json.loads(found[1])
    return data


class TestHtml:
    def test_embeds_exactly_the_charts_numbers(self, report):
        """The JSON in the page is the report: every chart's columns and rows."""
        data = _embedded(html.html_report(report))
        assert data == json.loads(json.dumps(report.as_dict()))
        assert [c["rows"] for c in data["charts"]] == [ROWS[c.id] for c in report.charts]

    def test_self_contained(self, report):
        """No script, stylesheet, image or font is fetched: nothing with src= or href=, no
        executable script, and the only URL is the SVG namespace."""
        page = html.html_report(report)
        assert not re.search(r"\b(src|href)=", page)
        assert "@import" not in page
        assert re.findall(r"<script\b[^>]*>", page) == [
            '<script type="application/json" id="clickstream-data">'
        ]
        assert set(re.findall(r"https?://[^\s\"'<]+", page)) == {"http://www.w3.org/2000/svg"}

    def test_every_chart_is_drawn_in_its_panel(self, report):
        """One panel with one SVG per visualization, placed on the dashboard's grid."""
        page = html.html_report(report)
        assert page.count("<section ") == 8
        assert page.count("<svg ") == 8
        assert 'id="clickstream-event-volume" data-type="line"' in page
        assert page.count("<polyline ") == 2  # page_view and login
        assert "no events" in page  # the empty comments table says so

    def test_labels_are_escaped(self, report):
        """Text from the data cannot inject markup, in the drawing or in the embedded JSON."""
        page = html.html_report(report)
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page

    def test_write_reports_unwritable_paths(self, report, tmp_path):
        """A report path that cannot be written is a clear error, not a traceback."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(ConfigError, match="cannot write the report"):
            html.write(report, blocker / "report.html")


@pytest.fixture
def vl_convert() -> None:
    """--png draws with vl-convert-python, from the `report` extra (in `dev`, so CI has it)."""
    pytest.importorskip("vl_convert", reason="--png needs the `report` extra (vl-convert-python)")


class TestPng:
    @pytest.mark.usefixtures("vl_convert")
    def test_png_is_a_real_image(self, report, tmp_path):
        """--png writes a PNG beside the HTML: signature, a page-sized IHDR, real content."""
        written = html.write(report, tmp_path / "report.html", png=True)
        assert [p.name for p in written] == ["report.html", "report.png"]
        data = written[1].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert width > 1500
        assert height > 1500
        assert len(data) > 50_000

    def test_without_the_report_extra_png_is_one_clear_error(self, report, monkeypatch):
        """Without vl-convert-python, --png fails with one line naming the extra to install."""
        monkeypatch.setitem(sys.modules, "vl_convert", None)  # `import vl_convert` raises
        with pytest.raises(ClickstreamError, match="--png needs the vl-convert-python") as info:
            html.png_report(report)
        assert "clickstream[report]" in str(info.value)


class TestTerminal:
    def test_terminal_report_shows_the_numbers(self, report):
        """`clickstream report` prints every chart with its numbers."""
        out = io.StringIO()
        Console(file=out, width=120, color_system=None).print(dashboard_report(report))
        text = out.getvalue()
        for needle in ("Unique users", "400", "page_view", "user-000001", "tech", "A headline"):
            assert needle in text
        assert re.search(r"page_view\s+250\s+150", text)  # volume: total and peak
