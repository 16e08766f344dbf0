"""Consumer logic that needs no broker: decoding, commit offsets."""

from __future__ import annotations

import orjson
from confluent_kafka import Message

from clickstream.consumer import commit_offsets, decode
from clickstream.deadletters import DeadLetter, ErrorKind
from clickstream.opensearch import Document
from tests.helpers import make_event


def message(value: bytes | None, partition: int = 0, offset: int = 0) -> Message:
    return Message(topic="events", partition=partition, offset=offset, key=b"k", value=value)


class TestDecode:
    def test_valid_event(self):
        """A valid event message becomes a document of its id, its day and the message."""
        event = make_event()
        value = event.to_json()
        assert decode(message(value)) == Document(str(event.event_id), event.day, value)

    def test_multi_line_event_is_indexed_on_one_line(self):
        """A pretty-printed event is valid; its document is the compact form."""
        event = make_event()
        pretty = orjson.dumps(event.to_dict(), option=orjson.OPT_INDENT_2)
        assert decode(message(pretty)) == Document(str(event.event_id), event.day, event.to_json())

    def test_forms_only_the_model_accepts_are_kept_as_they_came(self):
        """An IPv6 address (left to the model by the fast check) is still a valid event."""
        value = make_event(ip="2001:db8::1").to_json()
        decoded = decode(message(value))
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
            decoded = decode(message(value))
            assert isinstance(decoded, DeadLetter), kind
            assert decoded.kind == kind
            assert decoded.reason

    def test_invalid_event_reason_names_field(self):
        """A schema violation's reason names the offending field."""
        good = orjson.loads(make_event().to_json())
        decoded = decode(message(orjson.dumps({**good, "timestamp": "1970-01-01T00:00:00Z"})))
        assert isinstance(decoded, DeadLetter)
        assert "timestamp" in decoded.reason
        assert "before 2000" in decoded.reason

    def test_json_array_is_not_an_event(self):
        """Valid JSON that is not an object is an invalid event, not a crash."""
        decoded = decode(message(b"[1, 2, 3]"))
        assert isinstance(decoded, DeadLetter)
        assert decoded.kind == ErrorKind.INVALID_EVENT


class TestCommitOffsets:
    def test_one_past_last_per_partition(self):
        """The commit for a batch is one past the highest offset of each partition."""
        batch = [message(b"", 0, 5), message(b"", 1, 9), message(b"", 0, 7), message(b"", 1, 3)]
        offsets = {(tp.partition, tp.offset) for tp in commit_offsets(batch)}
        assert offsets == {(0, 8), (1, 10)}

    def test_empty_batch(self):
        """An empty batch commits nothing."""
        assert commit_offsets([]) == []
