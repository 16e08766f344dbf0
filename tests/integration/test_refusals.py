"""A store that refuses writes for its own reasons stops `consume`: nothing is dead-lettered,
nothing committed, and the events wait in Kafka."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest

from clickstream.cli import jobs
from clickstream.consume import status
from clickstream.produce import publish
from clickstream.settings import Settings
from clickstream.simulate.config import SimulationConfig
from clickstream.simulate.simulator import Simulator
from tests.integration.faults import (
    doc_count,
    env_for,
    group_lag,
    running,
    wait_for,
)

pytestmark = pytest.mark.e2e

FIRST_DAY = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)
LATER_DAY = dt.datetime(2026, 2, 5, 9, 0, tzinfo=dt.UTC)


def _produce(settings: Settings, count: int, start: dt.datetime, seed: int) -> int:
    """Publish `count` simulated events from `start` (all of that day); how many."""
    end = start.replace(hour=23)
    config = SimulationConfig(users=500, seed=seed, start=start, end=end)
    events = list(itertools.islice(Simulator(config), count))
    assert {e.day for e in events} == {start.strftime("%Y.%m.%d")}
    stats = publish.ProduceStats()
    publish.run(events, publish.KafkaSink(settings.kafka, settings.kafka.topic, stats), stats)
    assert stats.delivered == len(events)
    return len(events)


def _dead_letters(settings: Settings) -> int:
    parts = status.offsets(settings.kafka, settings.kafka.dlq_topic, settings.kafka.group_id)
    return sum(p.end - p.low for p in parts)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _consume_once(settings: Settings, tmp_path) -> tuple[int, str]:
    """`clickstream consume --until-idle 2` with the user's defaults: exit code, stderr."""
    with running(["consume", "--until-idle", "2"], env_for(settings), tmp_path) as proc:
        code = proc.wait(timeout=120)
        return code, proc.stderr()


class TestTemplateDeletedMidRun:
    """The index template deleted while consuming: the next new day stops the consumer."""

    def test_events_of_a_new_day_stop_the_consumer(
        self, make_settings, opensearch_client, tmp_path
    ):
        """Events of a new day after the deletion: exit 2 with one line, no dead letter, the
        new day's events still to be read, and no index made for them."""
        settings = make_settings()
        jobs.setup(settings)
        first = _produce(settings, 1_000, FIRST_DAY, seed=31)
        prefix = settings.opensearch.index_prefix
        with running(["consume"], env_for(settings), tmp_path) as proc:
            wait_for(
                lambda: doc_count(opensearch_client, prefix) == first or not proc.alive(),
                120,
                "indexing the first day",
            )
            wait_for(lambda: group_lag(settings) == 0, 60, "committing the first day")
            opensearch_client.indices.delete_index_template(name=prefix)
            later = _produce(settings, 500, LATER_DAY, seed=32)
            assert proc.wait(timeout=120) == 2, proc.stderr()[-2000:]
            errors = _error_lines(proc.stderr())
        assert errors == [
            f"error: index template {prefix} is missing: run `clickstream setup` (while "
            f"writing the first events of 2026.02.05; nothing committed or dead-lettered)"
        ]
        assert _dead_letters(settings) == 0
        assert group_lag(settings) == later
        assert doc_count(opensearch_client, prefix) == first
        assert not opensearch_client.indices.exists(index=f"{prefix}-2026.02.05")


class TestReadOnlyIndex:
    """A write block on the daily index (`index.blocks.write`) stops the consumer."""

    def test_a_blocked_index_stops_the_consumer(self, make_settings, opensearch_client, tmp_path):
        """Exit 1 with one line naming cluster_block_exception; nothing dead-lettered; the
        blocked events still to be read."""
        settings = make_settings()
        jobs.setup(settings)
        first = _produce(settings, 1_000, FIRST_DAY, seed=33)
        code, stderr = _consume_once(settings, tmp_path)
        assert code == 0, stderr[-2000:]
        prefix = settings.opensearch.index_prefix
        assert doc_count(opensearch_client, prefix) == first
        opensearch_client.indices.put_settings(
            index=f"{prefix}-*", body={"index.blocks.write": True}
        )
        blocked = _produce(settings, 500, FIRST_DAY, seed=34)
        code, stderr = _consume_once(settings, tmp_path)
        assert code == 1, stderr[-2000:]
        (error,) = _error_lines(stderr)
        assert re.search(r"refused ([\d,]+) of \1 documents of a batch with cluster_block", error)
        assert _dead_letters(settings) == 0
        assert group_lag(settings) == blocked


class TestMappingRejectsEverything:
    """A mapping that rejects every document is the index's fault, not the events'."""

    def test_every_document_rejected_stops_the_consumer(
        self, make_settings, opensearch_client, tmp_path
    ):
        """A template that makes user_id an integer: exit 1, one line naming the error type
        and how many; nothing dead-lettered; every event still to be read."""
        settings = make_settings()
        jobs.setup(settings)
        prefix = settings.opensearch.index_prefix
        opensearch_client.indices.put_index_template(
            name=f"{prefix}-integers",
            body={
                "index_patterns": [f"{prefix}-*"],
                "priority": 900,  # above ours: only the highest-priority template applies
                "template": {"mappings": {"properties": {"user_id": {"type": "integer"}}}},
            },
        )
        produced = _produce(settings, 1_000, FIRST_DAY, seed=35)
        code, stderr = _consume_once(settings, tmp_path)
        assert code == 1, stderr[-2000:]
        (error,) = _error_lines(stderr)
        assert "rejected all" in error
        assert "mapper_parsing_exception: failed to parse field [user_id]" in error
        assert _dead_letters(settings) == 0
        assert group_lag(settings) == produced
