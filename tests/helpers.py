"""Small builders shared by the tests."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import socket
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Message

from clickstream.events import Event, EventType


def make_event(event_type: EventType = EventType.PAGE_VIEW, **fields: Any) -> Event:
    """A valid event of `event_type`; `fields` override any value."""
    about_article = event_type in {
        EventType.PAGE_VIEW,
        EventType.LIKE,
        EventType.COMMENT,
        EventType.SHARE,
    }
    values: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "event_type": event_type,
        "timestamp": dt.datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=dt.UTC),
        "user_id": "user-000001",
        "session_id": uuid.uuid4(),
        "article_id": "art-00001" if about_article else None,
        "article_title": "A headline" if about_article else None,
        "category": "tech" if about_article else None,
        "device_type": "mobile",
        "user_agent": "Mozilla/5.0 (Linux; Android 14)",
        "ip": "203.0.113.7",
        "country": "NL",
        "comment_text": "Well written." if event_type is EventType.COMMENT else None,
    }
    values.update(fields)
    return Event(**values)


def make_message(
    value: bytes | None,
    *,
    topic: str = "events",
    partition: int = 0,
    offset: int = 0,
    headers: list[tuple[str, str | bytes | None]] | None = None,
) -> Message:
    """A Kafka message as the consumer gets it, keyed `k`, without a broker."""
    return Message(
        topic=topic, partition=partition, offset=offset, key=b"k", value=value, headers=headers
    )


def port_below_ephemeral_range() -> int:
    """A free port under the kernel's ephemeral range.

    A client that keeps reconnecting to a stopped server on an ephemeral port can end up
    connected to itself (TCP simultaneous open) and so hold the port the server needs back.
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(low - 12000, 1025), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")
