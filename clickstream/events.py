"""The clickstream event: one action of one user, schema versions 1 and 2.

An event travels as one JSON object per Kafka message. Field names follow the
original news-site proof of concept (`event_type`, `user_id`, `article_id`,
`category`, `device_type`, `timestamp`) plus what analysis needs.

The compatibility policy: a reader accepts every older version, so a new version only adds
optional fields (never removes, requires, narrows or retypes one). An event says its version;
one without `schema_version` is version 1, as it always was. An event of an older version
does not carry the fields added after it (`FIELDS_SINCE`). The JSON Schema of each version
is committed as `clickstream/schemas/event-v<N>.json`, and a test holds the model to them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import time
from collections.abc import Container
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, NamedTuple, NotRequired, Required, Self, cast
from uuid import UUID

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_serializer,
    field_validator,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

#: The version producers write.
SCHEMA_VERSION: Final = 2
#: Every version a reader accepts, oldest first.
SCHEMA_VERSIONS: Final = (1, 2)
#: The fields added after version 1, with the version that added them.
FIELDS_SINCE: Final = {"session_seq": 2}

#: Events older than this are rejected: no news site logged clicks before it.
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
#: How far ahead of the receiver's clock an event may be (clock skew), not more.
MAX_CLOCK_SKEW = dt.timedelta(days=1)


class EventType(StrEnum):
    """What the user did."""

    LOGIN = "login"
    PAGE_VIEW = "page_view"
    LIKE = "like"
    COMMENT = "comment"
    SHARE = "share"
    LOGOUT = "logout"


#: Event types that concern an article and so carry its fields.
ARTICLE_EVENTS = frozenset(
    {EventType.PAGE_VIEW, EventType.LIKE, EventType.COMMENT, EventType.SHARE}
)


class DeviceType(StrEnum):
    """The kind of device a session runs on."""

    MOBILE = "mobile"
    DESKTOP = "desktop"
    TABLET = "tablet"


def _canonical_ip(value: str) -> str:
    """`value` as `ipaddress` writes it; raises `ValueError` if it is not an IP address."""
    try:
        # Fast path for what nearly every event carries: an IPv4 address already written
        # canonically (the C parser agrees and writes it back unchanged).
        if socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, value)) == value:
            return value
    except (OSError, ValueError):  # not IPv4 (ValueError: an embedded NUL)
        pass
    return str(ipaddress.ip_address(value))


def _utc_in_range(value: dt.datetime) -> dt.datetime:
    """`value` in UTC; raises `ValueError` if it has no time zone, is before 2000 or ahead."""
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a time zone (use UTC, e.g. ...Z)")
    value = value.astimezone(dt.UTC)
    if value < EARLIEST:
        raise ValueError(f"timestamp {format_timestamp(value)} is before {EARLIEST.year}")
    if value > dt.datetime.now(dt.UTC) + MAX_CLOCK_SKEW:
        raise ValueError(f"timestamp {format_timestamp(value)} is in the future")
    return value


def _check_fields_match_type(
    event_type: str, article_id: str | None, category: str | None, comment: str | None
) -> None:
    """Raises `ValueError` unless exactly the article events carry an article (and only
    comments a comment)."""
    about_article = event_type in ARTICLE_EVENTS
    if about_article and not (article_id and category):
        raise ValueError(f"a {event_type} event needs article_id and category")
    if not about_article and (article_id or category):
        raise ValueError(f"a {event_type} event has no article")
    if (event_type == EventType.COMMENT) != (comment is not None):
        raise ValueError("comment_text is present on comment events and only there")


def _check_fields_of_version(version: int, fields: Container[str]) -> None:
    """Raises `ValueError` if an event of `version` carries a field added after it."""
    for name, since in FIELDS_SINCE.items():
        if version < since and name in fields:
            raise ValueError(
                f"{name} is a field of schema version {since}, not {version}: "
                f"write schema_version {since}"
            )


def format_timestamp(value: dt.datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`, e.g. `2026-01-01T08:00:00.000Z`."""
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class Event(BaseModel):
    """One user action on the news site."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_max_length=2000)

    #: Absent means 1: version 1 had a default of 1, and its documents are still version 1.
    schema_version: Literal[1, 2] = 1
    event_id: UUID
    event_type: EventType
    timestamp: dt.datetime
    user_id: str = Field(min_length=1, max_length=64)
    session_id: UUID
    article_id: str | None = Field(default=None, max_length=64)
    article_title: str | None = Field(default=None, max_length=300)
    category: str | None = Field(default=None, max_length=64)
    device_type: DeviceType
    user_agent: str = Field(max_length=512)
    ip: str = Field(max_length=45)
    country: str = Field(min_length=2, max_length=2)
    referrer: str | None = Field(default=None, max_length=512)
    comment_text: str | None = Field(default=None, max_length=2000)
    session_seq: int | None = Field(
        default=None,
        ge=1,
        le=65_535,
        strict=True,
        description="Since version 2: the event's number in its session, 1 for the login, "
        "counted by the client. Orders a session's events and shows a lost one as a gap.",
    )

    @field_validator("timestamp")
    @classmethod
    def _timestamp_in_range(cls, value: dt.datetime) -> dt.datetime:
        return _utc_in_range(value)

    @field_validator("ip")
    @classmethod
    def _ip_is_an_address(cls, value: str) -> str:
        return _canonical_ip(value)

    @model_validator(mode="after")
    def _fields_match_type(self) -> Self:
        _check_fields_match_type(self.event_type, self.article_id, self.category, self.comment_text)
        _check_fields_of_version(self.schema_version, self.model_fields_set)
        return self

    @field_serializer("timestamp")
    def _serialize_timestamp(self, value: dt.datetime) -> str:
        return format_timestamp(value)

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready values, with the fields of its own schema version only."""
        data = self.model_dump(mode="json")
        for name, since in FIELDS_SINCE.items():
            if self.schema_version < since:
                del data[name]
        return data

    def to_json(self) -> bytes:
        """The event as compact UTF-8 JSON, the form it has on Kafka."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str) -> Event:
        """Parse and validate one event; raises `pydantic.ValidationError` or `ValueError`."""
        return cls.model_validate_json(data)

    @property
    def day(self) -> str:
        """The event's UTC day as `YYYY.MM.DD`, which names its daily index."""
        return self.timestamp.strftime("%Y.%m.%d")


#: The partition and offset of a document that was not read from Kafka (a test, a backfill).
NO_KAFKA: Final = -1


class Document(NamedTuple):
    """A valid event as the sinks store it: its id, its UTC day (`YYYY.MM.DD`, which names
    its daily index), its JSON source on one line, and the Kafka partition and offset it was
    read at (a sink that keeps provenance stores them; `NO_KAFKA` if it was not)."""

    event_id: str
    day: str
    source: bytes
    partition: int = NO_KAFKA
    offset: int = NO_KAFKA

    @classmethod
    def of(cls, event: Event, source: bytes | None = None) -> Document:
        """`event` with `source` (e.g. the Kafka message it was validated from, which saves
        serializing it again) or, if that is missing or spans lines, its compact JSON."""
        if source is None or b"\n" in source or b"\r" in source:
            # A pretty-printed document would break a newline-delimited body.
            source = event.to_json()
        return cls(str(event.event_id), event.day, source)


#: The forms of a UUID and an IP address the fast check accepts: how `Event.to_json` writes
#: them (and nearly every producer does). Other valid forms are left to the model.
_CANONICAL_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"
#: And of a timestamp: UTC with milliseconds, as `format_timestamp` writes it. Written so,
#: timestamps compare as text and the day is the first ten characters.
_CANONICAL_TIMESTAMP = (
    r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z$"
)


def _fast_form(name: str, annotation: Any) -> Any:
    """The type the fast check gives field `name` of `Event`: strings in place of UUIDs,
    enums and the timestamp (no objects to build), in the canonical forms only."""
    if annotation is UUID:
        return Annotated[str, StringConstraints(pattern=_CANONICAL_UUID)]
    if annotation is dt.datetime:
        return Annotated[str, StringConstraints(pattern=_CANONICAL_TIMESTAMP)]
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return Literal[tuple(member.value for member in annotation)]
    if name == "ip":
        return Annotated[str, StringConstraints(pattern=_CANONICAL_IPV4)]
    return annotation


def _fields_validator() -> TypeAdapter[dict[str, Any]]:
    """A validator of `Event`'s fields (types, lengths, required and unknown keys) that
    builds a plain dict instead of a model. It is derived from the model's own fields, so
    the two cannot drift; `check_json` adds the model's validators."""
    fields: dict[str, Any] = {}
    for name, info in Event.model_fields.items():
        annotation = _fast_form(name, info.annotation)
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        fields[name] = Required[annotation] if info.is_required() else NotRequired[annotation]
    config = ConfigDict(extra="forbid", str_max_length=Event.model_config.get("str_max_length"))
    shape = with_config(config)(TypedDict("EventFields", fields))  # type: ignore[operator]
    return cast(TypeAdapter[dict[str, Any]], TypeAdapter(shape))


_FIELDS = _fields_validator()
_EARLIEST_TEXT = format_timestamp(EARLIEST)


class _Horizon:
    """The latest timestamp an event may have, as text; renewed every second, so at most a
    second behind the model's (the fast check is stricter, never laxer)."""

    def __init__(self) -> None:
        self._until = 0.0
        self._text = ""

    def text(self) -> str:
        now = time.time()
        if now >= self._until:
            self._until = now + 1.0
            self._text = format_timestamp(dt.datetime.fromtimestamp(now, dt.UTC) + MAX_CLOCK_SKEW)
        return self._text


_HORIZON = _Horizon()


def check_json(data: bytes) -> Document:
    """Validate one event's JSON by the rules of `Event.model_validate_json`, without
    building an `Event`: the consumer's hot path, two to three times as fast. The document
    it returns has `data` as its source, as it came (a caller that stores it on one line
    checks for line breaks).

    It accepts only what the model accepts, with the same id and day; it also rejects valid
    events whose UUIDs, IP address or timestamp are not written the way `Event.to_json`
    writes them, for the model to decide. Raises `pydantic.ValidationError` or
    `ValueError`; the model says better why.
    """
    fields = _FIELDS.validate_json(data)
    timestamp: str = fields["timestamp"]
    if not _EARLIEST_TEXT <= timestamp <= _HORIZON.text():
        raise ValueError("timestamp out of range")
    if timestamp[8:10] > "28":  # a day of the month that the month may not have
        dt.date(int(timestamp[:4]), int(timestamp[5:7]), int(timestamp[8:10]))
    _check_fields_match_type(
        fields["event_type"],
        fields.get("article_id"),
        fields.get("category"),
        fields.get("comment_text"),
    )
    version = fields.get("schema_version", 1)
    if version < SCHEMA_VERSION:
        _check_fields_of_version(version, fields)
    return Document(fields["event_id"], timestamp[:10].replace("-", "."), data)


def json_schema() -> dict[str, Any]:
    """The JSON schema of the event (the current version), for documentation and other
    consumers; committed as `clickstream/schemas/event-v<SCHEMA_VERSION>.json`."""
    return Event.model_json_schema(mode="serialization")


def json_schema_text() -> str:
    """`json_schema()` as its committed file holds it."""
    return orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n"
