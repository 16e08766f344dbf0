"""`consume --sink clickhouse` against the session's Kafka and ClickHouse: the sink contract,
what a user sees when ClickHouse is not ready, and exactly once under SIGKILLs and an outage.

Exactly once, here, is: the raw table holds each produced event (`uniqExact(event_id)`
equals the produced count and the ids are the produced ids), and every aggregate read from
its materialized view equals the same figure computed from the distinct raw events, however
many batches were replayed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import signal
import subprocess
import time
from collections.abc import Callable

import orjson
import pytest

from clickstream import kafka
from clickstream.cli import jobs
from clickstream.events import Document, Event
from clickstream.produce import publish
from clickstream.settings import Settings
from clickstream.simulate.config import SimulationConfig
from clickstream.simulate.simulator import Simulator
from clickstream.sinks.clickhouse import queries
from clickstream.sinks.clickhouse.sink import ClickHouseSink
from clickstream.stack.chserver import control
from tests.helpers import make_event, port_below_ephemeral_range
from tests.integration.faults import (
    CLI,
    START,
    env_for,
    group_lag,
    produce_events,
    running,
    wait_for,
)
from tests.integration.test_clickhouse_server import Server
from tests.sink_contract import SinkContract

pytest.importorskip("clickhouse_connect")

#: How many times the consumer is SIGKILLed over the run.
KILLS = 6
#: The longest a test waits for the consumer to catch up after a fault.
CATCH_UP = 240.0
EVERYTHING = queries.time_range(
    dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
)


@pytest.fixture
def ch_settings(make_settings, clickhouse_url, clickhouse_database, group_id, dlq_topic):
    """`ch_settings(url=...)`: this test's settings reading for ClickHouse, in a database
    of its own; the dead-letter topic is the one the `topic` fixture cleans up."""

    def make(url: str = clickhouse_url) -> Settings:
        section = {
            "url": url,
            "database": clickhouse_database,
            "group_id": f"{group_id}-clickhouse",
            "dlq_topic": dlq_topic,
        }
        made: Settings = make_settings(clickhouse=section)
        return made.for_sink("clickhouse")

    return make


def ch_env(settings: Settings) -> dict[str, str]:
    """An environment for a `clickstream` process writing where `settings` say; the sink
    comes from the `--sink` flag, and the group from the clickhouse section, as a user's."""
    ch = settings.clickhouse
    return env_for(
        settings,
        CLICKSTREAM_KAFKA__GROUP_ID="the-opensearch-group-not-ours",
        CLICKSTREAM_CLICKHOUSE__URL=ch.url,
        CLICKSTREAM_CLICKHOUSE__DATABASE=ch.database,
        CLICKSTREAM_CLICKHOUSE__GROUP_ID=ch.group_id,
        CLICKSTREAM_CLICKHOUSE__DLQ_TOPIC=ch.dlq_topic or "",
    )


def raw_rows(sink: ClickHouseSink) -> int:
    """Rows in the raw table, duplicates included (0 while it does not exist)."""
    try:
        found = sink.client.query(f"SELECT count() FROM {sink.tables.events}")  # noqa: S608
        return int(found.result_rows[0][0])
    except Exception:  # noqa: BLE001  (not created yet, or the server restarting)
        return 0


def assert_exactly_once(sink: ClickHouseSink, settings: Settings, produced: set[str]) -> None:
    """The raw table holds each produced event, the views agree with the distinct raw
    events, and the group has read everything."""
    client = sink.client
    distinct = client.query(queries.distinct_events(sink.tables), parameters=EVERYTHING)
    assert distinct.result_rows == [(len(produced),)]
    ids = client.query(f"SELECT DISTINCT toString(event_id) FROM {sink.tables.events}")  # noqa: S608
    assert {row[0] for row in ids.result_rows} == produced
    for aggregate in queries.aggregates(sink.tables):
        from_view = client.query(aggregate.from_view, parameters=EVERYTHING).result_rows
        from_events = client.query(aggregate.from_events, parameters=EVERYTHING).result_rows
        assert from_view, f"{aggregate.name} is empty"
        assert from_view == from_events, aggregate.name
    assert group_lag(settings) == 0


def publish_events(settings: Settings, events: list[Event]) -> set[str]:
    """Publish `events` to the settings' topic; return their event ids."""
    stats = publish.ProduceStats()
    publish.run(events, publish.KafkaSink(settings.kafka, settings.kafka.topic, stats), stats)
    assert stats.delivered == len(events), stats
    return {str(event.event_id) for event in events}


class TestClickHouseSinkContract(SinkContract):
    """ClickHouse keeps the contract every sink keeps."""

    @pytest.fixture
    def sink(self, ch_settings):
        made = ClickHouseSink.from_settings(ch_settings())
        made.setup()
        yield made
        made.close()

    @pytest.fixture
    def unreachable(self, ch_settings):
        return ClickHouseSink.from_settings(
            ch_settings(f"http://127.0.0.1:{port_below_ephemeral_range()}")
        )

    @pytest.fixture
    def rejected_document(self) -> Document:
        """An event whose address is no IP address: the events table cannot take it."""
        doc = Document.of(make_event())
        source = orjson.loads(doc.source)
        source["ip"] = "not-an-address"
        return doc._replace(source=orjson.dumps(source))


class TestClickHouseSink:
    """What the ClickHouse sink adds to the contract."""

    def test_setup_says_whether_it_created_the_tables(self, ch_settings):
        """The first setup creates the tables and views; the second finds them."""
        sink = ClickHouseSink.from_settings(ch_settings())
        assert sink.setup().changed
        assert not sink.setup().changed
        sink.check()
        sink.close()

    def test_kafka_provenance_is_stored(self, ch_settings):
        """Each row keeps the partition and offset it was read at."""
        sink = ClickHouseSink.from_settings(ch_settings())
        sink.setup()
        doc = Document.of(make_event())._replace(partition=2, offset=4242)
        assert sink.write([doc]).stored == 1
        rows = sink.client.query(
            f"SELECT kafka_partition, kafka_offset FROM {sink.tables.events}"  # noqa: S608
        ).result_rows
        assert rows == [(2, 4242)]
        sink.close()


class TestWhatAUserSees:
    """`clickstream consume --sink clickhouse` when ClickHouse is not ready: one line."""

    def _consume(self, settings: Settings, tmp_path) -> subprocess.CompletedProcess[str]:
        """The topic exists (consume checks Kafka first); ClickHouse is what is not ready."""
        for topic in (settings.kafka.topic, settings.kafka.dlq_topic):
            kafka.ensure_topic(settings.kafka, topic, settings.kafka.partitions)
        return subprocess.run(
            [CLI, "consume", "--sink", "clickhouse", "--until-idle", "1"],
            env=ch_env(settings),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def test_missing_tables_say_run_setup(self, ch_settings, tmp_path):
        """Without the tables consume stops at once with exit 2 and says what to run."""
        done = self._consume(ch_settings(), tmp_path)
        assert done.returncode == 2, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("error:")
        assert "clickstream setup --sink clickhouse" in last

    def test_a_missing_dead_letter_topic_names_the_clickhouse_setup(self, ch_settings, tmp_path):
        """ClickHouse's dead-letter topic is its own: the hint names the setup that makes it."""
        settings = ch_settings()
        kafka.ensure_topic(settings.kafka, settings.kafka.topic, settings.kafka.partitions)
        done = subprocess.run(
            [CLI, "consume", "--sink", "clickhouse", "--until-idle", "1"],
            env=ch_env(settings), cwd=tmp_path, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert settings.kafka.dlq_topic in last
        assert "run `clickstream setup --sink clickhouse` to create it" in last

    def test_an_unreachable_server_is_exit_3(self, ch_settings, tmp_path):
        """Nothing listening where ClickHouse should be: exit 3, one line."""
        url = f"http://127.0.0.1:{port_below_ephemeral_range()}"
        done = self._consume(ch_settings(url), tmp_path)
        assert done.returncode == 3, done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("error: ClickHouse unavailable")

    def test_setup_then_consume_then_status(self, ch_settings, tmp_path):
        """`setup --sink clickhouse`, `consume --sink clickhouse` and `status --sink
        clickhouse` work together, in the ClickHouse group, not the OpenSearch one."""
        settings = ch_settings()
        env = ch_env(settings)

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [CLI, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                timeout=120, check=False,
            )  # fmt: skip

        assert run("setup", "--sink", "clickhouse").returncode == 0
        produced = produce_events(settings, 3000, seed=21)
        done = run("consume", "--sink", "clickhouse", "--until-idle", "2")
        assert done.returncode == 0, done.stderr
        shown = run("status", "--sink", "clickhouse", "--json")
        assert shown.returncode == 0, shown.stderr
        state = orjson.loads(shown.stdout)
        assert state["group"] == settings.clickhouse.group_id
        assert (state["lag"], state["documents"], state["sink"]) == (0, 3000, "clickhouse")
        sink = ClickHouseSink.from_settings(settings)
        assert_exactly_once(sink, settings, produced)
        sink.close()


@pytest.mark.e2e
class TestSigkill:
    """SIGKILL at random moments loses nothing and counts nothing twice in ClickHouse."""

    def test_killed_many_times_over_fifty_thousand_events(self, ch_settings, tmp_path):
        """50,000 events, `consume --sink clickhouse` with the user's defaults SIGKILLed at
        random points and restarted each time: the raw table holds exactly the produced
        events and every aggregate equals its recomputation from the distinct raw events."""
        settings = ch_settings()
        jobs.setup(settings)
        produced = produce_events(settings, 50_000, seed=31)
        env = ch_env(settings)  # the user's defaults: no group.instance.id, no batch flags
        sink = ClickHouseSink.from_settings(settings)
        rng = random.Random(20261123)
        args = ["consume", "--sink", "clickhouse"]
        kills, mid_run = 0, 0
        while kills < KILLS:
            before = raw_rows(sink)
            with running(args, env, tmp_path) as proc:

                def writing_or_exited(b: int = before) -> bool:
                    return raw_rows(sink) > b or not proc.alive()

                wait_for(writing_or_exited, 90, "inserting after a restart", every=0.1)
                # ClickHouse takes a 2,000-event batch in a few ms: kill within half a second.
                time.sleep(rng.uniform(0.0, 0.5))
                assert proc.alive(), proc.stderr()[-2000:]
                proc.signal(signal.SIGKILL)
                proc.wait(timeout=30)
            kills += 1
            distinct = sink.count()
            mid_run += distinct < len(produced)
            if distinct == len(produced) and group_lag(settings) == 0:
                break
        assert mid_run >= kills - 1, "the kills should land while events are being stored"
        assert kills >= KILLS // 2, f"only {kills} kills before everything was stored"
        with running([*args, "--until-idle", "5"], env, tmp_path) as last:
            assert last.wait(timeout=CATCH_UP) == 0, last.stderr()[-2000:]
        duplicates = raw_rows(sink) - len(produced)
        print(f"{kills} kills, {duplicates} replayed rows in the raw table")
        assert_exactly_once(sink, settings, produced)
        sink.close()


@pytest.mark.e2e
class TestClickHouseOutage:
    """The ClickHouse server stopped mid-run: the consumer pauses, then resumes by itself."""

    def test_server_stopped_and_started_again(
        self, ch_settings, tmp_path, unavailable: Callable[[str], None]
    ):
        """With the server stopped for 15s the consumer stays up, says once that ClickHouse
        is unavailable and once that it is back, and ends with exact counts."""
        server = Server(tmp_path / "clickhouse", unavailable)  # type: ignore[arg-type]
        server.start()
        try:
            settings = ch_settings(server.url)
            jobs.setup(settings)
            # One simulation (one catalog of articles), published in two halves.
            config = SimulationConfig(users=500, seed=32, start=START)
            events = list(itertools.islice(Simulator(config), 20_000))
            produced = publish_events(settings, events[:10_000])
            sink = ClickHouseSink.from_settings(settings)
            args = ["consume", "--sink", "clickhouse"]
            with running(args, ch_env(settings), tmp_path) as proc:
                wait_for(lambda: raw_rows(sink) >= 2000, 90, "inserting")
                sink.close()
                control.stop(server.state_dir)
                # More events while the server is away: the consumer has work it cannot do.
                produced |= publish_events(settings, events[10_000:])
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    assert proc.alive(), proc.stderr()[-2000:]
                    time.sleep(1)
                server.start()  # the same port and data directory
                wait_for(
                    lambda: group_lag(settings) == 0 and sink.count() == len(produced),
                    CATCH_UP,
                    "catching up after the outage",
                )
                proc.signal(signal.SIGTERM)
                assert proc.wait(timeout=60) == 0, proc.stderr()[-2000:]
                paused = proc.logged("service unavailable; consumption paused until it is back")
                assert [e["service"] for e in paused] == ["clickhouse"]
                back = proc.logged("service is back; resuming")
                assert [e["service"] for e in back] == ["clickhouse"]
            assert_exactly_once(sink, settings, produced)
            sink.close()
        finally:
            control.stop(server.state_dir)
