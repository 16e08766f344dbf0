"""Dead letters: a message that could not be indexed, why, and the headers it is sent with.

The consumer sends them to the dead-letter topic (see `EventConsumer`); `dlq replay`
reads them back (see `clickstream.consume.replay`). Their headers say what kind of failure it was,
why, and where the message first came from, so that a replay keeps its origin.
"""

from __future__ import annotations

import datetime as dt
import hashlib
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
#: Headers of a dead letter whose value was cut to fit the broker's size limit: that it
#: was, and the size and sha256 (hex) of the whole value, so that it can be found and told
#: apart elsewhere (e.g. in the source topic, or the producer's logs).
TRUNCATION_HEADERS = (
    "clickstream.value.truncated",
    "clickstream.value.size",
    "clickstream.value.sha256",
)

Headers = list[tuple[str, str | bytes | None]]


class ErrorKind:
    """Why a message was dead-lettered (the `clickstream.error.kind` header)."""

    EMPTY = "empty"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    REJECTED = "rejected_by_opensearch"

    @staticmethod
    def rejected_by(sink: str) -> str:
        """The kind of a message that the store `sink` (a `Sink.name`) refused."""
        return f"rejected_by_{sink}"


@dataclass(frozen=True)
class DeadLetter:
    """A message that could not be indexed, with its reason."""

    message: Message
    kind: str
    reason: str


def _carried(msg: Message, names: tuple[str, ...]) -> Headers | None:
    """The headers `names` of `msg`, in that order, if it has every one of them."""
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    found = {key: value for key, value in pairs if key in names}
    if len(found) < len(names):
        return None
    return [(key, found[key]) for key in names]


def dead_letter_headers(letter: DeadLetter, now: dt.datetime) -> Headers:
    """Headers that say why a message was dead-lettered and where it came from.

    A message replayed from the dead-letter topic keeps the source it was first read from,
    and, if its value was cut then, the headers that say so (see `truncation_headers`).
    """
    msg = letter.message
    source: Headers = _carried(msg, SOURCE_HEADERS) or [
        ("clickstream.source.topic", str(msg.topic()).encode()),
        ("clickstream.source.partition", str(msg.partition()).encode()),
        ("clickstream.source.offset", str(msg.offset()).encode()),
    ]
    return [
        ("clickstream.error.kind", letter.kind.encode()),
        ("clickstream.error.reason", letter.reason[:MAX_REASON].encode()),
        *source,
        ("clickstream.failed_at", format_timestamp(now).encode()),
        *(_carried(msg, TRUNCATION_HEADERS) or []),
    ]


def truncation_headers(msg: Message) -> Headers:
    """The headers of a dead letter whose value is cut: its whole value's size and sha256.

    A message replayed from the dead-letter topic that was cut before has them already
    (`dead_letter_headers` keeps them): they describe the value it first had, so none are
    added.
    """
    if _carried(msg, TRUNCATION_HEADERS) is not None:
        return []
    value = msg.value() or b""
    return [
        ("clickstream.value.truncated", b"true"),
        ("clickstream.value.size", str(len(value)).encode()),
        ("clickstream.value.sha256", hashlib.sha256(value).hexdigest().encode()),
    ]
