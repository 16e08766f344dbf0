"""The event model: validation and its JSON form."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from pydantic import ValidationError

from clickstream.events import Event, EventType, format_timestamp, json_schema
from tests.helpers import make_event


class TestJson:
    def test_round_trip(self):
        """An event survives to_json -> from_json unchanged, for every event type."""
        for event_type in EventType:
            event = make_event(event_type)
            assert Event.from_json(event.to_json()) == event

    def test_timestamp_format(self):
        """Timestamps are UTC ISO 8601 with milliseconds and a Z."""
        event = make_event(
            timestamp=dt.datetime(
                2026, 3, 1, 13, 0, 0, 5999, tzinfo=dt.timezone(dt.timedelta(hours=1))
            )
        )
        assert orjson.loads(event.to_json())["timestamp"] == "2026-03-01T12:00:00.005Z"
        assert event.day == "2026.03.01"

    def test_format_timestamp_converts_to_utc(self):
        """format_timestamp converts any zone to UTC."""
        eastern = dt.datetime(2026, 1, 1, 19, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
        assert format_timestamp(eastern) == "2026-01-02T00:00:00.000Z"

    def test_schema_names_every_field(self):
        """The published JSON schema lists the fields of the model."""
        assert set(json_schema()["properties"]) == set(Event.model_fields)


class TestValidation:
    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"timestamp": dt.datetime(1999, 12, 31, tzinfo=dt.UTC)}, "before 2000"),
            ({"timestamp": dt.datetime(2999, 1, 1, tzinfo=dt.UTC)}, "in the future"),
            ({"timestamp": dt.datetime(2026, 1, 1)}, "time zone"),
            ({"ip": "999.1.1.1"}, "ip"),
            ({"article_id": None}, "needs article_id"),
            ({"comment_text": "hi"}, "comment_text"),
            ({"user_id": ""}, "user_id"),
            ({"user_agent": "x" * 600}, "user_agent"),
        ],
    )
    def test_rejects_bad_page_view(self, change, message):
        """Out-of-range, inconsistent or oversized fields are rejected with a reason."""
        with pytest.raises(ValidationError, match=message):
            make_event(EventType.PAGE_VIEW, **change)

    def test_login_has_no_article(self):
        """A login naming an article is rejected."""
        with pytest.raises(ValidationError, match="has no article"):
            make_event(EventType.LOGIN, article_id="art-1", category="tech")

    def test_comment_needs_text(self):
        """A comment without comment_text is rejected."""
        with pytest.raises(ValidationError, match="comment_text"):
            make_event(EventType.COMMENT, comment_text=None)

    def test_unknown_fields_rejected(self):
        """Fields outside the schema are rejected, not silently dropped."""
        data = orjson.loads(make_event().to_json())
        data["surprise"] = 1
        with pytest.raises(ValidationError, match="surprise"):
            Event.from_json(orjson.dumps(data))
