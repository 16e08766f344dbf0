"""The committed JSON Schemas of the event: one per version, each readable by the current model.

A change to `Event` that breaks readers of an older version fails here: the model's schema
must equal the committed file of its version, and be compatible with every committed one.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from clickstream import schemas
from clickstream.events import (
    SCHEMA_VERSION,
    SCHEMA_VERSIONS,
    Document,
    Event,
    check_json,
    json_schema,
    json_schema_text,
)

DATA = Path(__file__).parents[1] / "data"
REGENERATE = (
    "if the change is compatible, write the file with: .venv/bin/python -c 'from clickstream "
    f'import events; open("clickstream/schemas/event-v{SCHEMA_VERSION}.json", "w")'
    ".write(events.json_schema_text())'"
)


def samples(version: int) -> list[bytes]:
    """The committed sample events of `version` (tests/data/events-v<N>.jsonl)."""
    return (DATA / f"events-v{version}.jsonl").read_bytes().splitlines()


class TestCommittedSchemas:
    """Each version's schema is committed, and the current model keeps faith with all."""

    def test_every_version_is_committed(self):
        """A schema file per version the model reads, the current one last."""
        assert schemas.versions() == list(SCHEMA_VERSIONS)
        assert SCHEMA_VERSIONS[-1] == SCHEMA_VERSION

    def test_the_model_is_the_committed_schema_of_its_version(self):
        """The current model's schema equals event-v<SCHEMA_VERSION>.json, as written."""
        assert json_schema() == schemas.load(SCHEMA_VERSION), REGENERATE
        path = Path(schemas.__file__).with_name(f"event-v{SCHEMA_VERSION}.json")
        assert path.read_text("utf-8") == json_schema_text(), REGENERATE

    @pytest.mark.parametrize("version", SCHEMA_VERSIONS)
    def test_the_model_reads_every_committed_version(self, version):
        """No committed schema has documents the current model may refuse."""
        assert schemas.incompatibilities(schemas.load(version), json_schema()) == []

    def test_each_version_reads_the_ones_before(self):
        """Every committed schema is compatible with every older one."""
        for new in SCHEMA_VERSIONS:
            for old in SCHEMA_VERSIONS[: new - 1]:
                assert schemas.incompatibilities(schemas.load(old), schemas.load(new)) == []

    def test_a_new_version_is_not_read_by_an_old_reader(self):
        """The check can fail on the real files: version 1 refuses version 2's new field."""
        problems = schemas.incompatibilities(schemas.load(2), schemas.load(1))
        assert "session_seq: removed" in problems
        assert "schema_version: no longer accepts [2]" in problems


class TestSampleEvents:
    """Sample events of each version, valid under their own schema, read by the current model."""

    @pytest.mark.parametrize("version", SCHEMA_VERSIONS)
    def test_samples_are_documents_of_their_version(self, version):
        """Each sample validates against its version's committed schema and says its version."""
        validator = jsonschema.Draft202012Validator(schemas.load(version))
        lines = samples(version)
        assert len(lines) >= 7
        for line in lines:
            document = orjson.loads(line)
            validator.validate(document)
            assert document.get("schema_version", 1) == version

    @pytest.mark.parametrize("version", SCHEMA_VERSIONS)
    def test_the_model_and_the_fast_check_read_every_version(self, version):
        """Both readers accept every sample of every version, with the same id and day."""
        for line in samples(version):
            event = Event.from_json(line)
            assert event.schema_version == version
            assert check_json(line) == Document(str(event.event_id), event.day, line)

    def test_version_2_samples_are_refused_by_version_1(self):
        """The samples tell the versions apart: v1's schema refuses v2 documents."""
        validator = jsonschema.Draft202012Validator(schemas.load(1))
        assert not any(validator.is_valid(orjson.loads(line)) for line in samples(2))


def _current() -> dict[str, Any]:
    return copy.deepcopy(schemas.load(SCHEMA_VERSION))


class TestIncompatibilities:
    """The checker: each kind of breaking change is caught, and widening is allowed."""

    def test_the_same_schema_is_compatible(self):
        """No change, no problem."""
        assert schemas.incompatibilities(_current(), _current()) == []

    def test_an_added_optional_field_is_allowed(self):
        """A new field that documents may omit breaks no reader."""
        new = _current()
        new["properties"]["read_seconds"] = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
        assert schemas.incompatibilities(_current(), new) == []

    def test_widening_is_allowed(self):
        """Longer strings, a larger range, integer to number, a new enum value, null allowed."""
        new = _current()
        new["properties"]["user_id"]["maxLength"] = 128
        new["properties"]["session_seq"]["anyOf"][0] = {"type": "number", "minimum": 0}
        new["$defs"]["EventType"]["enum"].append("bookmark")
        new["properties"]["country"] = {"anyOf": [new["properties"]["country"], {"type": "null"}]}
        assert schemas.incompatibilities(_current(), new) == []

    def test_a_removed_field_is_caught(self):
        """Dropping a field from a closed schema refuses every document that has it."""
        new = _current()
        del new["properties"]["referrer"]
        assert schemas.incompatibilities(_current(), new) == ["referrer: removed"]

    def test_an_optional_field_made_required_is_caught(self):
        """Documents that omit it were valid, and would not be."""
        new = _current()
        new["required"].append("session_seq")
        assert schemas.incompatibilities(_current(), new) == [
            "session_seq: required, and was optional"
        ]

    def test_a_new_required_field_is_caught(self):
        """No older document has it."""
        new = _current()
        new["properties"]["read_seconds"] = {"type": "integer"}
        new["required"].append("read_seconds")
        assert schemas.incompatibilities(_current(), new) == ["read_seconds: required, and was new"]

    @pytest.mark.parametrize(
        ("field", "change", "problem"),
        [
            ("user_id", {"maxLength": 32}, "user_id: maxLength lowered from 64 to 32"),
            ("user_id", {"minLength": 3}, "user_id: minLength raised from 1 to 3"),
            ("user_id", {"pattern": "^user-"}, "user_id: pattern changed from None to '^user-'"),
            ("event_id", {"format": "uri"}, "event_id: format changed from 'uuid' to 'uri'"),
        ],
    )
    def test_a_narrowed_type_is_caught(self, field, change, problem):
        """Shorter strings, a higher minimum, a new pattern or format refuse old values."""
        new = _current()
        new["properties"][field] |= change
        assert schemas.incompatibilities(_current(), new) == [problem]

    def test_a_narrowed_range_in_a_nullable_field_is_caught(self):
        """The bound of a nullable field's non-null option counts too."""
        new = _current()
        new["properties"]["session_seq"]["anyOf"][0]["maximum"] = 255
        assert schemas.incompatibilities(_current(), new) == [
            "session_seq: maximum lowered from 65535 to 255"
        ]

    def test_a_nullable_field_made_non_null_is_caught(self):
        """Documents with null there were valid."""
        new = _current()
        new["properties"]["referrer"] = {"type": "string", "maxLength": 512}
        assert schemas.incompatibilities(_current(), new) == [
            "referrer: type changed from null to string"
        ]

    def test_a_dropped_enum_value_is_caught(self):
        """An event type (a `$defs` enum) that older documents use."""
        new = _current()
        new["$defs"]["EventType"]["enum"].remove("share")
        assert schemas.incompatibilities(_current(), new) == [
            "event_type: no longer accepts ['share']"
        ]

    def test_a_changed_type_is_caught(self):
        """A string field that becomes an integer."""
        new = _current()
        new["properties"]["user_id"] = {"type": "integer"}
        assert schemas.incompatibilities(_current(), new) == [
            "user_id: type changed from string to integer"
        ]

    def test_a_changed_type_in_a_nullable_field_is_caught(self):
        """session_seq as a string (or null) no longer takes the integers of older documents."""
        new = _current()
        new["properties"]["session_seq"]["anyOf"][0] = {"type": "string"}
        assert schemas.incompatibilities(_current(), new) == [
            "session_seq: type changed from integer to string or null"
        ]

    def test_a_changed_default_is_caught(self):
        """A document that omits the field would be read as something else."""
        new = _current()
        new["properties"]["schema_version"]["default"] = 2
        assert schemas.incompatibilities(_current(), new) == [
            "schema_version: default changed from 1 to 2"
        ]

    def test_closing_an_open_schema_is_caught(self):
        """Documents with fields the schema did not list were valid, and would not be."""
        old = _current()
        del old["additionalProperties"]
        assert schemas.incompatibilities(old, _current()) == [
            "the event: unknown fields are no longer accepted"
        ]
