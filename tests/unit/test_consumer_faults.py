"""Poison messages, without a broker."""

from __future__ import annotations

import datetime as dt
import ipaddress

import orjson
from confluent_kafka import Message
from hypothesis import given
from hypothesis import strategies as st

from clickstream.consumer import decode
from clickstream.deadletters import DeadLetter, ErrorKind
from clickstream.events import Event, _canonical_ip
from tests.helpers import make_event

KINDS = {
    ErrorKind.EMPTY,
    ErrorKind.INVALID_UTF8,
    ErrorKind.INVALID_JSON,
    ErrorKind.INVALID_EVENT,
}


def message(value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> Message:
    return Message(topic="events", partition=1, offset=7, key=b"k", value=value, headers=headers)


def with_fields(**fields: object) -> bytes:
    doc = orjson.loads(make_event().to_json())
    doc.update(fields)
    return orjson.dumps(doc)


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
            decoded = decode(message(value))
            assert isinstance(decoded, DeadLetter), field
            assert decoded.kind == ErrorKind.INVALID_EVENT
            assert field.strip() in decoded.reason or field == "event", decoded.reason

    @given(st.binary(max_size=2000))
    def test_arbitrary_bytes_never_crash(self, value):
        """Any bytes decode to an event or to a dead letter of a known kind with a reason."""
        decoded = decode(message(value))
        if isinstance(decoded, DeadLetter):
            assert decoded.kind in KINDS
            assert decoded.reason
        else:
            assert isinstance(decoded, Event)

    @given(st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=20))
    def test_arbitrary_objects_are_invalid_events(self, doc):
        """A JSON object that is not an event is an invalid event, never a crash."""
        decoded = decode(message(orjson.dumps(doc)))
        assert isinstance(decoded, DeadLetter)
        assert decoded.kind == ErrorKind.INVALID_EVENT


class TestCanonicalIp:
    @given(st.ip_addresses())
    def test_addresses_as_ipaddress_writes_them(self, address):
        """Every IPv4 and IPv6 address comes out exactly as `ipaddress` writes it."""
        assert _canonical_ip(str(address)) == str(address)
        assert _canonical_ip(address.exploded) == str(ipaddress.ip_address(address.exploded))

    @given(st.text(max_size=45))
    def test_anything_else_is_refused_like_ipaddress(self, text):
        """Text `ipaddress` refuses is refused too; text it accepts is written alike."""
        try:
            expected = str(ipaddress.ip_address(text))
        except ValueError:
            expected = None
        try:
            got = _canonical_ip(text)
        except ValueError:
            got = None
        assert got == expected
