"""Producer logic that needs no broker: pacing, counting, stopping."""

from __future__ import annotations

import io
import threading

import orjson

from clickstream.producer import Pacer, ProduceStats, StreamSink, run
from tests.helpers import make_event


class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class TestPacer:
    def test_holds_rate_without_drift(self):
        """At 100/s, event 500 is not sent before 5 s have passed."""
        fake = FakeTime()
        pacer = Pacer(100, clock=fake.clock, sleep=fake.sleep)
        stop = threading.Event()
        stop.wait = lambda timeout=None: fake.sleep(timeout or 0) or False  # type: ignore[method-assign]
        for index in range(501):
            pacer.wait(index, stop)
        assert abs(fake.now - 105.0) < 1e-6

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

    def test_stop_ends_run_and_flags_interrupted(self):
        """A set stop event ends the run and marks it interrupted."""
        out = io.BytesIO()
        stats = ProduceStats()
        stop = threading.Event()

        def events():
            for index in range(1000):
                if index == 7:
                    stop.set()
                yield make_event()

        run(events(), StreamSink(out, stats), stats, stop=stop)
        assert stats.interrupted
        assert stats.produced == 7
        assert len(out.getvalue().splitlines()) == 7

    def test_summary_numbers(self):
        """The summary dict reports what was counted."""
        stats = ProduceStats(produced=10, delivered=8, failed=1)
        summary = stats.as_dict()
        assert summary["undelivered"] == 1
        assert summary["failed"] == 1
