"""Decoding: what the consumer makes of a message, an event ready to index or a dead letter.

A fast check of the event's JSON (`events.check_json`) lets most messages through as they
came; what it does not accept, the model itself decides on. A valid event is indexed as it
came (put on one line if it spans lines); anything else becomes a dead letter that says why:
not UTF-8, not JSON, or not a valid event (naming the field).
"""

from __future__ import annotations

import orjson
from confluent_kafka import Message
from pydantic import ValidationError

from clickstream.deadletters.letter import DeadLetter, ErrorKind
from clickstream.events import NO_KAFKA, Document, Event, check_json


def decode(message: Message) -> Document | DeadLetter:
    """The event in `message`, ready to index as it came, with the partition and offset it
    was read at, or why there is none."""
    value = message.value()
    if not value:
        return DeadLetter(message, ErrorKind.EMPTY, "message has no value")
    try:
        doc = check_json(value) if b"\n" not in value else _slow(value)
    except (ValidationError, ValueError):
        # Not valid by the fast check: the model itself decides, and says why.
        try:
            doc = _slow(value)
        except ValidationError as exc:
            return DeadLetter(message, *_classify_invalid(value, exc))
    partition, offset = message.partition(), message.offset()
    return Document(
        doc.event_id,
        doc.day,
        doc.source,
        NO_KAFKA if partition is None else partition,
        NO_KAFKA if offset is None else offset,
    )


def _slow(value: bytes) -> Document:
    return Document.of(Event.model_validate_json(value), value)


def _classify_invalid(value: bytes, exc: ValidationError) -> tuple[str, str]:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as bad:
        return ErrorKind.INVALID_UTF8, f"not UTF-8: {bad.reason} at byte {bad.start}"
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError as bad:
        return ErrorKind.INVALID_JSON, f"not JSON: {bad}"
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}" for err in exc.errors()
    )
    return ErrorKind.INVALID_EVENT, problems
