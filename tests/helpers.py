"""Small builders shared by the tests."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

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
