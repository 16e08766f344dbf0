"""`clickstream consume` under real faults: SIGKILLs, OpenSearch and broker outages, rebalances.

Every test runs the installed command as a separate process against real servers, injects
the fault for real (a signal, a cut connection, a stopped broker) and then checks that the
index holds exactly the produced events: nothing lost, nothing twice.
"""

from __future__ import annotations

import random
import signal
import time

import pytest

from clickstream.cli import jobs
from clickstream.consume import status
from tests.integration.faults import (
    Broker,
    FaultyProxy,
    Process,
    doc_count,
    env_for,
    group_lag,
    produce_events,
    running,
    wait_for,
)
from tests.integration.test_pipeline import indexed_ids

pytestmark = pytest.mark.e2e

#: How many times the consumer is SIGKILLed over the run.
KILLS = 8
#: The longest a test waits for the consumer to catch up after a fault.
CATCH_UP = 240.0


def _assert_exactly(client, settings, produced: set[str]) -> None:
    """The index holds each produced event once, and the group has read everything."""
    ids = indexed_ids(client, settings.opensearch.index_prefix)
    assert len(ids) == len(set(ids)) == len(produced)
    assert set(ids) == produced
    parts = status.offsets(settings.kafka, settings.kafka.topic, settings.kafka.group_id)
    assert sum(p.lag for p in parts) == 0, parts


class TestSigkill:
    """SIGKILL at random moments loses nothing and duplicates nothing."""

    def test_killed_many_times_over_fifty_thousand_events(
        self, make_settings, opensearch_client, tmp_path
    ):
        """50,000 events, the consumer SIGKILLed at random points and restarted each time:
        the index ends with exactly the 50,000 events and the group has no lag."""
        settings = make_settings()
        jobs.setup(settings)
        produced = produce_events(settings, 50_000, seed=11)
        env = env_for(settings)  # the user's defaults: no group.instance.id set by hand
        prefix = settings.opensearch.index_prefix
        rng = random.Random(20261122)
        args = ["consume", "--batch-size", "1000", "--batch-timeout", "0.5"]
        kills, mid_run = 0, 0
        while kills < KILLS:
            before = doc_count(opensearch_client, prefix)
            with running(args, env, tmp_path) as proc:

                def indexing_or_exited(b: int = before, p: Process = proc) -> bool:
                    return doc_count(opensearch_client, prefix) > b or not p.alive()

                # Once it indexes, kill it at a random moment: mid-batch, mid-commit, ...
                wait_for(
                    indexing_or_exited,
                    90,
                    "indexing after a restart",
                    every=0.2,
                )
                time.sleep(rng.uniform(0.0, 2.5))
                assert proc.alive(), proc.stderr()[-2000:]
                proc.signal(signal.SIGKILL)
                proc.wait(timeout=30)
            kills += 1
            after = doc_count(opensearch_client, prefix)
            mid_run += before < after < len(produced)
            if after == len(produced):
                break
        # Every kill but the last lands while events are being indexed (the last may come
        # once all are); a fast machine indexes everything before all KILLS are made.
        assert mid_run >= kills - 1, "the kills should land while events are being indexed"
        assert kills >= KILLS // 2, f"only {kills} kills before everything was indexed"
        with running([*args, "--until-idle", "5"], env, tmp_path) as last:
            assert last.wait(timeout=CATCH_UP) == 0, last.stderr()[-2000:]
        assert doc_count(opensearch_client, prefix) == len(produced)
        _assert_exactly(opensearch_client, settings, produced)


class TestOpenSearchOutage:
    """OpenSearch going away mid-run: the consumer waits, then resumes by itself."""

    def test_connection_cut_for_twenty_seconds(self, make_settings, opensearch_client, tmp_path):
        """With every connection to OpenSearch cut for 20s the consumer stays up, indexes
        nothing, says so once, and after the cut finishes with exactly the produced events."""
        settings = make_settings()
        jobs.setup(settings)
        produced = produce_events(settings, 12_000, seed=12)
        host, port = settings.opensearch.url.removeprefix("http://").rsplit(":", 1)
        proxy = FaultyProxy(host, int(port))
        try:
            env = env_for(settings, CLICKSTREAM_OPENSEARCH__URL=proxy.url)
            args = ["consume", "--batch-size", "500"]
            prefix = settings.opensearch.index_prefix
            with running(args, env, tmp_path) as proc:
                wait_for(lambda: doc_count(opensearch_client, prefix) >= 2000, 90, "indexing")
                proxy.cut()
                time.sleep(3)  # what was in flight when the cut came has failed by now
                during = doc_count(opensearch_client, prefix)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    assert proc.alive(), proc.stderr()[-2000:]
                    time.sleep(1)
                assert doc_count(opensearch_client, prefix) == during < len(produced)
                proxy.restore()
                wait_for(
                    lambda: doc_count(opensearch_client, prefix) == len(produced),
                    CATCH_UP,
                    "catching up after the outage",
                )
                proc.signal(signal.SIGTERM)
                assert proc.wait(timeout=60) == 0, proc.stderr()[-2000:]
                paused = proc.logged("service unavailable; consumption paused until it is back")
                assert [e["service"] for e in paused] == ["opensearch"]
                back = proc.logged("service is back; resuming")
                assert [e["service"] for e in back] == ["opensearch"]
        finally:
            proxy.close()
        _assert_exactly(opensearch_client, settings, produced)


class TestBrokerOutage:
    """The broker going away mid-run: the consumer waits, then resumes by itself."""

    def test_broker_stopped_and_started_again(
        self, make_settings, opensearch_client, stack_settings, tmp_path
    ):
        """With the broker stopped for 15s the consumer stays up and says so; once the
        broker is back it finishes with exactly the produced events."""
        broker = Broker(tmp_path / "broker", stack_settings.opensearch_port)
        broker.start()
        try:
            settings = make_settings(kafka={"bootstrap_servers": broker.address})
            jobs.setup(settings)
            produced = produce_events(settings, 10_000, seed=13)
            env = env_for(settings)
            prefix = settings.opensearch.index_prefix
            with running(["consume", "--batch-size", "500"], env, tmp_path) as proc:
                wait_for(lambda: doc_count(opensearch_client, prefix) >= 2000, 90, "indexing")
                broker.stop()
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    assert proc.alive(), proc.stderr()[-2000:]
                    time.sleep(1)
                assert doc_count(opensearch_client, prefix) < len(produced)
                broker.start()
                wait_for(
                    lambda: doc_count(opensearch_client, prefix) == len(produced),
                    CATCH_UP,
                    "catching up after the broker came back",
                )
                wait_for(lambda: group_lag(settings) == 0, 60, "committing once the broker is back")
                proc.signal(signal.SIGTERM)
                assert proc.wait(timeout=60) == 0, proc.stderr()[-2000:]
                outages = [
                    e
                    for e in proc.logged("service unavailable; consumption paused until it is back")
                    if e.get("service") == "kafka"
                ]
                assert 1 <= len(outages) <= 2, outages
            _assert_exactly(opensearch_client, settings, produced)
        finally:
            broker.stop()


class TestRebalance:
    """Consumers joining and leaving a group mid-run."""

    def test_second_consumer_joins_then_first_leaves(
        self, make_settings, opensearch_client, tmp_path
    ):
        """A second consumer joins mid-run (a rebalance), then the first one is stopped
        (another): the index ends with exactly the produced events."""
        settings = make_settings()
        jobs.setup(settings)
        produced = produce_events(settings, 12_000, seed=14)
        env = env_for(settings)
        prefix = settings.opensearch.index_prefix
        args = ["consume", "--batch-size", "500"]
        with running(args, env, tmp_path) as first:
            wait_for(lambda: doc_count(opensearch_client, prefix) >= 3000, 90, "first indexing")
            with running(args, env, tmp_path) as second:
                # The first stops once the second has its partitions: a rebalance, then another.
                wait_for(lambda: bool(second.logged("partitions assigned")), 120, "the second in")
                wait_for(lambda: doc_count(opensearch_client, prefix) >= 6000, 120, "both")
                first.signal(signal.SIGTERM)
                assert first.wait(timeout=60) == 0, first.stderr()[-2000:]
                # All documents may exist before the group is done: what the first consumer
                # indexed but had not committed when it lost a partition is read again.
                wait_for(
                    lambda: (
                        doc_count(opensearch_client, prefix) == len(produced)
                        and group_lag(settings) == 0
                    ),
                    CATCH_UP,
                    "the second consumer finishing alone",
                )
                second.signal(signal.SIGTERM)
                assert second.wait(timeout=60) == 0, second.stderr()[-2000:]
        _assert_exactly(opensearch_client, settings, produced)


class TestWorkers:
    """`consume --workers N`: N processes in one group, stopped together."""

    def test_two_workers_index_everything_and_stop_together(
        self, make_settings, opensearch_client, tmp_path
    ):
        """Two worker processes share the partitions, index exactly the produced events,
        and one SIGTERM to the command stops both cleanly."""
        settings = make_settings()
        jobs.setup(settings)
        produced = produce_events(settings, 6_000, seed=15)
        prefix = settings.opensearch.index_prefix
        env = env_for(settings)
        with running(["consume", "--workers", "2", "--batch-size", "500"], env, tmp_path) as proc:
            wait_for(
                lambda: doc_count(opensearch_client, prefix) == len(produced), CATCH_UP, "index"
            )
            started = proc.logged("worker started")
            assert sorted(e["worker"] for e in started) == [0, 1]
            proc.signal(signal.SIGTERM)
            assert proc.wait(timeout=90) == 0, proc.stderr()[-2000:]
            pids = proc.logged("workers started")[0]["pids"]
        for pid in pids:

            def exited(pid: int = pid) -> bool:
                return not _alive(pid)

            wait_for(exited, 10, f"worker {pid} exiting")
        _assert_exactly(opensearch_client, settings, produced)


def _alive(pid: int) -> bool:
    import os  # noqa: PLC0415

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
