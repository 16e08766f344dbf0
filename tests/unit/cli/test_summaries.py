"""What the terminal shows of the data: escape sequences in events are shown, not run."""

from __future__ import annotations

import datetime as dt
import io

from rich.console import Console

from clickstream.cli import summaries
from clickstream.cli.terminal import Terminal
from clickstream.dashboards.model import Chart, Column, Report

HOSTILE = "user-\x1b[2J\x1b]0;owned\x07[bold red]x[/]"


def _render(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="standard", width=200).print(renderable)
    return out.getvalue()


class TestHostileData:
    """Event fields with terminal controls or rich markup are printed as visible text."""

    def test_bars_show_keys_escaped(self):
        """A user id that clears the screen appears as text; its markup is not applied."""
        shown = _render(summaries.bars("top users", {HOSTILE: 3}))
        assert "\x1b[2J" not in shown
        assert "\x1b]0;" not in shown
        assert "\\x1b[2J" in shown
        assert "[bold red]x[/]" in shown

    def test_a_dashboard_table_shows_titles_escaped(self):
        """An article title in a table chart is shown escaped."""
        chart = Chart(
            id="t",
            title="most read",
            description="",
            type="table",
            columns=[
                Column("1", "title", "bucket", "terms", "bucket", "article_title.keyword"),
                Column("2", "views", "metric", "count", "metric", None),
            ],
            rows=[[HOSTILE, 5]],
        )
        shown = _render(summaries._chart_table(chart))
        assert "\x1b[2J" not in shown
        assert "\\x1b[2J" in shown

    def test_errors_are_shown_escaped(self):
        """An error carrying a server's reason with controls prints them visibly, on one line."""
        err = io.StringIO()
        Terminal(stdout=io.StringIO(), stderr=err).error(f"rejected: {HOSTILE}")
        assert "\x1b[2J" not in err.getvalue()
        assert err.getvalue().count("\n") == 1

    def test_report_header(self):
        """The dashboard report's header shows the index pattern as text."""
        report = Report(
            pattern="events-[x]-*", time_range=None, generated_at=dt.datetime.now(dt.UTC)
        )
        assert "events-[x]-*" in _render(summaries.dashboard_report(report))
