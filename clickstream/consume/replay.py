"""The dead-letter topic, read back: `dlq replay` tries its messages again after a fix.

Replay reads the dead-letter topic in its own consumer group, only up to the end offsets
it found when it started, and handles every message as `consume` does: indexed, or
dead-lettered again (keeping the headers that say where it first came from). So a message
that still fails is appended once more but never read twice in one replay, and the next
replay starts after what this one committed.
"""

from __future__ import annotations

import threading

from clickstream import logs
from clickstream.consume import status
from clickstream.consume.loop import ConsumeStats, EventConsumer
from clickstream.settings import Settings
from clickstream.sinks.base import SinkFactory

log = logs.get("dlq")

#: How long replay waits for a message it knows is there before it gives up on the rest.
IDLE_SECONDS = 10.0


def replay_group(settings: Settings) -> str:
    """The consumer group replay reads the dead-letter topic in, unless told another."""
    return f"{settings.kafka.group_id}.dlq-replay"


def pending(settings: Settings, group: str) -> dict[int, int]:
    """Per partition of the dead-letter topic with messages `group` has not handled yet,
    the end offset now."""
    parts = status.offsets(settings.kafka, settings.kafka.dlq_topic, group)
    return {p.partition: p.end for p in parts if p.lag > 0}


def replay(
    settings: Settings,
    open_sink: SinkFactory,
    *,
    group: str | None = None,
    stop: threading.Event | None = None,
) -> ConsumeStats:
    """Write to the sink `open_sink` builds (or dead-letter again) what the dead-letter
    topic holds up to its end now."""
    group = group or replay_group(settings)
    todo = pending(settings, group)
    topic = settings.kafka.dlq_topic
    log.info("replaying", topic=topic, group=group, partitions=sorted(todo))
    if not todo:
        stats = ConsumeStats()
        stats.finished = stats.started
        return stats
    sink = open_sink(settings)
    ours = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"group_id": group})}
    )
    worker = EventConsumer(ours, sink, source=topic, stop_at=todo)
    stats = worker.run(until_idle=IDLE_SECONDS, stop=stop)
    log.info("replayed", **stats.as_dict())
    return stats
