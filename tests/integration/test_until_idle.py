"""`consume --until-idle` means caught up, with a group slow to hand out partitions.

A member that joined first and stops polling holds the group's rebalance: the broker waits
for it before it assigns anything to the newcomer, as a broker slow to assign would. The
newcomer's idle clock must not run meanwhile.
"""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import Consumer

from clickstream.cli import jobs
from tests.integration.faults import (
    doc_count,
    env_for,
    group_lag,
    produce_events,
    running,
    wait_for,
)
from tests.integration.test_faults import _assert_exactly

pytestmark = pytest.mark.e2e

#: How long the first member holds the group before it leaves.
HOLD = 20.0


class TestLateAssignment:
    """Time without partitions is not idle time."""

    def test_partitions_assigned_after_twenty_seconds(
        self, make_settings, opensearch_client, tmp_path
    ):
        """A member holds the group for 20 s; `consume --until-idle 5`, started meanwhile with
        the user's defaults, waits for its partitions, says so, then reads everything."""
        settings = make_settings()
        jobs.setup(settings)
        produced = produce_events(settings, 3000, seed=21)
        holder = Consumer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "group.id": settings.kafka.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        holder.subscribe([settings.kafka.topic])
        deadline = time.monotonic() + 30
        while not holder.assignment() and time.monotonic() < deadline:
            holder.poll(0.2)  # joined, and stops polling: the next rebalance waits for it
        assert holder.assignment(), "the first member never got its partitions"
        still_running: list[bool] = []
        with running(["consume", "--until-idle", "5"], env_for(settings), tmp_path) as proc:

            def leave() -> None:
                still_running.append(proc.alive())
                holder.close()

            timer = threading.Timer(HOLD, leave)
            timer.start()
            try:
                assert proc.wait(timeout=HOLD + 120) == 0, proc.stderr()[-2000:]
            finally:
                timer.join()
            said = proc.logged("waiting for partitions")
        assert still_running == [True], "it stopped before the group gave it anything"
        assert said, "it did not say it was waiting for partitions"
        assert {e.get("group") for e in said} == {settings.kafka.group_id}
        wait_for(lambda: doc_count(opensearch_client, settings.opensearch.index_prefix) > 0, 10,
                 "documents")  # fmt: skip
        assert group_lag(settings) == 0
        _assert_exactly(opensearch_client, settings, produced)
