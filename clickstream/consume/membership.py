"""Static group membership by default: a consumer restarted after a crash gets its
partitions back at once.

A consumer that dies without leaving its group (SIGKILL, a crash, a lost machine) stays a
member until the coordinator gives up on it: on Kafka after `session.timeout.ms` (45 s by
default), on some Kafka-compatible brokers never. Until then a rebalance waits for it, and a
restarted consumer with a new, dynamic member id reads nothing. A static member
(`group.instance.id`, KIP-345) that comes back under the same id simply takes the dead
one's place and its partitions, without a rebalance.

So each consumer claims a stable id of its own: `clickstream-<host>-<uid>-<slot>`, where
the slot is the lowest one no other consumer of the same group on this host holds. The
claim is an exclusive lock on a file, which the kernel releases when the process dies, so a
restarted consumer claims the slot, and the id, it had. Two consumers of one group on one
host never claim the same id; should two processes on different hosts still share one (the
same host name, or an id set by hand in `kafka.extra`), the broker fences the older one and
it stops with an error saying so.

The price of static membership: a consumer that stops for good (fewer `--workers` than
before) stays a member until `session.timeout.ms` has passed, and its partitions wait that
long for a new owner. `consumer.static_membership = false` opts out.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

#: librdkafka's property naming a static member.
INSTANCE_ID = "group.instance.id"


def _safe(text: str) -> str:
    """`text` in the characters Kafka allows in names (letters, digits, `.`, `_`, `-`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:100] or "_"


def default_lock_dir() -> Path:
    """Where this user's claims live on this host."""
    return Path(tempfile.gettempdir()) / f"clickstream-{os.getuid()}-members"


@dataclass
class Claim:
    """A `group.instance.id` held by this process until `release` (or its death)."""

    instance_id: str
    slot: int
    _fd: int | None = field(default=None, repr=False)

    def release(self) -> None:
        """Give the slot up; the next consumer of the group on this host may take it."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the file drops its lock
            self._fd = None


def claim(group: str, *, lock_dir: Path | None = None, host: str | None = None) -> Claim:
    """Claim the lowest free slot of `group` on this host, and the instance id it names."""
    where = lock_dir or default_lock_dir()
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = _safe(host or socket.gethostname())
    slot = 0
    while True:
        fd = os.open(where / f"{_safe(group)}.{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            slot += 1
            continue
        return Claim(f"clickstream-{name}-{os.getuid()}-{slot}", slot, fd)
