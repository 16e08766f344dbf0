"""`clickstream dashboards` (import, export, render) and `clickstream report`: the
dashboard's saved objects, and its numbers drawn offline or in the terminal.

`--from opensearch` (the default) computes the OpenSearch Dashboards saved visualizations
against OpenSearch; `--from clickhouse` runs the Grafana dashboard's panel SQL against
ClickHouse. Both give the same kind of report, drawn and printed by the same code.

`app.py` registers `report`; `dashboards` is a group of its own.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clickstream.cli import context, summaries
from clickstream.cli.context import IndexPrefix, SearchUrl
from clickstream.errors import ConfigError

if TYPE_CHECKING:
    from clickstream.dashboards.model import Report

dashboards_app = typer.Typer(
    help="OpenSearch Dashboards saved objects: import, export, and render them offline.",
    no_args_is_help=True,
)


SavedObjects = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        help="Saved objects (ndjson) [default: the saved objects shipped with clickstream].",
        dir_okay=False,
    ),
]


class Source(StrEnum):
    """Where a report's numbers come from."""

    OPENSEARCH = "opensearch"
    CLICKHOUSE = "clickhouse"


From = Annotated[
    Source,
    typer.Option(
        "--from",
        help="opensearch: the saved visualizations against OpenSearch; clickhouse: the "
        "Grafana dashboard's panels against ClickHouse.",
        case_sensitive=False,
    ),
]
DashboardFile = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        help="With --from opensearch, saved objects (ndjson); with --from clickhouse, a "
        "Grafana dashboard (JSON) [default: the ones shipped with clickstream].",
        dir_okay=False,
    ),
]
ClickHouseUrl = Annotated[
    str | None, typer.Option("--clickhouse-url", help="ClickHouse HTTP URL (--from clickhouse).")
]
DashboardsUrl = Annotated[
    str | None, typer.Option("--dashboards-url", help="OpenSearch Dashboards URL.")
]
Since = Annotated[
    str | None,
    typer.Option(
        help="Only events since then: a duration back from now (30m, 1h, 2d, 1w) or an ISO "
        "8601 time [default: all events]."
    ),
]


def _since(value: str | None) -> dt.datetime | None:
    from clickstream.dashboards.charts import parse_since  # noqa: PLC0415

    return None if value is None else parse_since(value, dt.datetime.now(dt.UTC))


def _report(
    source: Source,
    file: Path | None,
    since: str | None,
    opensearch_url: str | None,
    index_prefix: str | None,
    clickhouse_url: str | None,
) -> Report:
    """The dashboard's numbers computed from `source`, with the command's options."""
    settings = context.settings(
        opensearch={"url": opensearch_url, "index_prefix": index_prefix},
        clickhouse={"url": clickhouse_url},
    )
    if source is Source.CLICKHOUSE:
        from clickstream.dashboards.grafana import report  # noqa: PLC0415

        return report.report_for(settings, path=file, since=_since(since))
    from clickstream.dashboards import charts  # noqa: PLC0415

    return charts.report_for(settings, path=file, since=_since(since))


@dashboards_app.command("import")
def dashboards_import(
    file: SavedObjects = None,
    dashboards_url: DashboardsUrl = None,
    index_prefix: IndexPrefix = None,
) -> None:
    """Import the index pattern, visualizations and dashboard into OpenSearch Dashboards,
    overwriting objects with the same ids."""
    from clickstream.dashboards import saved_objects  # noqa: PLC0415

    settings = context.settings(
        dashboards={"url": dashboards_url}, opensearch={"index_prefix": index_prefix}
    )
    result = saved_objects.install(settings, file)
    kinds = ", ".join(f"{n} {kind}" for kind, n in result.by_type.items())
    context.terminal.say(
        f"imported {result.count} saved objects ({kinds}) into {settings.dashboards.url}"
    )


@dashboards_app.command("export")
def dashboards_export(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write here instead of stdout.", dir_okay=False),
    ] = None,
    dashboard: Annotated[str, typer.Option(help="The dashboard's id.")] = "clickstream-activity",
    dashboards_url: DashboardsUrl = None,
) -> None:
    """Export the dashboard and every object it references, as ndjson."""
    from clickstream.dashboards import saved_objects  # noqa: PLC0415

    settings = context.settings(dashboards={"url": dashboards_url})
    exported = saved_objects.export_objects(settings.dashboards, dashboard)
    if out is None:
        context.terminal.data.write(exported)
        context.terminal.data.flush()
        return
    try:
        out.write_bytes(exported)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}") from None
    context.terminal.say(f"exported dashboard {dashboard} to {out}")


@dashboards_app.command("render")
def dashboards_render(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The HTML file to write.", dir_okay=False)
    ] = Path("report.html"),
    png: Annotated[bool, typer.Option("--png", help="Also write the charts as a PNG.")] = False,
    since: Since = None,
    source: From = Source.OPENSEARCH,
    file: DashboardFile = None,
    opensearch_url: SearchUrl = None,
    index_prefix: IndexPrefix = None,
    clickhouse_url: ClickHouseUrl = None,
) -> None:
    """Compute the dashboard's charts (OpenSearch's saved visualizations, or the Grafana
    dashboard's panels on ClickHouse) and draw them in one self-contained HTML file that
    opens offline (and, with --png, one image)."""
    from clickstream.dashboards import html  # noqa: PLC0415

    found = _report(source, file, since, opensearch_url, index_prefix, clickhouse_url)
    for path in html.write(found, out, png=png):
        context.terminal.say(f"wrote {path.resolve()}")


def report_command(
    since: Since = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout, for machines.")] = False,
    source: From = Source.OPENSEARCH,
    file: DashboardFile = None,
    opensearch_url: SearchUrl = None,
    index_prefix: IndexPrefix = None,
    clickhouse_url: ClickHouseUrl = None,
) -> None:
    """The dashboard's numbers in the terminal: from OpenSearch, events by type, over time,
    top users, devices by category, most read, liked and commented articles; from
    ClickHouse, the Grafana dashboard's panels, the pipeline's health included."""
    found = _report(source, file, since, opensearch_url, index_prefix, clickhouse_url)
    if as_json:
        context.terminal.json(found.as_dict())
    else:
        context.terminal.say(summaries.dashboard_report(found))
