"""A poison message too large to dead-letter whole: the consumer cuts it and carries on."""

from __future__ import annotations

import hashlib
import signal

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from clickstream.cli import jobs
from clickstream.consume import status
from tests.integration.faults import (
    doc_count,
    env_for,
    group_lag,
    produce_events,
    running,
    wait_for,
)
from tests.integration.test_pipeline import read_all

pytestmark = pytest.mark.e2e

#: The poison message: 1.5 MB that is not JSON.
BIG = b"y" * 1_500_000
#: The topic's and the adversary producer's size limit, above the poison message's size.
RAISED_LIMIT = "4000000"


def _create_topic(admin: AdminClient, name: str) -> None:
    """The events topic, created by the test so that the broker takes a 1.5 MB message;
    the dead-letter topic is left as `clickstream setup` makes it."""
    new = NewTopic(name, num_partitions=3, config={"max.message.bytes": RAISED_LIMIT})
    admin.create_topics([new])[name].result(timeout=15)


def _send_big(bootstrap: str, topic: str) -> None:
    """Write the poison message. This producer is the adversary, not the user's consumer:
    it raises `message.max.bytes`, as only a producer writing such a message would."""
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": RAISED_LIMIT})
    producer.produce(topic, BIG, b"big", partition=1)
    assert producer.flush(30) == 0


def _dead_letters(settings) -> int:
    parts = status.offsets(settings.kafka, settings.kafka.dlq_topic, settings.kafka.group_id)
    return sum(p.end - p.low for p in parts)


class TestOversizedPoison:
    """A 1.5 MB poison message among 10,000 events, consumed with the user's defaults."""

    def test_cut_dead_letter_and_every_event_indexed_across_a_kill(
        self, make_settings, kafka_admin, opensearch_client, tmp_path
    ):
        """Every good event is indexed and the big message dead-lettered once, cut, with
        headers giving its size and hash; the consumer never fails; after a SIGKILL a
        restarted consumer dead-letters nothing again and exits 0."""
        settings = make_settings()
        _create_topic(kafka_admin, settings.kafka.topic)
        jobs.setup(settings)
        produced = produce_events(settings, 5_000, seed=21)
        _send_big(settings.kafka.bootstrap_servers, settings.kafka.topic)
        produced |= produce_events(settings, 5_000, seed=22)
        env = env_for(settings)
        prefix = settings.opensearch.index_prefix
        with running(["consume"], env, tmp_path) as proc:
            wait_for(
                lambda: doc_count(opensearch_client, prefix) == len(produced) or not proc.alive(),
                240,
                "indexing every event",
            )
            wait_for(lambda: group_lag(settings) == 0 or not proc.alive(), 60, "committing")
            assert proc.alive(), proc.stderr()[-2000:]
            proc.signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert doc_count(opensearch_client, prefix) == len(produced)
        assert _dead_letters(settings) == 1
        with running(["consume", "--until-idle", "3"], env, tmp_path) as again:
            assert again.wait(timeout=120) == 0, again.stderr()[-2000:]
        assert group_lag(settings) == 0
        letters = read_all(settings, settings.kafka.dlq_topic)
        assert len(letters) == 1
        value, headers = letters[0]
        assert value is not None
        assert 0 < len(value) < 1_000_000
        assert BIG.startswith(value)
        assert headers["clickstream.value.truncated"] == b"true"
        assert headers["clickstream.value.size"] == b"1500000"
        assert headers["clickstream.value.sha256"] == hashlib.sha256(BIG).hexdigest().encode()
        assert headers["clickstream.error.kind"] == b"invalid_json"
        assert headers["clickstream.source.topic"] == settings.kafka.topic.encode()
        assert headers["clickstream.source.partition"] == b"1"
