"""Decoding: every message becomes an event to index or a dead letter with its reason."""

from __future__ import annotations

import datetime as dt

import orjson
from hypothesis import given
from hypothesis import strategies as st

from clickstream.consume.decode import decode
from clickstream.deadletters.letter import DeadLetter, ErrorKind
from clickstream.events import Document
from tests.helpers import make_event, make_message

KINDS = {
    ErrorKind.EMPTY,
    ErrorKind.INVALID_UTF8,
    ErrorKind.INVALID_JSON,
    ErrorKind.INVALID_EVENT,
}


def with_fields(**fields: object) -> bytes:
    doc = orjson.loads(make_event().to_json())
    doc.update(fields)
    return orjson.dumps(doc)


class TestDecode:
    def test_valid_event(self):
        """A valid event message becomes a document of its id, its day and the message."""
        event = make_event()
        value = event.to_json()
        assert decode(make_message(value, partition=2, offset=41)) == Document(
            str(event.event_id), event.day, value, 2, 41
        )

    def test_multi_line_event_is_indexed_on_one_line(self):
        """A pretty-printed event is valid; its document is the compact form."""
        event = make_event()
        pretty = orjson.dumps(event.to_dict(), option=orjson.OPT_INDENT_2)
        assert decode(make_message(pretty)) == Document(
            str(event.event_id), event.day, event.to_json(), 0, 0
        )

    def test_forms_only_the_model_accepts_are_kept_as_they_came(self):
        """An IPv6 address (left to the model by the fast check) is still a valid event."""
        value = make_event(ip="2001:db8::1").to_json()
        decoded = decode(make_message(value))
        assert isinstance(decoded, Document)
        assert decoded.source == value

    def test_kinds(self):
        """Each kind of bad message is classified with a reason."""
        good = orjson.loads(make_event().to_json())
        cases = {
            ErrorKind.EMPTY: None,
            ErrorKind.INVALID_UTF8: b'{"a": "\xff\xfe"}',
            ErrorKind.INVALID_JSON: b'{"event_id": ',
            ErrorKind.INVALID_EVENT: orjson.dumps({**good, "event_type": "teleport"}),
        }
        for kind, value in cases.items():
            decoded = decode(make_message(value))
            assert isinstance(decoded, DeadLetter), kind
            assert decoded.kind == kind
            assert decoded.reason

    def test_invalid_event_reason_names_field(self):
        """A schema violation's reason names the offending field."""
        good = orjson.loads(make_event().to_json())
        decoded = decode(make_message(orjson.dumps({**good, "timestamp": "1970-01-01T00:00:00Z"})))
        assert isinstance(decoded, DeadLetter)
        assert "timestamp" in decoded.reason
        assert "before 2000" in decoded.reason

    def test_json_array_is_not_an_event(self):
        """Valid JSON that is not an object is an invalid event, not a crash."""
        decoded = decode(make_message(b"[1, 2, 3]"))
        assert isinstance(decoded, DeadLetter)
        assert decoded.kind == ErrorKind.INVALID_EVENT


class TestPoison:
    def test_each_kind_of_poison_has_a_reason(self):
        """Far-future and pre-2000 timestamps, oversized fields and non-objects are invalid
        events, each with a reason naming the field."""
        future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
        cases = {
            "timestamp": with_fields(timestamp=future),
            "timestamp ": with_fields(timestamp="1999-12-31T23:59:59Z"),
            "user_agent": with_fields(user_agent="x" * 100_000),
            "comment_text": with_fields(comment_text="y" * 5000),
            "event": b'"just a string"',
        }
        for field, value in cases.items():
            decoded = decode(make_message(value))
            assert isinstance(decoded, DeadLetter), field
            assert decoded.kind == ErrorKind.INVALID_EVENT
            assert field.strip() in decoded.reason or field == "event", decoded.reason

    @given(st.binary(max_size=2000))
    def test_arbitrary_bytes_never_crash(self, value):
        """Any bytes decode to an event or to a dead letter of a known kind with a reason."""
        decoded = decode(make_message(value))
        if isinstance(decoded, DeadLetter):
            assert decoded.kind in KINDS
            assert decoded.reason
        else:
            assert isinstance(decoded, Document)
            assert decoded.source == value

    @given(st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=20))
    def test_arbitrary_objects_are_invalid_events(self, doc):
        """A JSON object that is not an event is an invalid event, never a crash."""
        decoded = decode(make_message(orjson.dumps(doc)))
        assert isinstance(decoded, DeadLetter)
        assert decoded.kind == ErrorKind.INVALID_EVENT
