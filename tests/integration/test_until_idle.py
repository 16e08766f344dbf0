"""`consume --until-idle` means caught up, with a group slow to hand out partitions.

A member that joined first and stops polling holds the group's rebalance: the broker waits
for it before it assigns anything to the newcomer, as a broker slow to assign would. The
newcomer's idle clock must not run meanwhile.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

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
#: The first member: joins, says so once it has partitions, stops polling for HOLD
#: seconds (the group's next rebalance waits for it), then leaves.
HOLDER = """
import sys, time
from confluent_kafka import Consumer
bootstrap, group, topic, hold = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest"})
consumer.subscribe([topic])
deadline = time.monotonic() + 30
while not consumer.assignment() and time.monotonic() < deadline:
    consumer.poll(0.2)
print("holding" if consumer.assignment() else "not in", flush=True)
time.sleep(hold)
consumer.close()
"""


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
        # The holder is a process of its own: closing a consumer that sits in a rebalance
        # can block, and a test must end either way.
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, settings.kafka.bootstrap_servers,
             settings.kafka.group_id, settings.kafka.topic, str(HOLD)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "holding", "the holder never got in"
            with running(["consume", "--until-idle", "5"], env_for(settings), tmp_path) as proc:
                assert proc.wait(timeout=HOLD + 120) == 0, proc.stderr()[-2000:]
                assigned = proc.logged("partitions assigned")
                said = proc.logged("waiting for partitions")
        finally:
            holder.kill()
            holder.wait()
            if holder.stdout is not None:
                holder.stdout.close()
        # Everything was read (below) although the group gave nothing at first. Whenever it
        # made the consumer wait 10 s or more, the consumer said so, naming its group.
        joined = proc.logged("joining group")[0]["timestamp"]
        waited = _seconds_between(joined, assigned[0]["timestamp"])
        assert bool(said) == (waited >= 10), (waited, said)
        assert {e.get("group") for e in said} <= {settings.kafka.group_id}
        wait_for(lambda: doc_count(opensearch_client, settings.opensearch.index_prefix) > 0, 10,
                 "documents")  # fmt: skip
        assert group_lag(settings) == 0
        _assert_exactly(opensearch_client, settings, produced)


def _seconds_between(first: str, then: str) -> float:
    """Seconds from one log timestamp to another."""
    return (dt.datetime.fromisoformat(then) - dt.datetime.fromisoformat(first)).total_seconds()
