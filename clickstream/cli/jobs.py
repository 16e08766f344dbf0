"""The jobs behind `setup` and `consume`, wired from the settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from clickstream import kafka, logs
from clickstream.cli.terminal import Terminal
from clickstream.consume import loop
from clickstream.settings import Settings
from clickstream.sinks.base import Sink

log = logs.get("pipeline")


@dataclass(frozen=True)
class Change:
    """One thing `setup` looked at: what it is, and whether setup changed it."""

    what: str
    changed: bool
    detail: str


def setup(settings: Settings) -> list[Change]:
    """Create the topics (the events topic and the sink's dead-letter topic) and what the
    sink of `consumer.sink` needs if missing; leave what exists alone."""
    changes: list[Change] = []
    for name in dict.fromkeys((settings.kafka.topic, settings.kafka.dlq_topic)):
        result = kafka.ensure_topic(settings.kafka, name, settings.kafka.partitions)
        detail = f"{result.partitions} partitions"
        changes.append(Change(f"topic {name}", result.created, detail))
    sink = open_sink(settings)
    try:
        prepared = sink.setup()
    finally:
        sink.close()
    changes.append(Change(prepared.what, prepared.changed, prepared.detail))
    if settings.dashboards.url and settings.consumer.sink == "opensearch":
        from clickstream.dashboards import saved_objects  # noqa: PLC0415

        imported = saved_objects.install(settings)
        detail = f"{imported.count} saved objects, overwritten"
        changes.append(Change(f"dashboards at {settings.dashboards.url}", True, detail))
    log.info("setup", sink=settings.consumer.sink, changed=[c.what for c in changes if c.changed])
    return changes


def open_sink(settings: Settings) -> Sink:
    """The store `consume`, `dlq replay` and `status` use: the one `consumer.sink` names.
    A module-level function, so that `consume --workers` can pass it to its processes."""
    if settings.consumer.sink == "clickhouse":
        from clickstream.sinks.clickhouse.sink import ClickHouseSink  # noqa: PLC0415

        return ClickHouseSink.from_settings(settings)
    from clickstream.sinks.opensearch.sink import OpenSearchSink  # noqa: PLC0415

    return OpenSearchSink.from_settings(settings)


def sink_address(settings: Settings) -> str:
    """Where the sink of `consumer.sink` is, for logs and summaries."""
    if settings.consumer.sink == "clickhouse":
        return settings.clickhouse.url
    return settings.opensearch.url


def consume(
    settings: Settings,
    terminal: Terminal,
    *,
    until_idle: float | None = None,
    stop: threading.Event | None = None,
) -> loop.ConsumeStats:
    """Consume the events topic into the sink until stopped or idle."""
    sink = open_sink(settings)
    with terminal.progress("consuming", None) as bar:

        def progress(stats: loop.ConsumeStats) -> None:
            bar.update(
                stats.consumed,
                detail=f"{stats.indexed:,} indexed, "
                f"{stats.dead_lettered:,} dead-lettered, {stats.rate:,.0f}/s",
            )

        worker = loop.EventConsumer(settings, sink, on_batch=progress)
        log.info(
            "consuming",
            topic=settings.kafka.topic,
            group=settings.kafka.group_id,
            sink=sink.name,
            to=sink_address(settings),
            until_idle=until_idle,
        )
        try:
            stats = worker.run(until_idle=until_idle, stop=stop)
        finally:
            sink.close()
    log.info("consumed", **stats.as_dict())
    return stats
