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
    """Create the topics and the index template if missing; leave what exists alone."""
    changes: list[Change] = []
    for name in (settings.kafka.topic, settings.kafka.dlq_topic):
        result = kafka.ensure_topic(settings.kafka, name, settings.kafka.partitions)
        detail = f"{result.partitions} partitions"
        changes.append(Change(f"topic {name}", result.created, detail))
    prepared = open_sink(settings).setup()
    changes.append(Change(prepared.what, prepared.changed, prepared.detail))
    if settings.dashboards.url:
        from clickstream.dashboards import saved_objects  # noqa: PLC0415

        imported = saved_objects.install(settings)
        detail = f"{imported.count} saved objects, overwritten"
        changes.append(Change(f"dashboards at {settings.dashboards.url}", True, detail))
    log.info("setup", changed=[c.what for c in changes if c.changed])
    return changes


def open_sink(settings: Settings) -> Sink:
    """The store `consume`, `dlq replay` and `status` use: OpenSearch, the one sink so far.
    A module-level function, so that `consume --workers` can pass it to its processes."""
    from clickstream.sinks.opensearch.sink import OpenSearchSink  # noqa: PLC0415

    return OpenSearchSink.from_settings(settings)


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
            opensearch=settings.opensearch.url,
            until_idle=until_idle,
        )
        stats = worker.run(until_idle=until_idle, stop=stop)
    log.info("consumed", **stats.as_dict())
    return stats
