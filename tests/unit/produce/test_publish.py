"""Producer logic that needs no broker: pacing, counting, stopping."""

from __future__ import annotations

import io
import threading

import orjson

from clickstream.produce.publish import (
    CHUNK,
    Pacer,
    ProduceStats,
    StreamSink,
    chunk_size,
    producer_config,
    run,
)
from clickstream.settings import KafkaSettings
from tests.helpers import make_event


class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def wait(self, timeout: float | None = None) -> bool:
        """`threading.Event.wait` on this clock, for an event nobody sets."""
        self.sleep(timeout or 0)
        return False


class TestPacer:
    def test_holds_rate_without_drift(self):
        """At 100/s, event 500 is not sent before 5 s have passed."""
        fake = FakeTime()
        pacer = Pacer(100, clock=fake.clock, sleep=fake.sleep)
        stop = threading.Event()
        stop.wait = fake.wait  # type: ignore[method-assign]
        for index in range(501):
            pacer.wait(index, stop)
        assert abs(fake.now - 105.0) < 1e-6

    def test_run_holds_the_rate_over_a_minute(self):
        """run at 2,000/s for 60 s (on a fake clock) sends 120,000 events, within 0.1%."""
        fake = FakeTime()
        stop = threading.Event()
        stop.wait = fake.wait  # type: ignore[method-assign]
        stats = ProduceStats()
        sink = StreamSink(io.BytesIO(), stats)
        messages = ((b"k", b"{}") for _ in range(10**6))
        pacer = Pacer(2000, clock=fake.clock, sleep=fake.sleep)
        run(messages, sink, stats, duration=60, rate=2000, stop=stop, pacer=pacer,
            clock=fake.clock)  # fmt: skip
        assert abs(stats.produced - 120_000) <= 120
        assert abs(fake.now - 160.0) < 0.1

    def test_zero_rate_never_waits(self):
        """Rate 0 means as fast as possible."""
        fake = FakeTime()
        pacer = Pacer(0, clock=fake.clock, sleep=fake.sleep)
        for index in range(1000):
            pacer.wait(index, threading.Event())
        assert fake.now == 100.0


class TestRun:
    def test_count_and_lines(self):
        """run sends exactly `count` events, one JSON line each."""
        out = io.BytesIO()
        stats = ProduceStats()
        events = (make_event() for _ in range(100))
        run(events, StreamSink(out, stats), stats, count=10)
        lines = out.getvalue().splitlines()
        assert len(lines) == 10
        assert stats.produced == stats.delivered == 10
        assert all(orjson.loads(line)["event_type"] == "page_view" for line in lines)

    def test_stop_ends_run_within_one_chunk_and_flags_interrupted(self):
        """A set stop event ends the run at the end of the chunk in progress."""
        out = io.BytesIO()
        stats = ProduceStats()
        stop = threading.Event()

        def events():
            for index in range(10 * CHUNK):
                if index == 7:
                    stop.set()
                yield make_event()

        run(events(), StreamSink(out, stats), stats, stop=stop)
        assert stats.interrupted
        assert 7 <= stats.produced <= CHUNK
        assert len(out.getvalue().splitlines()) == stats.produced == stats.delivered

    def test_count_is_exact_across_chunks(self):
        """--count is exact however it falls across chunks."""
        out = io.BytesIO()
        stats = ProduceStats()
        messages = ((b"k", b'{"n":%d}' % n) for n in range(10 * CHUNK))
        run(messages, StreamSink(out, stats), stats, count=2 * CHUNK + 5)
        lines = out.getvalue().splitlines()
        assert len(lines) == stats.produced == 2 * CHUNK + 5
        assert [orjson.loads(line)["n"] for line in lines] == list(range(2 * CHUNK + 5))
        assert not stats.interrupted

    def test_a_finite_stream_ends_the_run(self):
        """When the messages run out (a backfill reached its end) the run ends by itself."""
        out = io.BytesIO()
        stats = ProduceStats()
        run(((b"k", b"{}") for _ in range(CHUNK + 1)), StreamSink(out, stats), stats)
        assert stats.produced == stats.delivered == CHUNK + 1
        assert not stats.interrupted

    def test_chunks_are_about_ten_milliseconds_at_the_target_rate(self):
        """As fast as possible: full chunks; at 200/s: 2 events; at 5/s: 1 event at a time."""
        assert chunk_size(0) == CHUNK
        assert chunk_size(200) == 2
        assert chunk_size(5) == 1
        assert chunk_size(10**7) == CHUNK

    def test_summary_numbers(self):
        """The summary dict reports what was counted."""
        stats = ProduceStats(produced=10, delivered=8, failed=1)
        summary = stats.as_dict()
        assert summary["undelivered"] == 1
        assert summary["failed"] == 1


class TestProducerConfig:
    def test_defaults_are_idempotent_and_compressed(self):
        """Without user settings the producer is idempotent and compresses with lz4."""
        conf = producer_config(KafkaSettings(bootstrap_servers="broker:9092"))
        assert conf["bootstrap.servers"] == "broker:9092"
        assert conf["enable.idempotence"] is True
        assert conf["compression.type"] == "lz4"

    def test_extra_overrides_the_defaults(self):
        """`kafka.extra` wins over the producer's own defaults."""
        settings = KafkaSettings(extra={"compression.type": "zstd", "linger.ms": "5"})
        conf = producer_config(settings)
        assert conf["compression.type"] == "zstd"
        assert conf["linger.ms"] == "5"
