"""Dead letters: a message that could not be indexed, why, and the headers it is sent with.

The consumer sends them to the dead-letter topic (see `EventConsumer`); `dlq replay`
reads them back (see `clickstream.consume.replay`). Their headers say what kind of failure it was,
why, and where the message first came from, so that a replay keeps its origin.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from confluent_kafka import Message

from clickstream.events import format_timestamp

#: Dead letters keep at most this much of an error reason.
MAX_REASON = 1000
#: Headers of a dead letter that say where its message first came from.
SOURCE_HEADERS = (
    "clickstream.source.topic",
    "clickstream.source.partition",
    "clickstream.source.offset",
)


class ErrorKind:
    """Why a message was dead-lettered (the `clickstream.error.kind` header)."""

    EMPTY = "empty"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    REJECTED = "rejected_by_opensearch"


@dataclass(frozen=True)
class DeadLetter:
    """A message that could not be indexed, with its reason."""

    message: Message
    kind: str
    reason: str


def dead_letter_headers(
    letter: DeadLetter, now: dt.datetime
) -> list[tuple[str, str | bytes | None]]:
    """Headers that say why a message was dead-lettered and where it came from.

    A message replayed from the dead-letter topic keeps the source it was first read from.
    """
    msg = letter.message
    source: list[tuple[str, str | bytes | None]] = [
        ("clickstream.source.topic", str(msg.topic()).encode()),
        ("clickstream.source.partition", str(msg.partition()).encode()),
        ("clickstream.source.offset", str(msg.offset()).encode()),
    ]
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    original = {key: value for key, value in pairs if key in SOURCE_HEADERS}
    if len(original) == len(SOURCE_HEADERS):
        source = [(key, original[key]) for key in SOURCE_HEADERS]
    return [
        ("clickstream.error.kind", letter.kind.encode()),
        ("clickstream.error.reason", letter.reason[:MAX_REASON].encode()),
        *source,
        ("clickstream.failed_at", format_timestamp(now).encode()),
    ]
