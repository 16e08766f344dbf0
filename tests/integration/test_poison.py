"""Arbitrary bytes on the events topic: the consumer never crashes and accounts for each one."""

from __future__ import annotations

import json
import uuid

import orjson
import pytest
from confluent_kafka import Producer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickstream.cli import jobs
from clickstream.consume import status
from tests.helpers import make_event
from tests.integration.test_pipeline import consume


def _event_like() -> st.SearchStrategy[bytes]:
    """Valid events, and events with one field replaced by something arbitrary."""
    fields = ["event_id", "event_type", "timestamp", "user_id", "ip", "country", "category"]
    junk = st.one_of(st.none(), st.integers(), st.text(max_size=3000), st.floats(allow_nan=False))

    def build(field: str, value: object, mutate: bool) -> bytes:
        doc = orjson.loads(make_event(event_id=uuid.uuid4()).to_json())
        if mutate:
            doc[field] = value
        # json, not orjson: a producer may well send integers past 64 bits
        return json.dumps(doc).encode()

    return st.builds(build, st.sampled_from(fields), junk, st.booleans())


MESSAGES = st.lists(
    st.one_of(st.binary(max_size=400), _event_like(), st.just(b"")), min_size=1, max_size=60
)


class TestPoisonMessages:
    """Whatever the bytes, every message is indexed or dead-lettered, and nothing blocks."""

    @settings(
        max_examples=4,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(values=MESSAGES)
    def test_arbitrary_bytes_are_all_accounted_for(self, make_settings, values):
        """consumed == sent == indexed + dead-lettered, and the DLQ holds the rest."""
        settings = make_settings(kafka={"group_id": f"poison-{uuid.uuid4().hex}"})
        jobs.setup(settings)
        before = _dead_letters(settings)
        raw = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
        for value in values:
            raw.produce(settings.kafka.topic, value, b"key")
        assert raw.flush(10) == 0
        stats = consume(settings)
        # The group is new each time: it reads what earlier examples sent too.
        assert stats.consumed == stats.indexed + stats.dead_lettered
        assert stats.consumed >= len(values)
        assert _dead_letters(settings) - before == stats.dead_lettered


def _dead_letters(settings) -> int:
    parts = status.offsets(settings.kafka, settings.kafka.dlq_topic, settings.kafka.group_id)
    return sum(p.end - p.low for p in parts)


@pytest.fixture(autouse=True)
def _quiet_logs():
    from clickstream import logs  # noqa: PLC0415

    logs.configure("warning")
