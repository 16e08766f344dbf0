"""The event model: validation and its JSON form."""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clickstream.events import (
    SCHEMA_VERSIONS,
    Document,
    Event,
    EventType,
    _canonical_ip,
    check_json,
    format_timestamp,
    json_schema,
)
from clickstream.simulate.config import SimulationConfig
from clickstream.simulate.simulator import Simulator
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

    def test_session_seq_is_a_field_of_version_2(self):
        """A version 2 event may carry session_seq; a version 1 event may not, even null."""
        assert make_event(schema_version=2, session_seq=4).session_seq == 4
        assert make_event(schema_version=2).session_seq is None
        for value in (4, None):
            with pytest.raises(ValidationError, match="field of schema version 2"):
                make_event(schema_version=1, session_seq=value)

    @pytest.mark.parametrize("value", [0, 65_536, 1.0, "3", True])
    def test_session_seq_is_a_small_positive_integer(self, value):
        """Zero, too large, a float, a string or a boolean is refused."""
        with pytest.raises(ValidationError, match="session_seq"):
            make_event(schema_version=2, session_seq=value)

    def test_without_a_version_an_event_is_version_1(self):
        """A document without schema_version is version 1, as it was before version 2."""
        data = orjson.loads(make_event().to_json())
        del data["schema_version"]
        assert Event.from_json(orjson.dumps(data)).schema_version == 1

    def test_each_version_serializes_its_own_fields(self):
        """A version 1 event's JSON has no session_seq; a version 2 event's has it."""
        assert "session_seq" not in make_event(schema_version=1).to_dict()
        assert make_event(schema_version=2, session_seq=2).to_dict()["session_seq"] == 2
        assert make_event(schema_version=2).to_dict()["session_seq"] is None

    def test_unknown_fields_rejected(self):
        """Fields outside the schema are rejected, not silently dropped."""
        data = orjson.loads(make_event().to_json())
        data["surprise"] = 1
        with pytest.raises(ValidationError, match="surprise"):
            Event.from_json(orjson.dumps(data))


#: Stands for "remove the field".
_MISSING = object()
#: Values that probe each rule of the model: types, lengths, formats, ranges, cross-field.
_PROBES: list[object] = [
    None,
    "",
    "x",
    "x" * 64,
    "x" * 65,
    "x" * 2001,
    7,
    1.5,
    True,
    [],
    {},
    "mobile",
    "MOBILE",
    "like",
    "comment",
    "logout",
    "NL",
    "Nl",
    "art-1",
    "::1",
    "2001:DB8::1",
    "10.0.0.256",
    "010.0.0.1",
    "8.8.8.8",
    "0e6a0e1c-9b1e-4b39-a1a3-4a4f5a1b7c2d",
    "0E6A0E1C-9B1E-4B39-A1A3-4A4F5A1B7C2D",
    "0e6a0e1c9b1e4b39a1a34a4f5a1b7c2d",
    "urn:uuid:0e6a0e1c-9b1e-4b39-a1a3-4a4f5a1b7c2d",
    "2026-03-01T12:00:00Z",
    "2026-03-01T12:00:00.000Z",
    "2026-03-01T12:00:00.000+00:00",
    "2026-02-28T23:59:59.999Z",
    "2026-02-29T12:00:00.000Z",
    "2028-02-29T12:00:00.000Z",
    "2026-04-31T12:00:00.000Z",
    "2026-03-31T12:00:00.000Z",
    "2026-03-01T24:00:00.000Z",
    "2026-03-01T23:59:60.000Z",
    "2026-13-01T12:00:00.000Z",
    "2000-01-01T00:00:00.000Z",
    "1999-12-31T23:59:59.999Z",
    "2026-03-01T23:30:00-02:00",
    "2026-03-01T12:00:00",
    "1999-12-31T23:59:59.999Z",
    "2000-01-01T00:00:00Z",
    "2999-01-01T00:00:00Z",
    "1772366400",
    1772366400,
    0,
    1,
    2,
    65_535,
    65_536,
]


def _agree(doc: dict[str, object]) -> None:
    """`check_json` accepts `doc` only if the model does, with the model's id and day; and
    if the model accepts it and it is written as `Event.to_json` writes it (with an IPv4
    address), so does `check_json`."""
    data = orjson.dumps(doc)
    try:
        event = Event.model_validate_json(data)
    except ValidationError:
        event = None
    try:
        key = check_json(data)
    except (ValidationError, ValueError):
        key = None
    if event is None:
        assert key is None, doc
    elif key is not None:
        assert key == Document(str(event.event_id), event.day, data), doc
    elif event.ip.count(".") == 3:  # IPv6 addresses are left to the model
        assert orjson.loads(event.to_json()) != {"schema_version": 1, **doc}, doc


def _event(event_type: EventType, version: int) -> Event:
    """A valid event of `event_type` and schema `version`, with every field it may carry."""
    if version == 1:
        return make_event(event_type)
    return make_event(event_type, schema_version=version, session_seq=3)


class TestFastCheck:
    """`check_json`, the consumer's fast path, against the model it must agree with."""

    def test_every_single_change_of_every_event_type(self):
        """Each probe value in (or missing from) each field of each type of event."""
        for event_type, version in itertools.product(EventType, SCHEMA_VERSIONS):
            valid = orjson.loads(_event(event_type, version).to_json())
            for name in [*Event.model_fields, "mood"]:
                _agree({k: v for k, v in valid.items() if k != name})
                for value in _PROBES:
                    _agree({**valid, name: value})

    @given(
        changes=st.dictionaries(
            st.sampled_from([*Event.model_fields, "mood"]),
            st.one_of(st.sampled_from(_PROBES), st.just(_MISSING)),
            min_size=2,
            max_size=4,
        ),
        event_type=st.sampled_from(list(EventType)),
        version=st.sampled_from(SCHEMA_VERSIONS),
    )
    @settings(max_examples=300, deadline=None)
    def test_accepts_exactly_what_the_model_accepts(self, changes, event_type, version):
        """Several changes at once: both accept or both reject."""
        doc = orjson.loads(_event(event_type, version).to_json())
        for name, value in changes.items():
            if value is _MISSING:
                doc.pop(name, None)
            else:
                doc[name] = value
        _agree(doc)

    def test_accepts_every_simulated_event(self):
        """The fast check is the path the simulator's events take, all of them."""
        config = SimulationConfig(users=300, seed=3, start=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
        for _, value in itertools.islice(Simulator(config).messages(), 5000):
            event = Event.model_validate_json(value)
            assert check_json(value) == Document(str(event.event_id), event.day, value)

    def test_rejects_bytes_that_are_not_an_event(self):
        """Not JSON, not an object, not UTF-8: rejected, never a crash."""
        for data in (b"", b"{", b"[1]", b'{"a": "\xff"}', b"null"):
            with pytest.raises((ValidationError, ValueError)):
                check_json(data)


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
