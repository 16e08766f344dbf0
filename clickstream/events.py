"""The clickstream event: one action of one user, schema version 1.

An event travels as one JSON object per Kafka message. Field names follow the
original news-site proof of concept (`event_type`, `user_id`, `article_id`,
`category`, `device_type`, `timestamp`) plus what analysis needs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from enum import StrEnum
from typing import Any, Final, Literal, Self
from uuid import UUID

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

SCHEMA_VERSION: Final = 1

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


def format_timestamp(value: dt.datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`, e.g. `2026-01-01T08:00:00.000Z`."""
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class Event(BaseModel):
    """One user action on the news site."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_max_length=2000)

    schema_version: Literal[1] = SCHEMA_VERSION
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

    @field_validator("timestamp")
    @classmethod
    def _timestamp_in_range(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a time zone (use UTC, e.g. ...Z)")
        value = value.astimezone(dt.UTC)
        if value < EARLIEST:
            raise ValueError(f"timestamp {format_timestamp(value)} is before {EARLIEST.year}")
        if value > dt.datetime.now(dt.UTC) + MAX_CLOCK_SKEW:
            raise ValueError(f"timestamp {format_timestamp(value)} is in the future")
        return value

    @field_validator("ip")
    @classmethod
    def _ip_is_an_address(cls, value: str) -> str:
        return _canonical_ip(value)

    @model_validator(mode="after")
    def _fields_match_type(self) -> Self:
        about_article = self.event_type in ARTICLE_EVENTS
        if about_article and not (self.article_id and self.category):
            raise ValueError(f"a {self.event_type} event needs article_id and category")
        if not about_article and (self.article_id or self.category):
            raise ValueError(f"a {self.event_type} event has no article")
        if (self.event_type is EventType.COMMENT) != (self.comment_text is not None):
            raise ValueError("comment_text is present on comment events and only there")
        return self

    @field_serializer("timestamp")
    def _serialize_timestamp(self, value: dt.datetime) -> str:
        return format_timestamp(value)

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready values."""
        return self.model_dump(mode="json")

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


def json_schema() -> dict[str, Any]:
    """The JSON schema of the event, for documentation and other consumers."""
    return Event.model_json_schema(mode="serialization")
