"""Outages: said when they start, reminded now and then, said when they end."""

from __future__ import annotations

from structlog.testing import capture_logs

from clickstream.retry import Outage


class TestOutage:
    def test_said_once_then_periodically_then_back(self):
        """An outage is logged when it starts, reminded every 30s, and its end logged once."""
        now = [0.0]
        outage = Outage("opensearch", every=30.0, clock=lambda: now[0])
        with capture_logs() as logs:
            for second in range(0, 95, 5):
                now[0] = float(second)
                outage.failed("refused")
            outage.recovered()
            outage.recovered()
        events = [entry["event"] for entry in logs]
        assert events == [
            "service unavailable; consumption paused until it is back",
            "service still unavailable",
            "service still unavailable",
            "service still unavailable",
            "service is back; resuming",
        ]
        assert {entry["service"] for entry in logs} == {"opensearch"}
        assert logs[-1]["outage_seconds"] == 90.0
        assert not outage.active

    def test_a_new_outage_is_said_again(self):
        """After a recovery, the next failure starts (and logs) a new outage."""
        outage = Outage("kafka", clock=lambda: 0.0)
        with capture_logs() as logs:
            outage.failed("down")
            outage.recovered()
            outage.failed("down")
        assert [e["log_level"] for e in logs] == ["error", "warning", "error"]
        assert outage.count == 2
