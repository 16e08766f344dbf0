"""The jobs behind the commands: setup, consume and the demo, wired from the settings."""

from __future__ import annotations

import collections
import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path

from clickstream import bulk, consumer, kafka, logs, opensearch, producer, report
from clickstream.settings import Settings
from clickstream.terminal import Terminal

log = logs.get("pipeline")

#: How much history the demo simulates, ending now.
DEMO_HISTORY = dt.timedelta(hours=24)
#: Events per reader the demo counts on for a day; readers make about 24 (3 visits of ~8
#: events), so a day of simulation yields about twice what the demo publishes.
EVENTS_PER_USER_DAY = 12
#: How long the demo's consumer waits for more messages before it calls the topic drained.
DEMO_IDLE_SECONDS = 3.0
#: Where the demo writes its HTML report, relative to the working directory.
DEMO_REPORT = "report.html"


@dataclass(frozen=True)
class Change:
    """One thing `setup` looked at: what it is, and whether setup changed it."""

    what: str
    changed: bool
    detail: str


def setup(settings: Settings) -> list[Change]:
    """Create the topics and the index template if missing; leave what exists alone."""
    changes: list[Change] = []
    for name in (settings.kafka.topic, settings.kafka.dlq_topic):
        result = kafka.ensure_topic(settings.kafka, name, settings.kafka.partitions)
        detail = f"{result.partitions} partitions"
        changes.append(Change(f"topic {name}", result.created, detail))
    client = opensearch.make_client(settings.opensearch)
    prefix = settings.opensearch.index_prefix
    changed = opensearch.ensure_template(client, prefix)
    changes.append(Change(f"index template {prefix}", changed, f"for {prefix}-*"))
    if settings.dashboards.url:
        from clickstream import dashboards  # noqa: PLC0415

        imported = dashboards.install(settings)
        detail = f"{imported.count} saved objects, overwritten"
        changes.append(Change(f"dashboards at {settings.dashboards.url}", True, detail))
    log.info("setup", changed=[c.what for c in changes if c.changed])
    return changes


def consume(
    settings: Settings,
    terminal: Terminal,
    *,
    until_idle: float | None = None,
    stop: threading.Event | None = None,
) -> consumer.ConsumeStats:
    """Consume the events topic into OpenSearch until stopped or idle."""
    client = opensearch.make_client(settings.opensearch)
    opensearch.check(client, settings.opensearch.url)
    indexer = bulk.BulkIndexer(client, settings.opensearch.index_prefix, settings.consumer)
    with terminal.progress("consuming", None) as bar:

        def progress(stats: consumer.ConsumeStats) -> None:
            bar.update(
                stats.consumed,
                detail=f"{stats.indexed:,} indexed, "
                f"{stats.dead_lettered:,} dead-lettered, {stats.rate:,.0f}/s",
            )

        worker = consumer.EventConsumer(settings, indexer, on_batch=progress)
        log.info(
            "consuming",
            topic=settings.kafka.topic,
            group=settings.kafka.group_id,
            opensearch=settings.opensearch.url,
            until_idle=until_idle,
        )
        stats = worker.run(until_idle=until_idle, stop=stop)
    log.info("consumed", **stats.as_dict())
    return stats


def demo(settings: Settings, terminal: Terminal, *, events: int) -> None:
    """Stack up, setup, produce `events`, consume until idle, show what OpenSearch holds."""
    from clickstream import stack  # noqa: PLC0415 - needs the optional [stack] extra
    from clickstream.simulation import SimulationConfig, Simulator  # noqa: PLC0415

    local = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"bootstrap_servers": stack.kafka_address(settings.stack)}
            ),
            "opensearch": settings.opensearch.model_copy(
                update={"url": stack.opensearch_url(settings.stack)}
            ),
        }
    )
    terminal.say("[bold]1/4[/] starting the local stack")
    status, started = stack.up(local.stack)
    terminal.say(report.stack_status(status, started=started))

    terminal.say("[bold]2/4[/] creating topics and the index template")
    terminal.say(report.setup_lines(setup(local)))

    # A day of history ending now, so the report shows the daily cycle (not a one-second
    # burst) and `report --since 1h` finds the latest hour: the population is sized for about
    # twice `events` a day, and the last `events` of that day are published.
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    terminal.say(
        f"[bold]3/4[/] simulating the news site's last {DEMO_HISTORY // dt.timedelta(hours=1)} "
        f"hours: the latest "
        f"{events:,} events go to {local.kafka.topic}"
    )
    sim = local.simulation
    users = max(20, events // EVENTS_PER_USER_DAY)
    config = SimulationConfig(users=users, articles=sim.articles, seed=sim.seed,
                              start=end - DEMO_HISTORY, end=end)  # fmt: skip
    latest = collections.deque(Simulator(config).messages(), maxlen=events)
    stats = producer.ProduceStats()
    sink = producer.KafkaSink(local.kafka, local.kafka.topic, stats)
    with terminal.progress("producing", len(latest)) as bar:
        producer.run(latest, sink, stats, on_progress=lambda s: bar.update(s.produced))
    terminal.say(report.produce_summary(stats, local.kafka.topic))

    terminal.say(
        f"[bold]4/4[/] indexing into OpenSearch until the topic is idle for {DEMO_IDLE_SECONDS:g}s"
    )
    consumed = consume(local, terminal, until_idle=DEMO_IDLE_SECONDS)
    terminal.say(report.consume_summary(consumed))

    client = opensearch.make_client(local.opensearch)
    summary = opensearch.summary(client, local.opensearch.index_prefix)
    terminal.say(report.index_summary(summary, local.opensearch.index_pattern))
    from clickstream import charts, render  # noqa: PLC0415

    page = render.write(charts.report_for(local), Path(DEMO_REPORT))[0].resolve()
    terminal.say(f"\nThe dashboard's charts, offline: [bold]{page}[/] (open it in a browser)")
    search = f"{local.opensearch.url}/{local.opensearch.index_pattern}/_search?pretty"
    terminal.say(
        "\nThe stack keeps running. Look around:\n"
        f"  curl '{search}'\n"
        "  clickstream produce --rate 50      (live traffic; Ctrl-C to stop)\n"
        "  clickstream consume                (index it as it comes)\n"
        "  clickstream report --since 1h      (the dashboard's numbers, in the terminal)\n"
        "Stop it with: clickstream stack down"
    )
