"""`clickstream demo`: the whole pipeline on the local stack, told step by step."""

from __future__ import annotations

import collections
import datetime as dt
from pathlib import Path

from clickstream.cli import summaries
from clickstream.cli.jobs import consume, setup
from clickstream.cli.terminal import Terminal
from clickstream.produce import publish
from clickstream.settings import Settings
from clickstream.sinks.opensearch import client as opensearch

#: How much history the demo simulates, ending now.
DEMO_HISTORY = dt.timedelta(hours=24)
#: Events per reader the demo counts on for a day; readers make about 24 (3 visits of ~8
#: events), so a day of simulation yields about twice what the demo publishes.
EVENTS_PER_USER_DAY = 12
#: How long the demo's consumer waits for more messages before it calls the topic drained.
DEMO_IDLE_SECONDS = 3.0
#: Where the demo writes its HTML reports, relative to the working directory.
DEMO_REPORT = "report.html"
DEMO_CLICKHOUSE_REPORT = "report-clickhouse.html"


def demo(settings: Settings, terminal: Terminal, *, events: int) -> None:
    """Stack up, setup, produce `events`, consume until idle, show what OpenSearch holds."""
    from clickstream.simulate.config import SimulationConfig  # noqa: PLC0415
    from clickstream.simulate.simulator import Simulator  # noqa: PLC0415
    from clickstream.stack import local as stack  # noqa: PLC0415 - needs the optional [stack] extra

    local = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"bootstrap_servers": stack.kafka_address(settings.stack)}
            ),
            "opensearch": settings.opensearch.model_copy(
                update={"url": stack.opensearch_url(settings.stack)}
            ),
            "clickhouse": settings.clickhouse.model_copy(
                update={"url": stack.clickhouse_url(settings.stack)}
            ),
        }
    ).for_sink("opensearch")
    terminal.say("[bold]1/5[/] starting the local stack")
    status, started = stack.up(local.stack)
    terminal.say(summaries.stack_status(status, started=started))
    # ClickHouse is an optional extra: without it the demo is the OpenSearch half alone.
    analytics = local.for_sink("clickhouse") if status.clickhouse.running else None

    terminal.say("[bold]2/5[/] creating topics, the index template and the ClickHouse tables")
    changes = setup(local)
    if analytics is not None:
        changes += setup(analytics)[1:]  # the events topic is listed once
    terminal.say(summaries.setup_lines(changes))

    # A day of history ending now, so the report shows the daily cycle (not a one-second
    # burst) and `report --since 1h` finds the latest hour: the population is sized for about
    # twice `events` a day, and the last `events` of that day are published.
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    terminal.say(
        f"[bold]3/5[/] simulating the news site's last {DEMO_HISTORY // dt.timedelta(hours=1)} "
        f"hours: the latest "
        f"{events:,} events go to {local.kafka.topic}"
    )
    sim = local.simulation
    users = max(20, events // EVENTS_PER_USER_DAY)
    config = SimulationConfig(users=users, articles=sim.articles, seed=sim.seed,
                              start=end - DEMO_HISTORY, end=end)  # fmt: skip
    latest = collections.deque(Simulator(config).messages(), maxlen=events)
    stats = publish.ProduceStats()
    sink = publish.KafkaSink(local.kafka, local.kafka.topic, stats)
    with terminal.progress("producing", len(latest)) as bar:
        publish.run(latest, sink, stats, on_progress=lambda s: bar.update(s.produced))
    terminal.say(summaries.produce_summary(stats, local.kafka.topic))

    terminal.say(
        f"[bold]4/5[/] indexing into OpenSearch until the topic is idle for {DEMO_IDLE_SECONDS:g}s"
    )
    consumed = consume(local, terminal, until_idle=DEMO_IDLE_SECONDS)
    terminal.say(summaries.consume_summary(consumed))

    client = opensearch.make_client(local.opensearch)
    summary = opensearch.summary(client, local.opensearch.index_prefix)
    terminal.say(summaries.index_summary(summary, local.opensearch.index_pattern))
    from clickstream.dashboards import charts, html  # noqa: PLC0415

    page = html.write(charts.report_for(local), Path(DEMO_REPORT))[0].resolve()
    terminal.say(f"\nThe dashboard's charts, offline: [bold]{page}[/] (open it in a browser)")

    if analytics is None:
        terminal.say(f"\n[bold]5/5[/] skipped: {status.clickhouse.detail}")
    else:
        terminal.say(
            "\n[bold]5/5[/] the same events into ClickHouse, in a consumer group of its own, "
            f"until the topic is idle for {DEMO_IDLE_SECONDS:g}s"
        )
        stored = consume(analytics, terminal, until_idle=DEMO_IDLE_SECONDS)
        terminal.say(summaries.consume_summary(stored))
        clickhouse_report(analytics, terminal)
    search = f"{local.opensearch.url}/{local.opensearch.index_pattern}/_search?pretty"
    terminal.say(
        "\nThe stack keeps running. Look around:\n"
        f"  curl '{search}'\n"
        "  clickstream produce --rate 50      (live traffic; Ctrl-C to stop)\n"
        "  clickstream consume                (index it as it comes)\n"
        "  clickstream consume --sink clickhouse  (and into ClickHouse, in its own group)\n"
        "  clickstream report --since 1h      (the dashboard's numbers, in the terminal)\n"
        "Stop it with: clickstream stack down"
    )


def clickhouse_report(settings: Settings, terminal: Terminal) -> None:
    """What ClickHouse now holds, from its real-time aggregates: a short overview, then the
    Grafana dashboard's panels computed offline, in the terminal and in an HTML file."""
    from clickstream.dashboards import html  # noqa: PLC0415
    from clickstream.dashboards.grafana import report  # noqa: PLC0415
    from clickstream.sinks.clickhouse.sink import ClickHouseSink  # noqa: PLC0415

    sink = ClickHouseSink.from_settings(settings)
    try:
        overview = sink.overview()
    finally:
        sink.close()
    terminal.say(summaries.clickhouse_overview(overview, sink.location))
    found = report.report_for(settings)
    terminal.say(summaries.dashboard_report(found))
    page = html.write(found, Path(DEMO_CLICKHOUSE_REPORT))[0].resolve()
    terminal.say(f"The Grafana dashboard's panels, offline: [bold]{page}[/] (open it in a browser)")
