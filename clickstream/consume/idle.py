"""`--until-idle`: when a consumer has caught up, and for how long it has been.

A consumer has caught up once it has an assignment (possibly an empty one) and has read
every assigned partition to its end, with nothing pending. Only from then on does idle time
count: time waiting for partitions (a broker slow to assign them, a rebalance, a group
waiting for a crashed member) and time in an outage do not. While a consumer waits for its
partitions it says so every `WAITING_LOG_EVERY` seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from clickstream import logs
from clickstream.errors import GroupStalled
from clickstream.kafka import PartitionKey

log = logs.get("consumer")

#: While no partitions are assigned, how often the consumer says it is waiting for them.
WAITING_LOG_EVERY = 10.0


class CaughtUp:
    """Which assigned partitions are read to their end, and since when all of them are."""

    def __init__(self, group: str, clock: Callable[[], float]) -> None:
        self._group = group
        self._clock = clock
        #: The assignment, or None before the first one (and during a rebalance).
        self.assigned: set[PartitionKey] | None = None
        self._at_end: set[PartitionKey] = set()
        self._waiting_since = clock()
        self._said_waiting = self._waiting_since
        #: Since when everything assigned is read (None: not caught up).
        self.since: float | None = None

    def assign(self, partitions: Iterable[PartitionKey]) -> None:
        """A rebalance gave us `partitions` (all of them: eager assignment)."""
        self.assigned = set(partitions)
        self._at_end &= self.assigned
        if self.assigned:
            log.info("partitions assigned", group=self._group, partitions=sorted(self.assigned))
        else:
            log.info(
                "no partitions assigned; the group's other members hold them", group=self._group
            )
        self._update()

    def revoke(self, partitions: Iterable[PartitionKey]) -> None:
        """A rebalance took `partitions`; until the next assignment we wait."""
        lost = set(partitions)
        self._at_end -= lost
        if self.assigned is not None:
            self.assigned -= lost
        self.assigned = None  # a revocation starts a rebalance: the next assign completes it
        self._waiting_since = self._said_waiting = self._clock()
        self.since = None

    def reached_end(self, key: PartitionKey) -> None:
        self._at_end.add(key)
        self._update()

    def received(self, keys: Iterable[PartitionKey]) -> None:
        """Messages came from these partitions: they are not at their end (yet)."""
        self._at_end -= set(keys)
        self.since = None

    def busy(self) -> None:
        """Something is pending, or a service is away: not idle now."""
        self.since = None

    def tick(self, *, pending: bool) -> None:
        """Update the idle clock; say, now and then, that partitions are awaited."""
        if pending:
            self.since = None
            return
        if self.assigned is None:
            now = self._clock()
            if now - self._said_waiting >= WAITING_LOG_EVERY:
                self._said_waiting = now
                log.info(
                    "waiting for partitions",
                    group=self._group,
                    seconds=round(now - self._waiting_since),
                )
            return
        self._update()

    def waiting_for(self) -> float:
        """How long the consumer has been without an assignment (0 if it has one)."""
        return 0.0 if self.assigned is not None else self._clock() - self._waiting_since

    def _update(self) -> None:
        caught_up = self.assigned is not None and self.assigned <= self._at_end
        if not caught_up:
            self.since = None
        elif self.since is None:
            self.since = self._clock()

    def idle_for(self) -> float:
        """How long everything assigned has been read to its end (0 if it is not)."""
        return 0.0 if self.since is None else self._clock() - self.since


#: In an `--until-idle` run, how long a consumer waits for its first assignment before it
#: gives up (a Kafka group expels a crashed member after `session.timeout.ms`, 45 s).
ASSIGNMENT_PATIENCE = 120.0

#: Per partition: the group's committed offset (None: none yet) and its lag.
GroupOffsets = dict[int, tuple[int | None, int]]


class UntilIdle:
    """When an `--until-idle` run is over, and whether it may call itself a success.

    It is over once the consumer has been caught up for `seconds`. It fails, instead of
    reporting success having read nothing, when no partition is assigned for
    `ASSIGNMENT_PATIENCE`, or when it read nothing while partitions it does not own have a
    lag that nobody reduced meanwhile (a member that holds them and does not read them).
    """

    def __init__(
        self,
        caught_up: CaughtUp,
        seconds: float,
        *,
        topic: str,
        group: str,
        consumed: Callable[[], int],
        read_offsets: Callable[[], GroupOffsets],
    ) -> None:
        self._caught_up = caught_up
        self._seconds = seconds
        self._topic = topic
        self._group = group
        self._consumed = consumed
        self._read_offsets = read_offsets
        self._before: GroupOffsets | None = None

    def over(self) -> bool:
        """Whether the run has been caught up long enough; raises `GroupStalled` when no
        partition came in time."""
        waited = self._caught_up.waiting_for()
        if waited > max(ASSIGNMENT_PATIENCE, self._seconds):
            raise GroupStalled(
                f"no partitions of {self._topic!r} were assigned to this consumer in group "
                f"{self._group!r} after {waited:.0f} s: the group waits for members that do "
                "not answer (a consumer that crashed and the broker has not expelled yet)",
                hint="`clickstream status` shows the lag; consumers that claim their own "
                "group.instance.id (the default) take a crashed member's place at once",
            )
        idle = self._caught_up.idle_for()
        if idle > 0 and self._before is None and self._consumed() == 0:
            self._before = self._read_offsets()
        return idle >= self._seconds

    def check(self) -> None:
        """After the run: having read nothing, fail if others hold unread partitions that
        nobody read from while this consumer waited."""
        if self._before is None or self._consumed() > 0:
            return
        after = self._read_offsets()
        stuck = {
            partition: lag
            for partition, (committed, lag) in after.items()
            if lag > 0 and self._before.get(partition, (None, -1))[0] == committed
        }
        if stuck:
            raise GroupStalled(
                f"read nothing, but partitions {sorted(stuck)} of {self._topic!r} have "
                f"{sum(stuck.values()):,} messages that no member of group {self._group!r} "
                "read while this consumer waited: another member holds them and is not "
                "reading them",
                hint="a consumer that stopped for good stays a member of its group until "
                "session.timeout.ms passes; see `clickstream status`",
            )
