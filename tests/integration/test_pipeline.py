"""The pipeline against real broker and search server processes: exact counts, replays, DLQ."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import uuid
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer
from opensearchpy import OpenSearch
from opensearchpy.helpers import scan

from clickstream.cli import jobs
from clickstream.consume import status
from clickstream.consume.loop import ConsumeStats, EventConsumer
from clickstream.produce import publish
from clickstream.settings import Settings
from clickstream.simulate.config import SimulationConfig
from clickstream.simulate.simulator import Simulator
from clickstream.sinks.base import WriteResult
from clickstream.sinks.opensearch import bulk
from clickstream.sinks.opensearch import client as opensearch
from clickstream.sinks.opensearch.sink import OpenSearchSink
from tests.helpers import make_event

START = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)


def produce(settings: Settings, count: int, seed: int = 1) -> set[str]:
    """Publish `count` simulated events; return their event ids."""
    config = SimulationConfig(users=300, seed=seed, start=START)
    events = list(islice(Simulator(config), count))
    stats = publish.ProduceStats()
    sink = publish.KafkaSink(settings.kafka, settings.kafka.topic, stats)
    publish.run(events, sink, stats)
    assert stats.delivered == count
    assert stats.failed == 0
    return {str(event.event_id) for event in events}


def consume(settings: Settings, **kwargs: object) -> ConsumeStats:
    indexer = OpenSearchSink.from_settings(settings)
    return EventConsumer(settings, indexer, **kwargs).run(until_idle=2.0)  # type: ignore[arg-type]


def indexed_ids(client: OpenSearch, prefix: str) -> list[str]:
    client.indices.refresh(index=f"{prefix}-*")
    return [hit["_id"] for hit in scan(client, index=f"{prefix}-*", query={"_source": False})]


def read_all(settings: Settings, topic: str) -> list[tuple[bytes | None, dict[str, bytes]]]:
    """Every message of `topic` as (value, headers), read with a throwaway group."""
    reader = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    reader.subscribe([topic])
    found: list[tuple[bytes | None, dict[str, bytes]]] = []
    idle = 0
    while idle < 6:
        batch = reader.consume(500, 0.5)
        idle = 0 if batch else idle + 1
        for msg in batch:
            if msg.error() is None:
                raw = msg.headers() or []
                pairs = raw.items() if isinstance(raw, dict) else raw
                headers = {k: v for k, v in pairs if isinstance(v, bytes)}
                found.append((msg.value(), headers))
    reader.close()
    return found


class TestExactlyOnceInTheIndex:
    def test_ten_thousand_events_indexed_once(self, settings, opensearch_client, make_settings):
        """10,000 produced events become exactly 10,000 documents whose ids are the event ids;
        consuming everything again in a new group leaves the index unchanged."""
        jobs.setup(settings)
        produced = produce(settings, 10_000)
        assert len(produced) == 10_000

        stats = consume(settings)
        assert (stats.consumed, stats.indexed, stats.dead_lettered) == (10_000, 10_000, 0)
        ids = indexed_ids(opensearch_client, settings.opensearch.index_prefix)
        assert len(ids) == 10_000
        assert set(ids) == produced

        replay = make_settings(kafka={"group_id": f"replay-{uuid.uuid4().hex}"})
        again = consume(replay)
        assert again.indexed == 10_000
        assert opensearch.count(opensearch_client, settings.opensearch.index_prefix) == 10_000

    def test_resume_from_committed_offsets(self, make_settings, opensearch_client):
        """A consumer stopped half-way and restarted in its group reads only the rest."""
        settings = make_settings(consumer={"batch_size": 500})
        jobs.setup(settings)
        produced = produce(settings, 10_000, seed=2)
        stop = threading.Event()

        def halfway(stats: ConsumeStats) -> None:
            if stats.consumed >= 5_000:
                stop.set()

        indexer = OpenSearchSink.from_settings(settings)
        first = EventConsumer(settings, indexer, on_batch=halfway).run(stop=stop)
        assert 5_000 <= first.consumed < 10_000

        second = consume(settings)
        assert first.consumed + second.consumed == 10_000
        ids = indexed_ids(opensearch_client, settings.opensearch.index_prefix)
        assert len(ids) == 10_000
        assert set(ids) == produced


class TestDeadLetters:
    def test_bad_messages_dead_lettered_good_ones_indexed(self, settings, opensearch_client):
        """A malformed and a schema-violating message land in the DLQ with their reasons and
        source; every valid message is indexed; the offsets move past all of them."""
        jobs.setup(settings)
        good = [make_event(user_id=f"user-{i:06d}") for i in range(20)]
        wrong_schema = orjson.loads(good[0].to_json())
        wrong_schema.update(event_id=str(uuid.uuid4()), event_type="teleport")
        bad = [b'{"event_id": "not closed', orjson.dumps(wrong_schema)]
        raw = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
        for payload in [e.to_json() for e in good[:10]] + bad + [e.to_json() for e in good[10:]]:
            raw.produce(settings.kafka.topic, payload, b"key")
        assert raw.flush(10) == 0

        stats = consume(settings)
        assert (stats.consumed, stats.indexed, stats.dead_lettered) == (22, 20, 2)
        assert opensearch.count(opensearch_client, settings.opensearch.index_prefix) == 20

        letters = read_all(settings, settings.kafka.dlq_topic)
        values = [value for value, _ in letters if value is not None]
        assert len(values) == len(letters)  # a dead letter always carries the message
        assert sorted(values) == sorted(bad)
        kinds = {value: h["clickstream.error.kind"] for value, h in letters}
        assert kinds[bad[0]] == b"invalid_json"
        assert kinds[bad[1]] == b"invalid_event"
        for value, headers in letters:
            assert headers["clickstream.source.topic"] == settings.kafka.topic.encode()
            assert headers["clickstream.error.reason"]
            assert int(headers["clickstream.source.offset"]) >= 0
            if value == bad[1]:
                assert b"event_type" in headers["clickstream.error.reason"]

        # Nothing is left to read: the group's offsets are past the bad messages.
        assert consume(settings).consumed == 0

    def test_rejected_by_mapping_is_dead_lettered(self, settings, opensearch_client):
        """A document OpenSearch rejects is dead-lettered with OpenSearch's reason."""
        jobs.setup(settings)
        # Make the daily index's mapping disagree with the events: article_id as a long.
        event = make_event()
        index = bulk.index_name(settings.opensearch.index_prefix, event)
        opensearch_client.indices.create(
            index=index, body={"mappings": {"properties": {"article_id": {"type": "long"}}}}
        )
        raw = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
        others = [make_event(article_id="12345") for _ in range(5)]
        for value in [event.to_json()] + [e.to_json() for e in others]:
            raw.produce(settings.kafka.topic, value, b"key")
        assert raw.flush(10) == 0

        stats = consume(settings)
        assert (stats.consumed, stats.indexed, stats.dead_lettered) == (6, 5, 1)
        letters = read_all(settings, settings.kafka.dlq_topic)
        assert len(letters) == 1
        assert letters[0][1]["clickstream.error.kind"] == b"rejected_by_opensearch"
        assert letters[0][1]["clickstream.error.reason"]


@pytest.fixture(autouse=True)
def _quiet_logs():
    """Keep the per-batch log lines out of the test output."""
    from clickstream import logs  # noqa: PLC0415

    logs.configure("warning")


def _librdkafka_threads() -> dict[int, float]:
    """CPU seconds used so far by each of this process's librdkafka broker threads (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            if not (task / "comm").read_text().startswith("rdk:broker"):
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        found[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def _librdkafka_cpu() -> float:
    """CPU seconds used so far by this process's live librdkafka broker threads."""
    return sum(_librdkafka_threads().values())


class _FetcherCpu:
    """CPU seconds librdkafka's broker threads use while this context is open, sampled
    every 50 ms: also of threads that end before it closes (a consumer closing)."""

    def __enter__(self) -> _FetcherCpu:
        self._before = _librdkafka_threads()
        self._last = dict(self._before)
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            self._last.update(_librdkafka_threads())

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._sampler.join()
        self.seconds = sum(cpu - self._before.get(tid, 0.0) for tid, cpu in self._last.items())


class TestQuietTopic:
    def test_events_after_a_quiet_spell_are_indexed_and_waiting_costs_no_cpu(self, settings):
        """A consumer started on an empty topic rests its partitions (the local broker
        answers empty fetches at once; without rests librdkafka fetches in a loop and burns
        a core); events that come after several rests are all indexed, within seconds."""
        jobs.setup(settings)
        client = opensearch.make_client(settings.opensearch)
        indexer = OpenSearchSink.from_settings(settings)
        consumer = EventConsumer(settings, indexer)
        stop = threading.Event()
        runner = threading.Thread(target=consumer.run, kwargs={"stop": stop})
        runner.start()
        try:
            time.sleep(1.0)  # joined, every partition read to its end
            cpu_before, quiet_started = _librdkafka_cpu(), time.monotonic()
            time.sleep(3.0)
            idle_cpu = _librdkafka_cpu() - cpu_before
            quiet = time.monotonic() - quiet_started
            produced = produce(settings, 500)
            deadline = time.monotonic() + 20
            while consumer.stats.consumed < 500 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop.set()
            runner.join(30)
        assert consumer.stats.consumed == 500
        assert set(indexed_ids(client, settings.opensearch.index_prefix)) == produced
        assert idle_cpu < 0.25 * quiet, f"{idle_cpu:.2f} CPU seconds in {quiet:.1f} s idle"


class _SlowIndexer(OpenSearchSink):
    """Indexes like the real one, but takes at least `seconds` per batch."""

    def __init__(self, settings: Settings, seconds: float) -> None:
        search = settings.opensearch
        client = opensearch.make_client(search)
        super().__init__(client, search.index_prefix, search.url, settings.consumer)
        self._seconds = seconds

    def write(self, batch: Any, **kwargs: Any) -> WriteResult:
        time.sleep(self._seconds)
        return super().write(batch, **kwargs)


class TestBacklog:
    def test_working_through_a_backlog_costs_the_fetcher_no_cpu(self, make_settings):
        """While the consumer works through what librdkafka already fetched, librdkafka
        does not keep fetching at the partitions' ends (the local broker answers an empty
        fetch at once, so a fetcher that asks again burns a core)."""
        settings = make_settings(consumer={"batch_size": 400})
        jobs.setup(settings)
        produced = produce(settings, 2400, seed=5)
        consumer = EventConsumer(settings, _SlowIndexer(settings, 0.7))
        started = time.monotonic()
        with _FetcherCpu() as fetcher:
            stats = consumer.run(until_idle=0.5)
        wall = time.monotonic() - started
        assert stats.indexed == len(produced)
        assert fetcher.seconds < 0.03 * wall, f"{fetcher.seconds:.2f} CPU seconds in {wall:.1f} s"


class TestCommits:
    @staticmethod
    def _committed(settings: Settings) -> int:
        kafka = settings.kafka
        parts = status.offsets(kafka, kafka.topic, kafka.group_id)
        return sum(p.committed or 0 for p in parts)

    def _run(self, settings: Settings, check_at: int) -> tuple[ConsumeStats, int, int]:
        """Consume everything; at batch `check_at`: what was consumed and committed."""
        seen: list[int] = []

        def check(stats: ConsumeStats) -> None:
            if stats.batches == check_at:
                seen.extend((stats.consumed, self._committed(settings)))

        return consume(settings, on_batch=check), seen[0], seen[1]

    def test_a_backlog_is_committed_at_intervals_and_in_full_at_the_end(self, make_settings):
        """Reading a backlog, the consumer does not commit after every batch (the interval
        has not passed); once it has caught up and stops, everything is committed."""
        settings = make_settings(consumer={"batch_size": 100, "commit_interval": 3600})
        jobs.setup(settings)
        produce(settings, 3000, seed=6)
        stats, consumed, committed = self._run(settings, check_at=10)
        assert consumed == 1000
        assert committed < consumed
        assert stats.consumed == self._committed(settings) == 3000

    def test_with_no_interval_every_batch_is_committed(self, make_settings):
        """`commit_interval = 0` commits each batch before the next one starts."""
        settings = make_settings(consumer={"batch_size": 100, "commit_interval": 0})
        jobs.setup(settings)
        produce(settings, 1500, seed=7)
        stats, consumed, committed = self._run(settings, check_at=10)
        assert consumed == committed == 1000
        assert stats.consumed == self._committed(settings) == 1500
