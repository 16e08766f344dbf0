"""`clickstream status` and `clickstream dlq replay` against real servers, run as commands."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import subprocess
import threading
import uuid

import pytest
from confluent_kafka import Producer

from clickstream.cli import jobs
from clickstream.consume.loop import ConsumeStats, EventConsumer
from clickstream.sinks.opensearch import bulk
from clickstream.sinks.opensearch.sink import OpenSearchSink
from tests.helpers import make_event
from tests.integration.faults import CLI, doc_count, env_for, produce_events
from tests.integration.test_pipeline import consume, read_all

pytestmark = pytest.mark.e2e


def _run(args: list[str], env: dict[str, str], cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


class TestStatus:
    """`status` says where the group stands, per partition, and what index and DLQ hold."""

    def test_lag_documents_and_dead_letters(self, make_settings, opensearch_client, tmp_path):
        """After a partial consume: committed + lag = end per partition, the index holds
        what was consumed, and the DLQ count is right; `--json` and the table agree."""
        settings = make_settings(consumer={"batch_size": 100})
        jobs.setup(settings)
        produce_events(settings, 1000, seed=21)
        raw = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
        raw.produce(settings.kafka.topic, b"not json", b"key")
        assert raw.flush(10) == 0
        stop = threading.Event()

        def halfway(stats: ConsumeStats) -> None:
            if stats.consumed >= 400:
                stop.set()

        indexer = OpenSearchSink.from_settings(settings)
        done = EventConsumer(settings, indexer, on_batch=halfway).run(stop=stop)
        assert 400 <= done.consumed < 1001

        result = _run(["status", "--json"], env_for(settings), tmp_path)
        assert result.returncode == 0, result.stderr
        found = json.loads(result.stdout)
        assert len(found["partitions"]) == settings.kafka.partitions
        for part in found["partitions"]:
            assert (part["committed"] or 0) + part["lag"] == part["end"]
        assert sum(p["end"] for p in found["partitions"]) == 1001
        assert found["lag"] == 1001 - done.consumed
        assert (
            found["documents"]
            == done.indexed
            == doc_count(opensearch_client, settings.opensearch.index_prefix)
        )
        assert found["dead_letters"] == done.dead_lettered

        table = _run(["status"], env_for(settings), tmp_path)
        assert table.returncode == 0, table.stderr
        assert f"documents in {settings.opensearch.index_pattern}: {done.indexed:,}" in table.stderr


class TestDlqReplay:
    """`dlq replay` tries dead letters again: indexed once fixed, never looping."""

    def test_replay_before_and_after_the_fix(self, make_settings, opensearch_client, tmp_path):
        """Rejected by a wrong mapping among good events, five events go to the DLQ; a
        replay while it is still wrong finds every one refused alike, so it stops with one
        error line and dead-letters none of them again; after the fix a replay indexes
        exactly them; a third replay finds nothing to do."""
        settings = make_settings()
        jobs.setup(settings)
        prefix = settings.opensearch.index_prefix
        bad_day = make_event()
        index = bulk.index_name(prefix, bad_day)
        opensearch_client.indices.create(
            index=index, body={"mappings": {"properties": {"article_id": {"type": "long"}}}}
        )
        events = [make_event(user_id=f"user-{i:06d}") for i in range(5)]
        good_day = bad_day.timestamp + dt.timedelta(days=1)
        good = [make_event(timestamp=good_day) for _ in range(5)]
        raw = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
        for event in itertools.chain.from_iterable(zip(events, good, strict=True)):
            raw.produce(settings.kafka.topic, event.to_json(), b"key", partition=0)
        assert raw.flush(10) == 0
        first = consume(settings)
        assert (first.consumed, first.indexed, first.dead_lettered) == (10, 5, 5)

        env = env_for(settings)
        still_broken = _run(["dlq", "replay"], env, tmp_path)
        assert still_broken.returncode == 1, still_broken.stderr
        errors = [line for line in still_broken.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1
        assert "rejected all 5 documents of a batch with mapper_parsing_exception" in errors[0]
        letters = read_all(settings, settings.kafka.dlq_topic)
        assert len(letters) == 5
        for _, headers in letters:
            assert headers["clickstream.source.topic"] == settings.kafka.topic.encode()
            assert headers["clickstream.error.kind"] == b"rejected_by_opensearch"

        opensearch_client.indices.delete(index=index)  # the fix: the template's mapping
        fixed = _run(["dlq", "replay"], env, tmp_path)
        assert fixed.returncode == 0, fixed.stderr
        assert "consumed 5 messages: 5 indexed, 0 dead-lettered" in fixed.stderr
        assert doc_count(opensearch_client, prefix) == 10
        found = opensearch_client.search(index=f"{prefix}-*", size=20)["hits"]["hits"]
        assert {hit["_id"] for hit in found} == {str(e.event_id) for e in [*events, *good]}

        again = _run(["dlq", "replay"], env, tmp_path)
        assert again.returncode == 0, again.stderr
        assert "consumed 0 messages" in again.stderr

    def test_replay_in_another_group(self, make_settings, tmp_path):
        """`--group` names the replay's own group: a new group replays the whole DLQ, which
        by then also holds the previous replay's dead letters."""
        settings = make_settings()
        jobs.setup(settings)
        raw = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
        for value in (b"\xff\xfe", b"[]", b"{"):
            raw.produce(settings.kafka.topic, value, b"key")
        assert raw.flush(10) == 0
        assert consume(settings).dead_lettered == 3
        env = env_for(settings)
        for expected in (3, 6):
            group = f"replay-{uuid.uuid4().hex}"
            result = _run(["dlq", "replay", "--group", group], env, tmp_path)
            assert result.returncode == 0, result.stderr
            assert f"consumed {expected} messages: 0 indexed, {expected} dead" in result.stderr
