"""Dead letters: the headers that say why a message failed and where it came from."""

from __future__ import annotations

import datetime as dt

from clickstream.deadletters.letter import DeadLetter, ErrorKind, dead_letter_headers
from tests.helpers import make_message


class TestDeadLetterHeaders:
    def test_headers_say_why_and_where(self):
        """Headers carry the kind, reason, source topic, partition and offset."""
        letter = DeadLetter(
            make_message(b"x", partition=2, offset=41), ErrorKind.INVALID_JSON, "bad"
        )
        now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        headers = dict(dead_letter_headers(letter, now))
        assert headers["clickstream.error.kind"] == b"invalid_json"
        assert headers["clickstream.error.reason"] == b"bad"
        assert headers["clickstream.source.topic"] == b"events"
        assert headers["clickstream.source.partition"] == b"2"
        assert headers["clickstream.source.offset"] == b"41"
        assert headers["clickstream.failed_at"] == b"2026-01-01T00:00:00.000Z"

    def test_reason_is_bounded(self):
        """A huge reason is cut, so one poison message cannot make a huge header."""
        letter = DeadLetter(make_message(b"x"), ErrorKind.INVALID_EVENT, "r" * 10_000)
        headers = dict(dead_letter_headers(letter, dt.datetime.now(dt.UTC)))
        reason = headers["clickstream.error.reason"]
        assert reason is not None
        assert len(reason) == 1000

    def test_replayed_letter_keeps_its_original_source(self):
        """A message read back from the DLQ and dead-lettered again keeps where it came from."""
        original: list[tuple[str, str | bytes | None]] = [
            ("clickstream.source.topic", b"events"),
            ("clickstream.source.partition", b"2"),
            ("clickstream.source.offset", b"41"),
        ]
        replayed = make_message(b"x", topic="events.dlq", offset=3, headers=original)
        letter = DeadLetter(replayed, ErrorKind.INVALID_JSON, "still bad")
        headers = dict(dead_letter_headers(letter, dt.datetime.now(dt.UTC)))
        assert headers["clickstream.source.topic"] == b"events"
        assert headers["clickstream.source.partition"] == b"2"
        assert headers["clickstream.source.offset"] == b"41"
        assert headers["clickstream.error.reason"] == b"still bad"
