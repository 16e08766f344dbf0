"""Static member ids: one per host and slot, taken back by a consumer restarted after a crash."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

from clickstream.consume import membership


class TestClaim:
    """A claim is the lowest slot nobody on this host holds, held until release or death."""

    def test_slots_are_claimed_lowest_first(self, tmp_path):
        """Two consumers of one group get slots 0 and 1, and ids that differ."""
        first = membership.claim("indexer", lock_dir=tmp_path, host="web-1")
        second = membership.claim("indexer", lock_dir=tmp_path, host="web-1")
        assert (first.slot, second.slot) == (0, 1)
        assert first.instance_id != second.instance_id
        assert first.instance_id.startswith("clickstream-web-1-")

    def test_a_released_slot_is_claimed_again(self, tmp_path):
        """Once a consumer has left its group, the next one takes the lowest slot again."""
        first = membership.claim("indexer", lock_dir=tmp_path)
        first.release(left=True)
        assert membership.claim("indexer", lock_dir=tmp_path).instance_id == first.instance_id

    def test_a_member_that_could_not_leave_is_replaced_first(self, tmp_path):
        """A consumer that stopped without leaving (the broker was away) is taken over
        before any new slot, as a crashed one is."""
        first = membership.claim("indexer", lock_dir=tmp_path)
        second = membership.claim("indexer", lock_dir=tmp_path)
        second.release(left=False)
        first.release(left=True)
        assert membership.claim("indexer", lock_dir=tmp_path).slot == 1

    def test_clusters_have_slots_of_their_own(self, tmp_path):
        """A consumer of the same group name on another cluster does not take this one's
        slot, so a restart here gets its own id back whatever runs against other brokers."""
        membership.claim("indexer", cluster="kafka-a:9092", lock_dir=tmp_path)
        assert membership.claim("indexer", cluster="kafka-b:9092", lock_dir=tmp_path).slot == 0

    def test_groups_have_slots_of_their_own(self, tmp_path):
        """A consumer of another group starts at slot 0 too."""
        membership.claim("indexer", lock_dir=tmp_path)
        assert membership.claim("replay", lock_dir=tmp_path).slot == 0

    def test_a_killed_process_leaves_its_slot_free(self, tmp_path):
        """SIGKILL releases the claim with the process: the restarted consumer gets its id."""
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(f"""
                    import sys, time
                    from pathlib import Path
                    from clickstream.consume import membership
                    claim = membership.claim("indexer", lock_dir=Path({str(tmp_path)!r}))
                    print(claim.instance_id, flush=True)
                    time.sleep(60)
                """),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None
        held = holder.stdout.readline().strip()
        newcomer = membership.claim("indexer", lock_dir=tmp_path)
        assert newcomer.slot == 1  # slot 0 is held
        newcomer.release(left=True)
        holder.kill()
        holder.wait()
        holder.stdout.close()
        assert membership.claim("indexer", lock_dir=tmp_path).instance_id == held

    def test_ids_use_only_characters_kafka_allows(self, tmp_path):
        """Host and group names with other characters still give a valid id and lock file."""
        found = membership.claim("my group/ü", lock_dir=tmp_path, host="host name.é")
        assert re.fullmatch(r"[A-Za-z0-9._-]+", found.instance_id)
